"""The one typed facade over the ``bhype_vm_before_*``/``bhype_vm_after_*`` hooks.

Hooks are called through pluggy's own machinery (``pm.hook.<name>(...)``, so ``tryfirst``,
``trylast`` and wrappers behave as pluggy documents); this module only adds bHype's grammar
(:mod:`bhype_core.hookspecs`) and names the plugin that raised:

* :func:`vm_before` — a veto propagates: field errors keep their paths with each message
  prefixed ``plugin <name>:``; anything else becomes a :class:`PluginError` naming the plugin.
* :func:`vm_after` — observe only: a raise is logged on the task (level ``error``) and returned
  as a :class:`HookFailure`; the plugins pluggy had not reached yet are still called (through
  ``pm.subset_hook_caller`` without the failed plugin and those already called), and the step
  is never undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import TYPE_CHECKING, Literal

import pluggy

from bhype_core.errors import BhypeError, PluginError, ValidationErrors

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
    the others are still called, each once.
    """
    name = f"bhype_vm_after_{verb}"
    caller = getattr(pm.hook, name)
    failures: list[HookFailure] = []
    skipped: list[str] = []
    while True:
        try:
            caller(vm=vm, context=context, **extra)
            return failures
        except Exception as exc:  # observe-only: recorded, never propagated
            plugin = failing_plugin(pm, name, exc)
            failure = HookFailure(plugin or "?", name, f"{type(exc).__name__}: {_detail(exc)}")
            failures.append(failure)
            context.log(f"plugin {failure.plugin} failed in {name} (the step stays done): {failure.error}",
                        "error")
            done = _called_before(getattr(pm.hook, name), plugin)
            if plugin is None or done is None:
                return failures  # a wrapper (or an unknown frame) raised: nothing safe to re-call
            skipped += [plugin, *done]
            caller = pm.subset_hook_caller(name, remove_plugins=[pm.get_plugin(p) for p in skipped])


def failing_plugin(pm: pluggy.PluginManager, hook_name: str, exc: BaseException) -> str | None:
    """The plugin whose implementation of ``hook_name`` raised ``exc``: the innermost frame of
    the traceback that runs one of the hook's implementations (``None`` if there is none).

    Frames are matched by code object; two plugins sharing one function (two instances of one
    class) are told apart by the frame's ``self``.
    """
    owners: dict[CodeType, list[tuple[str, object]]] = {}
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        code = getattr(impl.function, "__code__", None)
        if code is not None:
            owners.setdefault(code, []).append((impl.plugin_name, getattr(impl.function, "__self__", None)))
    found = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        candidates = owners.get(tb.tb_frame.f_code, [])
        if len(candidates) == 1:
            found = candidates[0][0]
        elif candidates:
            instance = tb.tb_frame.f_locals.get("self")
            found = next((name for name, owner in candidates if owner is instance), found)
        tb = tb.tb_next
    return found


def _called_before(hook: pluggy.HookCaller, plugin: str | None) -> list[str] | None:
    """The plain (non-wrapper) implementations pluggy called before ``plugin``'s, which raised
    (pluggy calls the list from its end); ``None`` when ``plugin`` is a wrapper or unknown."""
    plain = [impl for impl in reversed(hook.get_hookimpls()) if not (impl.wrapper or impl.hookwrapper)]
    names = [impl.plugin_name for impl in plain]
    if plugin not in names:
        return None
    return names[: names.index(plugin)]


def _detail(exc: BaseException) -> str:
    return exc.message if isinstance(exc, BhypeError) else str(exc)


def hook_errors(failures: list[HookFailure]) -> dict[str, list[dict[str, str]]]:
    """``{"hook_errors": [...]}`` for a task result when there were any, else ``{}``."""
    return {"hook_errors": [failure.to_dict() for failure in failures]} if failures else {}
