"""A small test plugin standing in for the hostops plugin's other half (services and checks):
``service.stop``/``service.start`` ``{"name": …}`` and ``hostops.check`` ``{}``, the argument
shapes the streams agreed. Each call is appended to the JSON lines file named by
``BHYPE_TEST_SERVICE_LOG`` so the test sees what ran, in which order."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from bhype_core.plugin_api import TaskKind, hookimpl


def _record(action: str, name: str | None = None) -> None:
    with open(os.environ["BHYPE_TEST_SERVICE_LOG"], "a") as log:
        log.write(json.dumps({"action": action, "name": name}) + "\n")


def stop(context, name: str) -> dict:
    _record("stop", name)
    context.log(f"{name} stopped")
    return {"name": name, "running": False}


def start(context, name: str) -> dict:
    _record("start", name)
    context.log(f"{name} started")
    return {"name": name, "running": True}


def check(context) -> dict:
    _record("check")
    return {"patches": {"base": [], "packages": []}}


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    register(TaskKind(name="service.stop", run=stop, role="admin"))
    register(TaskKind(name="service.start", run=start, role="admin"))
    register(TaskKind(name="hostops.check", run=check, role="admin"))
