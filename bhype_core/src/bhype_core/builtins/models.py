"""Built-in plugin ``core_models``: registers the core's tables and migration branch."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.db.migrate import CORE_VERSIONS_DIR
from bhype_core.db.models import CORE_MODELS
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import ModelSet


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """The ``core`` branch: core_host_command and core_audit_event."""
    register(ModelSet(name="core", models=CORE_MODELS, migrations=CORE_VERSIONS_DIR))
