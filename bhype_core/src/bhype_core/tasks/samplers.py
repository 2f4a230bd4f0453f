"""The worker's sampler threads: every registered :class:`~bhype_core.registry.Sampler` ticks
every ``interval`` seconds in one worker process per host (``bhype_register_samplers``).

Once per host: each sampler thread first takes the sampler's lease, an exclusive ``flock(2)``
on ``<core.data_dir>/samplers/<name>.lock``. Only the holder ticks; the other workers' threads
try again every interval, so when the holder stops (or dies: the kernel drops the lock) one of
them takes over. Ticks run at a fixed rate; ticks that came due while one was still running
are skipped and counted, never queued up behind it.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bhype_core.tasks.outages import OutageLog, is_outage

if TYPE_CHECKING:
    from bhype_core.registry import Sampler
    from bhype_core.runtime import Runtime

log = logging.getLogger("bhype.worker")

UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class SamplerStats:
    """What one sampler did in this worker: ticks run, ticks that raised, ticks skipped."""

    ticks: int = 0
    errors: int = 0
    skipped: int = 0
    last_error: str = ""
    leader: bool = False


def lease_path(data_dir: Path, name: str) -> Path:
    """The lock file that makes ``name`` run once per host."""
    return Path(data_dir) / "samplers" / f"{UNSAFE.sub('_', name)}.lock"


def try_lease(path: Path) -> int | None:
    """Take the exclusive lock on ``path``; its descriptor, or ``None`` when another process
    holds it. Never follows a symlink (``O_NOFOLLOW``)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def next_due(due: float, now: float, interval: float) -> tuple[float, int]:
    """The next tick time after a tick that was due at ``due`` ended at ``now``, and how many
    ticks that came due meanwhile are skipped (fixed rate: slow ticks never queue up)."""
    following = due + interval
    if following > now:
        return following, 0
    missed = int((now - following) // interval) + 1
    return following + missed * interval, missed


class SamplerThreads:
    """The samplers of one worker; :meth:`stop` ends them and gives their leases up."""

    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.stats: dict[str, SamplerStats] = {}
        self._clock = clock

    def start(self) -> SamplerThreads:
        """Start one thread per registered sampler."""
        for sampler in self.runtime.registry.samplers:
            self.stats[sampler.name] = SamplerStats()
            thread = threading.Thread(target=self._run, args=(sampler,), name=f"bhype-sample-{sampler.name}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _run(self, sampler: Sampler) -> None:
        plugin = self.runtime.registry.samplers.plugin_of(sampler.name)
        path = lease_path(self.runtime.settings.core.data_dir, sampler.name)
        fd = None
        try:
            while fd is None:
                try:
                    fd = try_lease(path)
                except OSError as exc:
                    log.error("sampler %s: cannot open its lease %s: %s", sampler.name, path, exc)
                if fd is None and self.stopping.wait(sampler.interval):
                    return
            self.stats[sampler.name].leader = True
            try:
                tick = sampler.start(self.runtime)
            except Exception:
                log.exception("sampler %s (plugin %s) could not start", sampler.name, plugin)
                return
            log.info("sampler %s every %gs in this worker (plugin %s)", sampler.name, sampler.interval, plugin)
            self._loop(sampler, tick)
        finally:
            if fd is not None:
                os.close(fd)  # drops the flock: another worker takes over

    def _loop(self, sampler: Sampler, tick: Callable[[], Any]) -> None:
        stats = self.stats[sampler.name]
        due = self._clock()
        outage = OutageLog(f"sampler {sampler.name}", log)  # a server restarting: said once, not per tick
        while not self.stopping.is_set():
            try:
                tick()
            except Exception as exc:  # one bad tick must not end the sampler
                stats.errors += 1
                stats.last_error = f"{type(exc).__name__}: {exc}"
                if is_outage(exc):
                    outage.failed(exc)
                else:
                    log.exception("sampler %s tick failed (%d so far); it goes on", sampler.name, stats.errors)
            else:
                outage.ok()
            stats.ticks += 1
            due, missed = next_due(due, self._clock(), sampler.interval)
            if missed:
                stats.skipped += missed
                log.warning("sampler %s: a tick outlasted its %gs interval; %d tick(s) skipped",
                            sampler.name, sampler.interval, missed)
            if self.stopping.wait(max(0.0, due - self._clock())):
                return

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every sampler and wait up to ``timeout`` seconds for a tick under way."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)
