"""Reading a plugin's route through the real app, and counting the host commands that ran:
what a status route test needs to show that the API process answers without touching the host."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlmodel import Session, func, select

from bhype_core.api.app import create_app
from bhype_core.db.models import HostCommand
from bhype_core.testing.api_auth import act_as


def get_route(runtime: Any, path: str, user: str = "alice", role: str = "operator") -> Any:
    """``GET path`` through ``create_app(runtime)`` as ``user`` with ``role``; the response,
    after checking it is a 200."""
    app = create_app(runtime=runtime)
    act_as(app, user, role)
    with TestClient(app) as client:
        response = client.get(path)
    assert response.status_code == 200, response.text
    return response


def host_command_count(runtime: Any) -> int:
    """How many host commands the runner's audit trail recorded so far."""
    with Session(runtime.engine) as db:
        return db.exec(select(func.count()).select_from(HostCommand)).one()
