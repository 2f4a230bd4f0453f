"""Built-in plugin ``core_models``: registers the core's tables and migration branch."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.db.auth_models import AUTH_MODELS
from bhype_core.db.intent_models import INTENT_MODELS
from bhype_core.db.migrate import CORE_VERSIONS_DIR
from bhype_core.db.models import CORE_MODELS
from bhype_core.db.task_models import TASK_MODELS
from bhype_core.hookspecs import hookimpl
from bhype_core.hosts.models import HOST_MODELS
from bhype_core.network.models import SWITCH_MODELS
from bhype_core.registry import ModelSet
from bhype_core.vm.models import VM_MODELS


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """The ``core`` branch: core_host_command, core_audit_event, core_vm, core_task, core_task_log,
    core_auth_session, core_api_token, core_switch, core_task_intent and core_host."""
    models = CORE_MODELS + VM_MODELS + TASK_MODELS + AUTH_MODELS + SWITCH_MODELS + INTENT_MODELS + HOST_MODELS
    register(ModelSet(name="core", models=models, migrations=CORE_VERSIONS_DIR))
