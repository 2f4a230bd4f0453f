"""Calling a hook through pluggy's own machinery and telling which plugin raised.

Two helpers shared by the lifecycle facade (:mod:`bhype_core.vm.hooks`) and the notification
fan-out (:mod:`bhype_core.events`): :func:`failing_plugin` names the plugin whose
implementation raised (pluggy itself does not say), and :func:`call_isolated` calls every
implementation of an observe-only hook even when some raise, each exactly once, without a
hand-written loop over the implementations (``tryfirst``/``trylast`` and wrappers keep working).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import CodeType, TracebackType

import pluggy


@dataclass(frozen=True)
class RaisedIn:
    """One implementation that raised: its plugin (``?`` when it cannot be told) and the error."""

    plugin: str
    error: Exception


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


def call_isolated(pm: pluggy.PluginManager, hook_name: str, **arguments: object) -> list[RaisedIn]:
    """Call hook ``hook_name`` so that one implementation raising does not keep the others from
    being called; returns what raised, in call order.

    pluggy stops at the first exception; the call is then repeated through
    ``pm.subset_hook_caller`` without the plugin that raised and without those pluggy had
    already called (pluggy calls the implementations from the end of ``get_hookimpls()``), so
    every implementation runs once. A wrapper that raises ends the call (what it wraps may
    have run already, so nothing is safe to repeat).
    """
    caller = getattr(pm.hook, hook_name)
    raised: list[RaisedIn] = []
    skipped: list[str] = []
    while True:
        try:
            caller(**arguments)
            return raised
        except Exception as exc:  # observe-only: collected for the caller, never propagated
            plugin = failing_plugin(pm, hook_name, exc)
            raised.append(RaisedIn(plugin or "?", exc))
            done = _called_before(getattr(pm.hook, hook_name), plugin, skipped)
            if plugin is None or done is None:
                return raised
            skipped += [plugin, *done]
            caller = pm.subset_hook_caller(hook_name, remove_plugins=[pm.get_plugin(name) for name in skipped])


def _called_before(hook: pluggy.HookCaller, plugin: str | None, skipped: list[str]) -> list[str] | None:
    """The plain (non-wrapper) implementations pluggy called before ``plugin``'s in the last
    attempt (which left out ``skipped``); ``None`` when ``plugin`` is a wrapper or unknown."""
    plain = [impl.plugin_name for impl in reversed(hook.get_hookimpls())
             if not (impl.wrapper or impl.hookwrapper) and impl.plugin_name not in skipped]
    if plugin not in plain:
        return None
    return plain[: plain.index(plugin)]
