"""The worker's watcher threads: every registered :class:`~bhype_core.registry.Watcher` ticks
in a daemon thread of its own until the worker stops (``bhype_register_watchers``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bhype_core.tasks.outages import OutageLog, is_outage

if TYPE_CHECKING:
    from bhype_core.registry import Watcher
    from bhype_core.runtime import Runtime

log = logging.getLogger("bhype.worker")


class WatcherThreads:
    """The running watchers of one worker; :meth:`stop` ends them all."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> WatcherThreads:
        """Start one thread per registered watcher (a watcher whose ``start`` fails is logged
        and left out: the worker still runs tasks)."""
        registry = self.runtime.registry
        for watcher in registry.watchers:
            plugin = registry.watchers.plugin_of(watcher.name)
            try:
                tick = watcher.start(self.runtime)
            except Exception:
                log.exception("watcher %s (plugin %s) could not start", watcher.name, plugin)
                continue
            thread = threading.Thread(target=self._loop, args=(watcher, tick), name=f"bhype-watch-{watcher.name}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)
            log.info("watcher %s every %gs (plugin %s)", watcher.name, watcher.interval, plugin)
        return self

    def _loop(self, watcher: Watcher, tick: Callable[[], Any]) -> None:
        outage = OutageLog(f"watcher {watcher.name}", log)  # a server restarting: said once, not per tick
        while not self.stopping.wait(watcher.interval):
            try:
                tick()
            except Exception as exc:  # one bad tick must not end the watcher
                if is_outage(exc):
                    outage.failed(exc)
                else:
                    log.exception("watcher %s failed; it goes on", watcher.name)
            else:
                outage.ok()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every watcher and wait up to ``timeout`` seconds for a tick under way."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)
