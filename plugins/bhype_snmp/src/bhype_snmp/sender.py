"""The background sender: ``bhype_notify`` queues an event and returns at once; one thread per
process (with its own asyncio loop) turns queued events into notifications for every manager.

A raising task never waits for the network and never sees a send fail: the queue is bounded
(``[snmp] queue_size``) and an event that does not fit is dropped *and logged*; an inform no
manager acknowledged is logged with its manager, kind and event id; notifications over a
manager's rate limit are counted and the count is logged.

One pysnmp engine per process, the sender's: it sends as this host's ``notify`` engine
(:mod:`bhype_snmp.engines`), its snmpEngineBoots grown at each start of the sender; the
``snmp.test`` task sends through it too (:meth:`Sender.send_now`), so a process never shows a
receiver two clocks under one engine ID. Other processes of the host start their own senders
(growing boots): before a v3 trap the clock is re-read from the database (at most every
``CLOCK_TTL`` seconds), so every process of the host sends the same (boots, time).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from typing import Any

from bhype_core.plugin_api import Event, find_vm
from bhype_snmp import managers as store
from bhype_snmp.engines import engine_clock, make_engine, next_boots, set_clock
from bhype_snmp.models import SnmpManager
from bhype_snmp.notification import Notification, build, host_name, test_notification, vm_of
from bhype_snmp.ratelimit import RateLimiter
from bhype_snmp.transport import SendResult, send

log = logging.getLogger(__name__)

EXTRAS_KEY = "snmp.sender"
MANAGERS_TTL = 2.0  # seconds a manager list is reused (a burst reads the table once)
MAX_IN_FLIGHT = 64  # notifications on the wire at once
CLOCK_TTL = 1.0  # seconds the host's engine clock is reused before a v3 trap re-reads it
START_TIMEOUT = 30.0  # seconds send_now waits for the sender's engine
_STOP = object()


class Sender:
    """Queue + thread for one runtime. :meth:`submit` never blocks; :meth:`flush` (tests,
    shutdown) waits until everything queued was handled."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        settings = runtime.settings.section("snmp")
        self.settings = settings
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=settings.queue_size)
        self.limiter = RateLimiter(settings.rate_window)
        self.stats: Counter[str] = Counter()
        self.results: list[SendResult] = []  # the most recent outcomes (bounded), newest last
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._thread: threading.Thread | None = None
        self._managers: tuple[float, list[SnmpManager]] = (0.0, [])
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._engine: Any = None
        self._ready = threading.Event()  # the loop runs and the engine is built
        self._clock_read = 0.0
        self.sender_thread_id: int | None = None

    # -- the raising side -------------------------------------------------------------------

    def submit(self, event: Event) -> bool:
        """Queue ``event``; ``False`` (logged) when the queue is full. Never blocks."""
        self._start()
        with self._lock:
            self._pending += 1
            try:
                self.queue.put_nowait(event)
            except queue.Full:
                self._pending -= 1
                self._idle.notify_all()
                self.stats["dropped"] += 1
                full = True
            else:
                self.stats["queued"] += 1
                full = False
        if full:
            log.error("SNMP queue full (%d events): event %s (%s) dropped", self.queue.maxsize, event.kind,
                      event.message[:80])
            return False
        self._wake()
        return True

    def _wake(self) -> None:
        """Tell the sender's loop something is queued (it awaits this, never a blocking get:
        a thread parked in ``queue.get`` would hold up the interpreter's exit)."""
        loop, wakeup = self._loop, self._wakeup
        if loop is not None and wakeup is not None:
            try:
                loop.call_soon_threadsafe(wakeup.set)
            except RuntimeError:  # the loop just closed; the next submit starts a new one
                pass

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every queued event was sent (informs answered or given up); ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout: float = 30.0) -> None:
        """Send what is queued, then end the thread."""
        if self._thread is not None and self._thread.is_alive():
            self.queue.put(_STOP)
            self._wake()
            self._thread.join(timeout)

    def send_now(self, manager: SnmpManager, notification: Notification) -> SendResult:
        """Send ``notification`` to ``manager`` through this process's engine and wait for the
        outcome (the ``snmp.test`` task; never from the sender's own thread)."""
        self._start()
        if not self._ready.wait(START_TIMEOUT) or self._loop is None:
            return SendResult(manager.name, manager.notify_type, None if manager.notify_type == "trap" else False,
                              "the SNMP sender did not start (see the log)", 0)
        waits = manager.timeout * (2 ** (manager.retries + 1) - 1) if manager.notify_type == "inform" else 0
        future = asyncio.run_coroutine_threadsafe(self._send_one(manager, notification), self._loop)
        return future.result(waits + START_TIMEOUT)

    async def _send_one(self, manager: SnmpManager, notification: Notification) -> SendResult:
        self._keep_clock([manager])
        async with self._slots:
            return await send(self._engine, manager, notification)

    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(target=self._run, name="bhype-snmp-sender", daemon=True)
                    self._thread.start()

    # -- the sending side -------------------------------------------------------------------

    def _run(self) -> None:
        self.sender_thread_id = threading.get_ident()
        try:
            asyncio.run(self._main())
        except Exception:  # the thread must never die silently: say so; the next submit restarts it
            log.exception("SNMP sender stopped")

    async def _main(self) -> None:
        self._wakeup = asyncio.Event()
        engine = self._engine = self._new_engine()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._loop = asyncio.get_running_loop()
        self._ready.set()
        in_flight: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    self._wakeup.clear()
                    if self.queue.empty():  # nothing slipped in between: wait for submit's wake-up
                        await self._wakeup.wait()
                    continue
                if item is _STOP:
                    break
                try:
                    sends = [self._deliver(engine, manager, notification, item)
                             for manager, notification in self._plan(item)]
                except Exception:
                    log.exception("SNMP: event %s could not be turned into notifications", item.kind)
                    sends = []
                # One slow manager (an inform waiting out its retries) must not hold up the
                # next events: each event's sends run as a task; the event counts as handled
                # (flush) when all of them ended.
                task = asyncio.create_task(self._finish(sends))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            self._ready.clear()
            self._loop = None
            engine.close_dispatcher()

    def _new_engine(self) -> Any:
        """This host's notification engine, started (boots + 1); should the database be away,
        a throw-away engine (v2c and informs still work; v3 traps then reach no receiver: logged)."""
        try:
            clock = next_boots(self.runtime, "notify")
        except Exception:
            log.exception("SNMP: this host's engine ID could not be read; v3 traps will not be accepted")
            return make_engine(None)
        self._clock_read = time.monotonic()
        log.info("SNMP sender: engine ID 0x%s, snmpEngineBoots %d", clock.engine_id.hex(), clock.boots)
        return make_engine(clock)

    def _keep_clock(self, managers: list[SnmpManager]) -> None:
        """Before v3 traps (bHype the authoritative engine): the host's current boots and time,
        should another process of the host have started its sender since."""
        if not any(manager.version == "3" and manager.notify_type == "trap" for manager in managers):
            return
        if time.monotonic() - self._clock_read < CLOCK_TTL:
            return
        try:
            clock = engine_clock(self.runtime, "notify")
        except Exception as exc:  # keep the clock we have; the next trap tries again
            log.warning("SNMP: this host's engine clock could not be read: %s", exc)
            return
        self._clock_read = time.monotonic()
        if bytes(self._engine.snmpEngineID) == clock.engine_id:
            set_clock(self._engine, clock)

    async def _finish(self, sends: list[Any]) -> None:
        try:
            await asyncio.gather(*sends, return_exceptions=True)
        finally:
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def _current_managers(self) -> list[SnmpManager]:
        fetched, rows = self._managers
        if time.monotonic() - fetched > MANAGERS_TTL:
            rows = store.list_managers(self.runtime, enabled_only=True)
            self._managers = (time.monotonic(), rows)
        return rows

    def _plan(self, event: Event) -> list[tuple[SnmpManager, Notification]]:
        """The managers ``event`` goes to (severity filter, rate limit) and its notification."""
        chosen = []
        for manager in self._current_managers():
            if not store.severity_passes(event.severity, manager.min_severity):
                self.stats["filtered"] += 1
                continue
            limit = self.settings.rate_limit if manager.rate_limit is None else manager.rate_limit
            key = (manager.name, event.kind)
            if not self.limiter.allow(key, limit):
                if self.stats["suppressed"] == 0 or self.limiter.suppressed_total().get(key) == 1:
                    log.warning("SNMP rate limit: more than %d %s events in %ss for manager %s; counting, not sending",
                                limit, event.kind, self.settings.rate_window, manager.name)
                self.stats["suppressed"] += 1
                continue
            held = self.limiter.take_suppressed(key)
            if held:
                log.warning("SNMP rate limit: %d %s events for manager %s were not sent", held, event.kind,
                            manager.name)
            chosen.append(manager)
        if not chosen:
            return []
        notification = build(event, host=host_name(self.runtime), web_url=self.settings.web_url,
                             vm_uuid=self._vm_uuid(event))
        self._keep_clock(chosen)
        return [(manager, notification) for manager in chosen]

    def _vm_uuid(self, event: Event) -> str:
        name = vm_of(event)
        if not name or event.data.get("vm_uuid"):
            return ""
        try:
            row = find_vm(self.runtime, name)
        except Exception:  # a VM lookup must not cost the notification
            return ""
        return row.uuid if row is not None else ""

    async def _deliver(self, engine: Any, manager: SnmpManager, notification: Notification, event: Event) -> None:
        async with self._slots:
            result = await send(engine, manager, notification)
        self.results = [*self.results[-999:], result]
        if result.acknowledged is False:
            self.stats["unacknowledged"] += 1
            log.error("SNMP inform to manager %s not acknowledged after %d attempt(s): event %s id %s: %s",
                      manager.name, result.attempts, event.kind, notification.event_id, result.error)
        elif result.error:
            self.stats["failed"] += 1
            log.error("SNMP trap to manager %s failed: event %s id %s: %s", manager.name, event.kind,
                      notification.event_id, result.error)
        else:
            self.stats["acknowledged" if result.acknowledged else "sent"] += 1


def sender_for(runtime: Any) -> Sender:
    """The runtime's sender (made on first use, kept in ``runtime.extras``)."""
    sender = runtime.extras.get(EXTRAS_KEY)
    if sender is None:
        sender = runtime.extras.setdefault(EXTRAS_KEY, Sender(runtime))
    return sender


def send_test(runtime: Any, manager: SnmpManager) -> SendResult:
    """Send ``bhypeTestNotification`` to ``manager`` now, through the process's sender, and wait
    for the outcome (the ``snmp.test`` task): whether an inform was acknowledged, or why not."""
    settings = runtime.settings.section("snmp")
    notification = test_notification(host=host_name(runtime), web_url=settings.web_url,
                                     manager=manager.name)
    return sender_for(runtime).send_now(manager, notification)
