"""The ``service.*`` task kinds: status, start/stop/restart/reload, enable/disable at boot."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import Principal, Runtime, TaskContext, TaskKind, ValidationErrors
from bhype_hostops.services import service_platform
from bhype_hostops.session_guard import SESSIONS, check_session
from bhype_hostops.settings import HostopsSettings

PROBE_KIND = "hostops.probe_services"
ACTIONS = ("status", "start", "stop", "restart", "reload", "enable", "disable")
DESCRIPTIONS = {
    "status": "whether an allow-listed host service runs and starts at boot",
    "start": "start an allow-listed host service",
    "stop": "stop an allow-listed host service (refused for the caller's own session without confirmation)",
    "restart": "restart an allow-listed host service (after its config check, e.g. sshd -t)",
    "reload": "reload an allow-listed host service's configuration (after its config check)",
    "enable": "start an allow-listed host service at boot (sysrc NAME_enable=YES / update-rc.d enable)",
    "disable": "do not start an allow-listed host service at boot",
}


def _settings(runtime: Runtime) -> HostopsSettings:
    return runtime.settings.section("hostops")


def check_allowed(settings: HostopsSettings, name: Any) -> str:
    """``name`` if it is on the allow-list (``[hostops] services``).

    :raises ValidationErrors: at ``name``.
    """
    if not isinstance(name, str) or name not in settings.services:
        allowed = ", ".join(settings.services) or "none"
        raise ValidationErrors([("name", f"{name!r} is not an allow-listed service (allowed: {allowed})")])
    return name


def _check(runtime: Runtime, action: str, arguments: dict[str, Any]) -> None:
    settings = _settings(runtime)
    check_allowed(settings, arguments.get("name"))
    session = arguments.get("session")
    if session is not None and session not in SESSIONS:
        raise ValidationErrors([("session", f"must be one of {', '.join(SESSIONS)} or null")])
    confirmed = arguments.get("confirm_session_loss", False)
    if not isinstance(confirmed, bool):
        raise ValidationErrors([("confirm_session_loss", "must be true or false")])
    check_session(settings, arguments["name"], action, session, confirmed)


def run_action(context: TaskContext, action: str, name: str, session: str | None = None,
               confirm_session_loss: bool = False) -> dict[str, Any]:
    """Run ``action`` on service ``name`` with every command's output in the task log."""
    runtime = context.runtime
    _check(runtime, action, {"name": name, "session": session, "confirm_session_loss": confirm_session_loss})
    platform = service_platform(runtime)
    context.log(f"{action} {name} through {platform.name}")
    if action == "status":
        state = platform.status(name, context.log)
    elif action in ("enable", "disable"):
        state = platform.set_enabled(name, action == "enable", context.log)
    else:
        state = platform.act(name, action, context.log)
    store_state(runtime, state)
    return {"action": action, "platform": platform.name, **state.to_dict()}


def fact_key(name: str) -> str:
    """The host fact holding the last known state of service ``name`` (read by the API)."""
    return f"hostops.service.{name}"


def store_state(runtime: Runtime, state: Any) -> None:
    """Keep ``state`` for ``GET /api/v1/hostops/services`` (routes never run host commands)."""
    runtime.facts.put(fact_key(state.name), state.to_dict())


def probe(context: TaskContext) -> dict[str, Any]:
    """Query every allow-listed service and store each state (``hostops.probe_services``)."""
    platform = service_platform(context.runtime)
    states = {}
    for name in _settings(context.runtime).services:
        state = platform.status(name, context.log)
        store_state(context.runtime, state)
        states[name] = state.to_dict()
    return {"platform": platform.name, "services": states}


def _make(action: str) -> tuple[Callable[..., dict[str, Any]], Callable[[Principal, dict, Any], None]]:
    # One function per kind with the real signature: the task queue checks submitted
    # arguments against it (an "action" argument could not sneak in).
    def run(context: TaskContext, name: str, session: str | None = None,
            confirm_session_loss: bool = False) -> dict[str, Any]:
        return run_action(context, action, name, session, confirm_session_loss)

    def authorize(principal: Principal, arguments: dict, runtime: Any) -> None:
        _check(runtime, action, arguments)

    run.__name__ = f"service_{action}"
    run.__doc__ = DESCRIPTIONS[action]
    return run, authorize


def task_kinds() -> list[TaskKind]:
    """``service.<action>`` for every action: admin-only, one at a time per service."""
    kinds = []
    for action in ACTIONS:
        run, authorize = _make(action)
        kinds.append(TaskKind(name=f"service.{action}", run=run, description=DESCRIPTIONS[action], role="admin",
                              authorize=authorize, locks=lambda arguments: [f"service:{arguments.get('name')}"]))
    kinds.append(TaskKind(name=PROBE_KIND, run=probe, role="admin",
                          description="query every allow-listed host service; stored for GET /api/v1/hostops/services"))
    return kinds


def service_list(runtime: Runtime) -> list[dict[str, Any]]:
    """Each allow-listed service with its last probed state and how old that is (API, UI)."""
    listed = []
    for name in _settings(runtime).services:
        fact = runtime.facts.get(fact_key(name))
        entry: dict[str, Any] = {"name": name, "running": None, "enabled": None, "pids": [], "detail": "",
                                 "probed_at": None}
        if fact is not None:
            entry.update({key: fact.value.get(key) for key in ("running", "enabled", "pids", "detail")})
            entry["probed_at"] = fact.updated.isoformat()
        listed.append(entry)
    return listed
