"""Brute-force protection: failed logins per account and per client address, "try again in N s"."""

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


class Throttle(ABC):
    """What the login route needs; an in-memory and (later) a Redis implementation fit it.

    Sliding-window rule: an account (or address) with ``limit`` failures inside the last
    ``window_seconds`` is refused until the oldest of those failures leaves the window. A Redis
    implementation keeps the same rule with one sorted set per key (``ZADD`` the failure time,
    ``ZREMRANGEBYSCORE`` older than the window, ``ZCOUNT`` / ``ZRANGE 0 0`` for the answer).
    Unknown and existing accounts are throttled alike, so the throttle reveals nothing.
    """

    @abstractmethod
    def retry_after(self, account: str, address: str) -> float:
        """Seconds until a login for ``account`` from ``address`` may be tried; 0 = now."""

    @abstractmethod
    def record_failure(self, account: str, address: str) -> None:
        """Count one failed login against both the account and the address."""

    @abstractmethod
    def record_success(self, account: str, address: str) -> None:
        """Forget the account's failures (not the address's: one good account must not let an
        address keep guessing others)."""

    def check(self, account: str, address: str) -> None:
        """Raise :class:`TooManyAttempts` when a login must not be tried now. Call before PAM."""
        wait = self.retry_after(account, address)
        if wait > 0:
            raise TooManyAttempts(wait)


class MemoryThrottle(Throttle):
    """Per-process throttle: enough for one API process; use a shared store for several.

    Memory is bounded: a key keeps at most ``limit`` timestamps, and at most ``max_keys`` keys
    are kept (stale ones pruned first, then the least recently used).
    """

    def __init__(self, settings: ThrottleSettings | None = None, clock: Callable[[], float] = time.monotonic):
        self.settings = settings or ThrottleSettings()
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _limits(self, account: str, address: str) -> list[tuple[str, int]]:
        keys = [(f"account:{account[:MAX_KEY]}", self.settings.account_failures)]
        if address:
            keys.append((f"address:{address[:MAX_KEY]}", self.settings.address_failures))
        return keys

    def retry_after(self, account: str, address: str) -> float:
        now = self.clock()
        window = self.settings.window_seconds
        wait = 0.0
        with self._lock:
            for key, limit in self._limits(account, address):
                times = self._failures.get(key)
                if times is not None and len(times) >= limit:
                    # The limit-th most recent failure must leave the window first.
                    wait = max(wait, times[-limit] + window - now)
        return max(0.0, wait)

    def record_failure(self, account: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key, limit in self._limits(account, address):
                times = self._failures.get(key)
                if times is None:
                    times = self._failures[key] = deque(maxlen=limit)
                times.append(now)
                self._failures.move_to_end(key)
            if len(self._failures) > self.settings.max_keys:
                self._prune(now)

    def record_success(self, account: str, address: str) -> None:
        with self._lock:
            self._failures.pop(f"account:{account[:MAX_KEY]}", None)

    def _prune(self, now: float) -> None:
        horizon = now - self.settings.window_seconds
        for key in [k for k, times in self._failures.items() if times[-1] <= horizon]:
            del self._failures[key]
        while len(self._failures) > self.settings.max_keys:
            self._failures.popitem(last=False)

    def __len__(self) -> int:
        """Number of accounts and addresses currently tracked."""
        return len(self._failures)
