"""Password checks through the host's real PAM stack, with one generic failure and equalised timing."""

from __future__ import annotations

import asyncio
import logging
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from bhype_core.errors import Unauthorized

log = logging.getLogger("bhype.auth")

# Also the answer for an account in no bHype group (see auth/login.py), so it says so.
GENERIC_FAILURE = "invalid username or password, or the account is in no bHype group"
# Longest name useradd(8)/pw(8) accept is 32 bytes; anything far longer is not an account.
MAX_USERNAME = 256
MAX_PASSWORD = 4096


def service_file_text(platform: str | None = None) -> str:
    """The PAM service file bHype ships for ``platform`` (default: this host's)."""
    platform = platform or sys.platform
    name = "bhype.freebsd" if platform.startswith("freebsd") else "bhype.linux"
    return resources.files("bhype_core.auth").joinpath("pam.d", name).read_text(encoding="utf-8")


def service_file_path(service: str = "bhype", platform: str | None = None) -> Path:
    """Where the service file goes: ``/usr/local/etc/pam.d`` for a port on FreeBSD (OpenPAM reads
    it after ``/etc/pam.d``, pam.conf(5)), ``/etc/pam.d`` on Linux (pam.d(5))."""
    platform = platform or sys.platform
    base = Path("/usr/local/etc/pam.d") if platform.startswith("freebsd") else Path("/etc/pam.d")
    return base / service


class LoginFailed(Unauthorized):
    """The one answer for every failed login: unknown user, wrong password, locked or expired
    account, PAM error. Its message never says which, so it cannot reveal which accounts exist."""

    code = "login_failed"

    def __init__(self) -> None:
        super().__init__(GENERIC_FAILURE)


@dataclass
class FailureFloor:
    """Pads every failure to at least ``seconds`` (plus up to ``jitter`` × seconds at random).

    With ``pam_unix.so nodelay`` an unknown user fails in ~1 ms and a wrong password in ~70 ms
    (one hash); without a floor the difference tells an attacker which names exist. The floor
    makes both answer after the same time. Successes are never padded.
    ``clock`` and ``sleep`` are parameters so the mechanism can be observed without timing tests.
    """

    seconds: float = 1.0
    jitter: float = 0.1
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.SystemRandom)

    def remaining(self, started: float) -> float:
        """Seconds still to wait for a failure that began at ``started`` (``clock()`` time)."""
        target = self.seconds * (1.0 + self.jitter * self.rng.random())
        return max(0.0, target - (self.clock() - started))

    def pad(self, started: float) -> float:
        """Block until the floor is reached; returns the seconds slept."""
        wait = self.remaining(started)
        if wait > 0:
            self.sleep(wait)
        return wait

    async def pad_async(self, started: float) -> float:
        """Like :meth:`pad` without holding a thread: the event loop keeps serving others."""
        wait = self.remaining(started)
        if wait > 0:
            await self.async_sleep(wait)
        return wait


def pam_check(username: str, password: str, service: str) -> tuple[int, str]:
    """One PAM transaction: ``pam_authenticate`` then ``pam_acct_mgmt`` (locked/expired accounts).

    Returns ``(0, "")`` on success, else ``(pam code, reason)`` for the server log. Blocking
    (libpam, a hash of ~50 ms): call it from a thread in async code. Never raises for bad input.
    """
    if not username or len(username) > MAX_USERNAME or "\0" in username:
        return -1, "username rejected before PAM (empty, too long or NUL)"
    if len(password) > MAX_PASSWORD or "\0" in password:
        return -1, "password rejected before PAM (too long or NUL)"
    try:
        import pamela  # imported here: it loads libpam, which a FreeBSD jail may lack

        # check=True also runs pam_acct_mgmt, so expired accounts fail here (pam(3)).
        pamela.authenticate(username, password, service=service, check=True)
    except pamela.PAMError as exc:
        return exc.errno if exc.errno is not None else -1, exc.message
    except Exception as exc:  # a broken PAM stack must still be a plain failure, never a 500
        return -1, f"PAM call failed: {exc!r}"
    return 0, ""


def check_account(username: str, service: str) -> tuple[bool, str]:
    """``pam_acct_mgmt`` alone (no password): is the account still allowed in (not expired, …)?

    Needs root like any check of another user's account. Returns ``(ok, reason)``.
    """
    if not username or len(username) > MAX_USERNAME or "\0" in username:
        return False, "invalid username"
    try:
        import pamela

        pamela.check_account(username, service=service)
    except pamela.PAMError as exc:
        return False, f"PAM account management refused: {exc.message}"
    except Exception as exc:
        return False, f"PAM call failed: {exc!r}"
    return True, ""


def authenticate(
    username: str, password: str, service: str = "bhype", floor: FailureFloor | None = None
) -> None:
    """Check ``username``/``password`` with PAM ``service``; raise :class:`LoginFailed` if wrong.

    Every failure waits out ``floor`` first (default: one second). Blocking: use
    :func:`authenticate_async` from async code.
    """
    floor = floor if floor is not None else FailureFloor()
    started = floor.clock()
    code, reason = pam_check(username, password, service)
    if code != 0:
        log.info("login failed for %r (service %s): PAM %s %s", username[:64], service, code, reason)
        floor.pad(started)
        raise LoginFailed()


async def authenticate_async(
    username: str, password: str, service: str = "bhype", floor: FailureFloor | None = None
) -> None:
    """:func:`authenticate` for async code: PAM runs in a worker thread, the floor is awaited."""
    floor = floor if floor is not None else FailureFloor()
    started = floor.clock()
    code, reason = await asyncio.to_thread(pam_check, username, password, service)
    if code != 0:
        log.info("login failed for %r (service %s): PAM %s %s", username[:64], service, code, reason)
        await floor.pad_async(started)
        raise LoginFailed()
