"""Fixtures for the identity tests: a PAM service, bHype groups and settings pointing at them."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from bhype_core.auth.pam import FailureFloor
from bhype_core.auth.settings import AuthSettings
from bhype_core.testing.users import LocalGroup, LocalUsers


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
