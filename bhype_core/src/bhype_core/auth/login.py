"""A whole login: the account's groups and the role they grant, then the PAM password check.

The role is decided *before* PAM runs (issue 11): an account in no bHype group never has its
password checked and fails exactly like a wrong password (same 401, same message, same failure
floor, counted by the throttles alike). Otherwise bHype would be a password oracle for every
local account of the host, root included: "right password, no bHype role" used to answer 403
at once where a wrong password answered 401 after the floor. Why the login failed is written to
the log of the process running PAM (the privileged daemon in production), never to the caller.
"""

from __future__ import annotations

import asyncio
import logging

from bhype_core.auth import pam
from bhype_core.auth.identity import Identity, NotInBhypeGroup, identify
from bhype_core.auth.settings import AuthSettings

log = logging.getLogger("bhype.auth")


def failure_floor(settings: AuthSettings) -> pam.FailureFloor:
    """The failure floor the settings ask for (``auth.failure_min_seconds``)."""
    return pam.FailureFloor(seconds=settings.failure_min_seconds)


def bhype_identity(username: str, settings: AuthSettings) -> Identity | None:
    """The identity ``username`` would log in with, or None when it cannot be a bHype user
    (no such account, a name PAM would refuse anyway, or in no bHype group); the reason is logged."""
    if not username or len(username) > pam.MAX_USERNAME or "\0" in username:
        return None
    try:
        return identify(username, settings)
    except (KeyError, ValueError):
        log.info("login refused for %r: no such account", username[:64])
    except NotInBhypeGroup:
        log.info("login refused for %r: in no bHype group (password not checked)", username[:64])
    return None


def login(
    username: str, password: str, settings: AuthSettings, floor: pam.FailureFloor | None = None
) -> Identity:
    """Map the groups to a role, then authenticate through PAM; blocking (needs root on the host).

    Raises :class:`~bhype_core.auth.pam.LoginFailed` (401, one generic message, after the
    failure floor) for any failure: unknown account, account in no bHype group, wrong password,
    locked or expired account, PAM error.
    """
    floor = floor if floor is not None else failure_floor(settings)
    identity = bhype_identity(username, settings)
    if identity is None:
        floor.pad(floor.clock())
        raise pam.LoginFailed()
    pam.authenticate(username, password, settings.pam_service, floor)
    return identity


async def login_async(
    username: str, password: str, settings: AuthSettings, floor: pam.FailureFloor | None = None
) -> Identity:
    """:func:`login` for async code (NSS and PAM in a worker thread, the failure floor awaited)."""
    floor = floor if floor is not None else failure_floor(settings)
    identity = await asyncio.to_thread(bhype_identity, username, settings)
    if identity is None:
        await floor.pad_async(floor.clock())
        raise pam.LoginFailed()
    await pam.authenticate_async(username, password, settings.pam_service, floor)
    return identity
