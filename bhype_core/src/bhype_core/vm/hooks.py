"""Calling the ``bhype_vm_before_*``/``bhype_vm_after_*`` hooks one plugin at a time, so a veto
or a failure names the plugin that raised it."""

from __future__ import annotations

from typing import Any

from bhype_core.errors import BhypeError, PluginError, ValidationErrors


def call_vm_hook(pm: Any, hook_name: str, vm: Any, context: Any) -> None:
    """Call every implementation of ``hook_name`` with ``vm`` and ``context``, in pluggy's
    order (last registered first).

    :raises ValidationErrors: a plugin vetoed with field errors; each message starts with
        ``plugin <name>:`` and the field paths are kept.
    :raises PluginError: a plugin raised anything else; the message names the plugin, the
        hook, and the original error (chained as ``__cause__``).
    """
    hook = getattr(pm.hook, hook_name)
    arguments = {"vm": vm, "context": context}
    for impl in reversed(hook.get_hookimpls()):
        if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False):
            continue  # bHype's lifecycle hooks are plain calls; wrappers are not part of the contract
        try:
            impl.function(**{name: arguments[name] for name in impl.argnames})
        except ValidationErrors as exc:
            vetoed = ValidationErrors()
            for error in exc.errors:
                vetoed.add(error.path, f"plugin {impl.plugin_name}: {error.message}")
            raise vetoed from exc
        except Exception as exc:
            detail = exc.message if isinstance(exc, BhypeError) else str(exc)
            raise PluginError(
                f"plugin {impl.plugin_name!r} failed in {hook_name}: {type(exc).__name__}: {detail}"
            ) from exc
