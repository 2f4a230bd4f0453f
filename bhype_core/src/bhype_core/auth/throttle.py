"""Brute-force protection: failed logins per (account, address) pair, per account and per client
address in a sliding window, answered with "try again in N s".

Why three limits (issue 11; OWASP Authentication Cheat Sheet, NIST SP 800-63B 5.2.2): a single
per-account limit let anyone lock the real owner out for the whole window with five wrong
passwords, and a tight per-address limit locked everyone behind one NAT out after a few typos.
So the tight limit is per pair (one attacker, one account), the per-account limit is a much
higher ceiling reached only by guessing from many addresses, and the per-address limit is loose.
"""

from __future__ import annotations

import math
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable

from bhype_core.auth.settings import ThrottleSettings
from bhype_core.errors import BhypeError

MAX_KEY = 256  # longer account names/addresses are cut: they are not real ones anyway


class TooManyAttempts(BhypeError):
    """Too many failed logins recently for this account or from this address (HTTP 429)."""

    code = "too_many_attempts"
    http_status = 429

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(f"too many failed logins; try again in {self.retry_after} s")

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["retry_after"] = self.retry_after
        return body


def throttle_keys(settings: ThrottleSettings, account: str, address: str) -> list[tuple[str, int]]:
    """The counters one login attempt touches, each with its limit: ``pair:…``, ``account:…``
    and (when the address is known) ``address:…``. The pair key prefixes the account with its
    length, so no choice of account name and address can make two pairs share a key."""
    account, address = account[:MAX_KEY], address[:MAX_KEY]
    keys = [
        (f"pair:{len(account)}:{account}:{address}", settings.pair_failures),
        (f"account:{account}", settings.account_failures),
    ]
    if address:
        keys.append((f"address:{address}", settings.address_failures))
    return keys


def success_keys(account: str, address: str) -> list[str]:
    """What a successful login forgets: only its own pair. The account's ceiling keeps counting
    the failures from elsewhere (they were someone else's guesses), and the address keeps its
    count so one good account does not let an address go on guessing others."""
    account, address = account[:MAX_KEY], address[:MAX_KEY]
    return [f"pair:{len(account)}:{account}:{address}"]


class Throttle(ABC):
    """What the login route needs; an in-memory and a Redis implementation fit it.

    Sliding-window rule for each key of :func:`throttle_keys`: a key with ``limit`` failures in
    the last ``window_seconds`` is refused until the oldest of those failures leaves the window;
    a login is refused while any of its keys is. Unknown and existing accounts are throttled
    alike, so the throttle reveals nothing.
    """

    @abstractmethod
    def retry_after(self, account: str, address: str) -> float:
        """Seconds until a login for ``account`` from ``address`` may be tried; 0 = now."""

    @abstractmethod
    def record_failure(self, account: str, address: str) -> None:
        """Count one failed login against the pair, the account and the address."""

    @abstractmethod
    def record_success(self, account: str, address: str) -> None:
        """Forget the pair's failures (see :func:`success_keys`)."""

    def check(self, account: str, address: str) -> None:
        """Raise :class:`TooManyAttempts` when a login must not be tried now. Call before PAM."""
        wait = self.retry_after(account, address)
        if wait > 0:
            raise TooManyAttempts(wait)


class MemoryThrottle(Throttle):
    """Per-process throttle: enough for one API process (and the privileged daemon); use the
    Redis one for several API processes.

    Memory is bounded: a key keeps at most ``limit`` timestamps, and at most ``max_keys`` keys
    are kept (stale ones pruned first, then the least recently used). ``keys`` chooses the
    counters (the daemon counts per account only).
    """

    def __init__(
        self,
        settings: ThrottleSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
        keys: Callable[[ThrottleSettings, str, str], list[tuple[str, int]]] = throttle_keys,
    ):
        self.settings = settings or ThrottleSettings()
        self.clock = clock
        self.keys = keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, account: str, address: str) -> float:
        now = self.clock()
        window = self.settings.window_seconds
        wait = 0.0
        with self._lock:
            for key, limit in self.keys(self.settings, account, address):
                times = self._failures.get(key)
                if times is not None and len(times) >= limit:
                    # The limit-th most recent failure must leave the window first.
                    wait = max(wait, times[-limit] + window - now)
        return max(0.0, wait)

    def record_failure(self, account: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key, limit in self.keys(self.settings, account, address):
                times = self._failures.get(key)
                if times is None or times.maxlen != limit:
                    times = self._failures[key] = deque(times or (), maxlen=limit)
                times.append(now)
                self._failures.move_to_end(key)
            if len(self._failures) > self.settings.max_keys:
                self._prune(now)

    def record_success(self, account: str, address: str) -> None:
        with self._lock:
            for key in success_keys(account, address):
                self._failures.pop(key, None)

    def _prune(self, now: float) -> None:
        horizon = now - self.settings.window_seconds
        for key in [k for k, times in self._failures.items() if times[-1] <= horizon]:
            del self._failures[key]
        while len(self._failures) > self.settings.max_keys:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        """Number of counters (pairs, accounts, addresses) currently tracked."""
        return len(self._failures)
