"""Fixtures for the identity tests: a PAM service, bHype groups and settings pointing at them."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bhype_core.auth.pam import FailureFloor
from bhype_core.auth.privileged import PrivilegedClient
from bhype_core.auth.settings import AuthSettings
from bhype_core.db.models import AuditEvent
from bhype_core.errors import BhypeError
from bhype_core.testing.users import LocalGroup, LocalUser, LocalUsers, require_user_tools


@dataclass
class RecordingFloor(FailureFloor):
    """A real FailureFloor whose sleeps are recorded instead of slept (keeps tests fast and
    lets them see that a failure was padded, without measuring time)."""

    slept: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sleep = self.slept.append

        async def record(seconds: float) -> None:
            self.slept.append(seconds)

        self.async_sleep = record


@dataclass
class AuthEnv:
    """Real groups standing in for ``bhype-admin``/``bhype`` (unique names: tests never touch the
    machine's own groups) and the settings that map them."""

    users: LocalUsers
    service: str
    admins: LocalGroup
    operators: LocalGroup
    settings: AuthSettings


@pytest.fixture
def auth_env(local_user: LocalUsers) -> AuthEnv:
    service = local_user.pam_service()
    admins, operators = local_user.group(), local_user.group()
    settings = AuthSettings(
        pam_service=service,
        admin_groups=[admins.name],
        operator_groups=[operators.name],
        failure_min_seconds=0.5,
    )
    return AuthEnv(local_user, service, admins, operators, settings)


@pytest.fixture
def floor() -> RecordingFloor:
    # Recorded, never slept: a generous floor keeps "a positive wait was asked for" true even
    # when PAM is slow on a loaded machine.
    return RecordingFloor(seconds=5.0, jitter=0.0)


# --- The web/API side of identity (tests/auth/test_api_*.py) ----------------------------------


@dataclass
class DaemonWorld:
    """Real groups, a PAM service and a real privileged daemon process (``python -m
    bhype_core.auth.daemon``) answering this test process, shared by one test module."""

    users: LocalUsers
    service: str
    admins: LocalGroup
    operators: LocalGroup
    socket: Path
    process: subprocess.Popen

    def auth_section(self, **overrides: object) -> dict:
        """An ``[auth]`` table pointing at this world's daemon, groups and PAM service."""
        section = {
            "pam_service": self.service,
            "admin_groups": [self.admins.name],
            "operator_groups": [self.operators.name],
            "privileged_socket": str(self.socket),
            "backend": "daemon",
            "account_recheck_interval": 0,
        }
        section.update(overrides)
        return section


def start_auth_daemon(directory: Path, section: dict) -> subprocess.Popen:
    """Start the daemon process with ``[auth]`` ``section``; returns once its socket answers."""
    config = directory / "daemon.toml"
    lines = ["[auth]"]
    for key, value in section.items():
        if isinstance(value, dict):  # a sub-table such as throttle: a TOML inline table
            value_text = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
            lines.append(f"{key} = {value_text}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")  # JSON strings/lists/numbers are valid TOML
    config.write_text("\n".join(lines) + "\n")
    log = directory / "daemon.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "bhype_core.auth.daemon", "--config", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    socket_path = Path(section["privileged_socket"])
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"auth daemon exited: {log.read_text()}"
        assert time.monotonic() < deadline, f"auth daemon not answering after 30 s: {log.read_text()}"
        if socket_path.is_socket():
            try:
                PrivilegedClient(socket_path, timeout=5).groups("root")
                return process
            except BhypeError:
                pass
        time.sleep(0.05)


def stop_auth_daemon(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it lingers; only the process this fixture started."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def daemon_world() -> Iterator[DaemonWorld]:
    require_user_tools()
    users = LocalUsers()
    directory = Path(tempfile.mkdtemp(prefix="bhype-apiauth-"))
    process = None
    try:
        service = users.pam_service()
        admins, operators = users.group(), users.group()
        socket_path = directory / "auth.sock"
        section = {
            "pam_service": service,
            "admin_groups": [admins.name],
            "operator_groups": [operators.name],
            "privileged_socket": str(socket_path),
            "privileged_socket_group": "root",
            # The API under test runs inside this (root) test process: the daemon answers uid 0.
            "api_user": "root",
            # Short, but still a real floor on every failure.
            "failure_min_seconds": 0.2,
        }
        process = start_auth_daemon(directory, section)
        yield DaemonWorld(users, service, admins, operators, socket_path, process)
    finally:
        if process is not None:
            stop_auth_daemon(process)
        users.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def strict_daemon(daemon_world: DaemonWorld) -> Iterator[Path]:
    """A second real daemon process for ``daemon_world``'s users whose own throttle allows 3
    failed logins per account in 10 minutes; yields its socket path."""
    directory = Path(tempfile.mkdtemp(prefix="bhype-strictauth-"))
    section = daemon_world.auth_section(
        privileged_socket=str(directory / "auth.sock"),
        privileged_socket_group="root",
        api_user="root",
        failure_min_seconds=0.2,
        throttle={"daemon_account_failures": 3, "window_seconds": 600},
    )
    section.pop("backend"), section.pop("account_recheck_interval")
    process = start_auth_daemon(directory, section)
    try:
        yield directory / "auth.sock"
    finally:
        stop_auth_daemon(process)
        shutil.rmtree(directory, ignore_errors=True)


@dataclass
class FrozenClock:
    """An epoch-seconds clock that only moves when told."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Api:
    """One app on a migrated SQLite (or given) database, with a client and audit helpers."""

    app: Any
    runtime: Any
    client: TestClient
    world: DaemonWorld

    def login(self, user: LocalUser, password: str | None = None, client: TestClient | None = None):
        """POST the login form as JSON; returns the response."""
        client = client or self.client
        return client.post(
            "/api/v1/auth/login",
            json={"username": user.name, "password": user.password if password is None else password},
        )

    def csrf(self, response) -> dict[str, str]:
        """The ``X-CSRF-Token`` header for the session a login response opened."""
        return {"X-CSRF-Token": response.json()["csrf_token"]}

    def frozen_clock(self) -> FrozenClock:
        """Stop the app's session and token clock at the real time of now; the test moves it on
        with ``advance()`` instead of sleeping (timeouts then do not depend on how fast a loaded
        machine answers the requests in between)."""
        # A whole second: the database store keeps times to the microsecond, so a fractional
        # start would come back rounded (60 s idle could read as 59.999999 s).
        clock = FrozenClock(float(int(time.time())))
        self.app.state.auth.clock = clock
        return clock

    def audit(self, action: str | None = None) -> list[AuditEvent]:
        """Audit events, oldest first, optionally of one action."""
        with Session(self.runtime.engine) as db:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if action is not None:
                query = query.where(AuditEvent.action == action)
            return list(db.exec(query))


@pytest.fixture
def make_api(daemon_world: DaemonWorld, tmp_path: Path, plugin_manager) -> Iterator[Callable[..., Api]]:
    """``make_api(auth={...}, core={...}, base_url=...)`` builds a fresh app against the
    module's daemon (``[auth]`` overrides merged over :meth:`DaemonWorld.auth_section`)."""
    from bhype_core.api.app import create_app
    from bhype_core.builtins import models as core_models
    from bhype_core.db.migrate import upgrade
    from bhype_core.runtime import build_runtime
    from bhype_core.testing import make_settings

    plugin_manager.register_plugin(core_models, "core_models")
    built: list[Api] = []

    def build(auth: dict | None = None, core: dict | None = None, base_url: str = "http://testserver") -> Api:
        core_section = {"data_dir": str(tmp_path / f"data{len(built)}"), **(core or {})}
        settings = make_settings(tmp_path, core=core_section, auth=daemon_world.auth_section(**(auth or {})))
        runtime = build_runtime(settings, plugin_manager)
        upgrade(runtime)
        app = create_app(runtime=runtime)
        api = Api(app, runtime, TestClient(app, base_url=base_url), daemon_world)
        built.append(api)
        return api

    yield build
    for api in built:
        api.client.close()
        api.app.state.auth.sessions.close()
        api.runtime.engine.dispose()
