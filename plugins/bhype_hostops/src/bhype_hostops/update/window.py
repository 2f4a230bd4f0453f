"""Scheduled update windows (optional, off by default): an hourly job that starts a host update
run when the configured window begins.

The run is an ordinary ``hostops.update.run`` task owned by the admin account named in
``window_owner`` (not by ``@system``: the run's VM and service sub-tasks are owned by the run's
owner, and the worker checks that account's groups as for any admin's task).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bhype_core.plugin_api import BhypeError, Principal, accept_task
from bhype_hostops.update import runs
from bhype_hostops.update.settings import UpdateSettings, update_settings

KIND = "hostops.update.window"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def due(settings: UpdateSettings, now: datetime) -> bool:
    """Whether ``now`` (host local time) is in the first hour of the configured window."""
    return (settings.window_enabled and DAYS[now.weekday()] in settings.window_days
            and now.hour == settings.window_hour)


def window_job(context: Any) -> dict[str, Any]:
    """Task ``hostops.update.window`` (hourly, ``@system``): start a run when the window begins,
    unless one is open; otherwise say why not."""
    runtime = context.runtime
    settings = update_settings(runtime)
    now = datetime.now().astimezone()
    if not due(settings, now):
        return {"started": None, "reason": "not in an update window" if settings.window_enabled
                else "update windows are off"}
    current = runs.latest(runtime, open_only=True)
    if current is not None:
        context.log(f"update window: host update run {current.id} is {current.state}; no new run", "warning")
        return {"started": None, "reason": f"run {current.id} is {current.state}"}
    try:
        accepted = accept_task(runtime, Principal(settings.window_owner, "admin"), "hostops.update.run", {})
    except BhypeError as exc:
        context.log(f"update window: could not start the run: {exc.message}", "error")
        raise
    context.log(f"update window: host update started as task {accepted.task_id} (owner {settings.window_owner})")
    return {"started": accepted.task_id}
