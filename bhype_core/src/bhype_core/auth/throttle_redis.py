"""The login throttle shared by every API process through Redis (one sorted set per key)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from bhype_core.auth.settings import ThrottleSettings
from bhype_core.auth.throttle import Throttle, success_keys, throttle_keys


class RedisThrottle(Throttle):
    """The sliding-window rule of :class:`~bhype_core.auth.throttle.Throttle` on Redis.

    Each counter of :func:`~bhype_core.auth.throttle.throttle_keys` (pair, account, address) is a
    sorted set ``<prefix>throttle:<key>`` of failure times
    (members are unique, scores are epoch seconds: wall-clock time, because several processes,
    possibly on several hosts, share the sets). A set keeps at most ``limit`` members and expires
    one window after its newest failure, so Redis holds nothing for quiet accounts.
    """

    def __init__(
        self,
        client: Any,
        settings: ThrottleSettings | None = None,
        prefix: str = "bhype:auth:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings or ThrottleSettings()
        self.prefix = prefix
        self.clock = clock

    def _limits(self, account: str, address: str) -> list[tuple[str, int]]:
        keys = throttle_keys(self.settings, account, address)
        return [(f"{self.prefix}throttle:{key}", limit) for key, limit in keys]

    def retry_after(self, account: str, address: str) -> float:
        now = self.clock()
        window = self.settings.window_seconds
        limits = self._limits(account, address)
        pipe = self.client.pipeline(transaction=False)
        for key, limit in limits:
            # The limit-th most recent failure: once it leaves the window, one more try is allowed.
            pipe.zrevrange(key, limit - 1, limit - 1, withscores=True)
        wait = 0.0
        for answer in pipe.execute():
            if answer:
                _, oldest = answer[0]
                wait = max(wait, float(oldest) + window - now)
        return max(0.0, wait)

    def record_failure(self, account: str, address: str) -> None:
        now = self.clock()
        window_ms = int(self.settings.window_seconds * 1000) + 1
        pipe = self.client.pipeline(transaction=True)
        for key, limit in self._limits(account, address):
            pipe.zadd(key, {f"{now:.6f}:{secrets.token_hex(4)}": now})
            pipe.zremrangebyrank(key, 0, -(limit + 1))  # keep only the newest ``limit``
            pipe.pexpire(key, window_ms)
        pipe.execute()

    def record_success(self, account: str, address: str) -> None:
        self.client.delete(*(f"{self.prefix}throttle:{key}" for key in success_keys(account, address)))
