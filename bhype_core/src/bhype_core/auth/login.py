"""A whole login: PAM password check, then the account's groups and the role they grant."""

from __future__ import annotations

import asyncio

from bhype_core.auth import pam
from bhype_core.auth.identity import Identity, identify
from bhype_core.auth.settings import AuthSettings


def failure_floor(settings: AuthSettings) -> pam.FailureFloor:
    """The failure floor the settings ask for (``auth.failure_min_seconds``)."""
    return pam.FailureFloor(seconds=settings.failure_min_seconds)


def login(
    username: str, password: str, settings: AuthSettings, floor: pam.FailureFloor | None = None
) -> Identity:
    """Authenticate through PAM and build the :class:`Identity`; blocking (needs root on the host).

    Raises :class:`~bhype_core.auth.pam.LoginFailed` (401, one generic message) for any PAM
    failure, and :class:`~bhype_core.auth.identity.NotInBhypeGroup` (403, names the groups to
    join) when the password is right but no configured group grants a role.
    """
    floor = floor if floor is not None else failure_floor(settings)
    pam.authenticate(username, password, settings.pam_service, floor)
    try:
        return identify(username, settings)
    except KeyError:
        # Deleted between the PAM check and the lookup: the same answer as any failure.
        raise pam.LoginFailed() from None


async def login_async(
    username: str, password: str, settings: AuthSettings, floor: pam.FailureFloor | None = None
) -> Identity:
    """:func:`login` for async code (PAM in a worker thread, the failure floor awaited)."""
    floor = floor if floor is not None else failure_floor(settings)
    await pam.authenticate_async(username, password, settings.pam_service, floor)
    try:
        return await asyncio.to_thread(identify, username, settings)
    except KeyError:
        raise pam.LoginFailed() from None
