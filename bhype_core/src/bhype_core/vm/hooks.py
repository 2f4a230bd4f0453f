"""The one typed facade over the ``bhype_vm_before_*``/``bhype_vm_after_*`` hooks.

Hooks are called through pluggy's own machinery (``pm.hook.<name>(...)``, so ``tryfirst``,
``trylast`` and wrappers behave as pluggy documents); this module only adds bHype's grammar
(:mod:`bhype_core.hookspecs`) and names the plugin that raised:

* :func:`vm_before` — a veto propagates: field errors keep their paths with each message
  prefixed ``plugin <name>:``; anything else becomes a :class:`PluginError` naming the plugin.
* :func:`vm_after` — observe only: a raise is logged on the task (level ``error``) and returned
  as a :class:`HookFailure`; the other plugins are still called, each once
  (:func:`bhype_core.hookcall.call_isolated`), and the step is never undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pluggy

from bhype_core.errors import BhypeError, PluginError, ValidationErrors
from bhype_core.hookcall import call_isolated, failing_plugin

if TYPE_CHECKING:
    from bhype_core.spec import VMSpec
    from bhype_core.tasks import TaskContext
    from bhype_core.vm.models import VMRef

VMVerb = Literal[
    "create", "start", "stop", "restart", "destroy", "edit", "snapshot", "rollback", "clone",
    "backup", "restore", "move", "register", "unregister",
]


@dataclass(frozen=True)
class HookFailure:
    """An ``after_`` hook implementation that raised: which plugin, in which hook, and what."""

    plugin: str
    hook: str
    error: str

    def to_dict(self) -> dict[str, str]:
        """As a task result lists it under ``hook_errors``."""
        return {"plugin": self.plugin, "hook": self.hook, "error": self.error}


def vm_before(pm: pluggy.PluginManager, verb: VMVerb, vm: VMRef, context: TaskContext,
              **extra: str | list[str] | VMSpec) -> None:
    """Call ``bhype_vm_before_<verb>``; a plugin may veto the step by raising.

    :raises ValidationErrors: a plugin vetoed with field errors; each message starts with
        ``plugin <name>:`` and the field paths are kept.
    :raises PluginError: a plugin raised anything else; the message names the plugin, the
        hook and the original error (chained as ``__cause__``).
    """
    name = f"bhype_vm_before_{verb}"
    try:
        getattr(pm.hook, name)(vm=vm, context=context, **extra)
    except ValidationErrors as exc:
        plugin = failing_plugin(pm, name, exc) or "?"
        vetoed = ValidationErrors()
        for error in exc.errors:
            vetoed.add(error.path, f"plugin {plugin}: {error.message}")
        raise vetoed from exc
    except Exception as exc:
        plugin = failing_plugin(pm, name, exc) or "?"
        raise PluginError(f"plugin {plugin!r} failed in {name}: {type(exc).__name__}: {_detail(exc)}") from exc


def vm_after(pm: pluggy.PluginManager, verb: VMVerb, vm: VMRef, context: TaskContext,
             **extra: str | list[str] | VMSpec) -> list[HookFailure]:
    """Call ``bhype_vm_after_<verb>``; the step has happened and stays done.

    Each implementation that raises is logged on the task (naming the plugin) and returned;
    the others are still called, each once (:func:`bhype_core.hookcall.call_isolated`).
    """
    name = f"bhype_vm_after_{verb}"
    failures = []
    for raised in call_isolated(pm, name, vm=vm, context=context, **extra):
        failure = HookFailure(raised.plugin, name, f"{type(raised.error).__name__}: {_detail(raised.error)}")
        context.log(f"plugin {failure.plugin} failed in {name} (the step stays done): {failure.error}", "error")
        failures.append(failure)
    return failures


def _detail(exc: BaseException) -> str:
    return exc.message if isinstance(exc, BhypeError) else str(exc)


def hook_errors(failures: list[HookFailure]) -> dict[str, list[dict[str, str]]]:
    """``{"hook_errors": [...]}`` for a task result when there were any, else ``{}``."""
    return {"hook_errors": [failure.to_dict() for failure in failures]} if failures else {}
