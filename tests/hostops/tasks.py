"""Submit a task as a real admin and run it here, to its end (no worker process, no sleeping)."""

from __future__ import annotations

from typing import Any

from bhype_core.auth.principal import Principal
from bhype_core.tasks import service
from bhype_core.tasks.service import show
from bhype_core.testing.tasks import run_queued


def run_task(runtime: Any, kind: str, arguments: dict[str, Any], principal: Principal | None = None) -> Any:
    """Submit ``kind`` for the runtime's admin (``runtime.extras['admin']``) and run it; returns
    the Task row with ``.log_text`` (its log lines as one text) set."""
    who = principal or Principal(runtime.extras["admin"].name, "admin")
    task = service.submit(runtime, who, kind, arguments)
    run_queued(runtime)
    row, log = show(runtime, who, task.id)
    row.__dict__["log_text"] = "\n".join(line.message for line in log)
    return row
