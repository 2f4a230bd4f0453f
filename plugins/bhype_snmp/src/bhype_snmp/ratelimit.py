"""A per-(manager, event kind) limit: at most N notifications per window, the rest counted."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Window:
    sent: deque[float] = field(default_factory=deque)
    suppressed: int = 0


class RateLimiter:
    """Sliding-window counter. ``allow(key, limit)`` says whether one more may go now; a refused
    one is counted, and :meth:`take_suppressed` hands the count over (to log it) once the
    window lets notifications through again. ``limit`` 0 means no limit."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.window = window
        self.clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}

    def allow(self, key: tuple[str, str], limit: int) -> bool:
        """Whether a notification for ``key`` (manager, kind) may be sent now; counts it if so."""
        if limit <= 0:
            return True
        now = self.clock()
        window = self._windows.setdefault(key, _Window())
        while window.sent and window.sent[0] <= now - self.window:
            window.sent.popleft()
        if len(window.sent) >= limit:
            window.suppressed += 1
            return False
        window.sent.append(now)
        return True

    def take_suppressed(self, key: tuple[str, str]) -> int:
        """How many were refused for ``key`` since the last call (and reset that count)."""
        window = self._windows.get(key)
        if window is None:
            return 0
        count, window.suppressed = window.suppressed, 0
        return count

    def suppressed_total(self) -> dict[tuple[str, str], int]:
        """Refusals not yet handed over, by key (for tests and the status route)."""
        return {key: w.suppressed for key, w in self._windows.items() if w.suppressed}
