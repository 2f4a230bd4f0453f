"""The worker's scheduler thread: wakes on a nudge or a timer, starts tasks, sweeps dead workers."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from bhype_core.hosts.settings import local_host_name
from bhype_core.tasks import dispatch, intents, liveness, recovery, retention, subtasks
from bhype_core.tasks.outages import OutageLog, is_outage
from bhype_core.tasks.plan import Limits
from bhype_core.tasks.settings import task_settings, total_slots

if TYPE_CHECKING:
    from bhype_core.db.task_models import Task
    from bhype_core.runtime import Runtime
    from bhype_core.tasks.store import WorkerIdentity
    from bhype_core.tasks.transport import BhypeQueue

log = logging.getLogger("bhype.tasks")

PRUNE_INTERVAL = 3600.0  # seconds between prunes of the system's old tasks (a sweep does it)


class Scheduler:
    """Starts queued tasks of this process's queue; one per worker process.

    :meth:`start` takes the worker's lease, and its thread then runs a pass whenever it is
    woken (:meth:`wake`: a submission's nudge, a task that ended here) or ``tasks.poll_interval``
    passes, and sweeps for tasks of dead workers every ``tasks.sweep_interval`` (and first
    thing, so a restarted worker releases what its predecessor held).
    """

    def __init__(self, runtime: Runtime, queue: BhypeQueue) -> None:
        self.runtime = runtime
        self.queue = queue
        self.settings = task_settings(runtime)
        self.lease = liveness.WorkerLease(liveness.lease_dir(runtime.settings.core.data_dir),
                                          host=local_host_name(runtime))
        self._wake = threading.Event()
        self._pass_lock = threading.Lock()  # one pass at a time in this process
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = False
        self._warned = False
        self._last_sweep = 0.0
        self._last_prune = -PRUNE_INTERVAL
        self._db_outage = OutageLog("task scheduler (database)")
        self._queue_outage = OutageLog("task scheduler (queue)")

    @property
    def identity(self) -> WorkerIdentity:
        """This worker's identity (its lease is taken on first use)."""
        return self.lease.acquire().identity

    @property
    def running(self) -> bool:
        """Whether the scheduler thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def limits(self) -> Limits:
        """The per-user and global limits in force."""
        return Limits(
            per_user=self.settings.per_user_limit,
            total=total_slots(self.settings, self.runtime.settings.queue.workers),
        )

    def start(self) -> Scheduler:
        """Take the lease and start the scheduler thread."""
        self.lease.acquire()
        liveness.sweep_leases(self.lease.directory)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="bhype-scheduler", daemon=True)
        self._thread.start()
        log.info("task scheduler started (worker %s, limits: %d per user, %d overall)",
                 self.identity.id, self.limits.per_user, self.limits.total)
        return self

    def wake(self) -> None:
        """Run a pass soon (a task was submitted, cancelled or ended)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, release this worker's own started tasks (requeued when never picked
        up, interrupted when their threads are abandoned) and give the lease up."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.lease.held and self._ready:
            try:
                self._release(also_own=True)
            except Exception:
                log.exception("could not release this worker's tasks")
        self.lease.release()

    def run_pass(self) -> list[str]:
        """One pass: sweep when due, then start what may start. Returns the ids started."""
        with self._pass_lock:
            return self._run_pass()

    def dispatch_now(self) -> tuple[str, str, Task] | None:
        """Start what may start, right here in the calling worker thread.

        Called by a worker thread that just freed a slot or received a nudge: the thread claims
        the next tasks at once and keeps the first for itself (claimed and picked up in one
        commit, no queue message); the others go on the queue to the other threads. When
        another pass is under way in this process, the scheduler thread is woken instead (it
        will look again after that pass).

        :returns: ``(task id, dispatch token, row as claimed)`` of the task this thread is to
            run now, if any.
        """
        if not self._ready or not self._pass_lock.acquire(blocking=False):
            self.wake()
            return None
        try:
            mine: list[tuple[str, str]] = []
            rows: list[Task] = []
            self._dispatch(keep=mine, rows=rows)
            return (*mine[0], rows[0]) if mine and rows else None
        finally:
            self._pass_lock.release()

    def _run_pass(self) -> list[str]:
        engine = self.runtime.engine
        if not self._ready:
            if not dispatch.tables_ready(engine):
                if not self._warned:
                    log.error("the task tables do not exist yet: run `bhype db upgrade`; "
                              "tasks start once they do")
                    self._warned = True
                return []
            self._ready = True
            self._last_sweep = 0.0
        if time.monotonic() - self._last_sweep >= self.settings.sweep_interval:
            self._last_sweep = time.monotonic()
            self._release(also_own=False)
        return self._dispatch()

    def _dispatch(self, keep: list[tuple[str, str]] | None = None, rows: list[Task] | None = None) -> list[str]:
        engine = self.runtime.engine
        started = []
        claims = dispatch.dispatch_pass(engine, self.limits, self.identity, run_here=keep is not None, kept=rows)
        if keep is not None and claims:
            keep.append(claims.pop(0))  # picked up already: this thread runs it
            started.append(keep[0][0])
        for number, (task_id, token) in enumerate(claims):
            try:
                self.queue.send_scheduled(task_id, token)
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("could not queue task %s; it waits for the next pass", task_id)
                    dispatch.release_claim(engine, task_id, token)
                    continue
                # Redis is down: the rest would fail alike. Give every claim back, log it once.
                self._queue_outage.failed(exc)
                for later_id, later_token in claims[number:]:
                    dispatch.release_claim(engine, later_id, later_token)
                break
            self._queue_outage.ok()
            started.append(task_id)
        return started

    def _release(self, also_own: bool) -> None:
        resumable = {kind.name for kind in self.runtime.registry.tasks if kind.resumable}
        outcome = recovery.recover(self.runtime.engine, self.lease.directory, self.identity, also_own=also_own,
                                   resumable=resumable)
        if not also_own:
            # A Redis restarted without persistence lost the messages of this worker's claims.
            outcome.requeued += recovery.requeue_lost(self.runtime.engine, self.queue, self.identity)
        for task in outcome.interrupted:
            self.runtime.notify(recovery.interrupted_event(task))
        if not also_own:
            # Undo what interrupted tasks made (issue 11). Not while this worker stops: its own
            # abandoned threads may still be running them; the next start settles those.
            self._settle()
        orphans = subtasks.cancel_orphans(self.runtime)
        if time.monotonic() - self._last_prune >= PRUNE_INTERVAL:
            self._last_prune = time.monotonic()
            pruned = retention.prune_system_tasks(self.runtime.engine, self.settings.system_keep_days)
            if pruned:
                log.info("pruned %d finished system task(s) older than %g days", pruned,
                         self.settings.system_keep_days)
        if outcome.requeued or outcome.interrupted or orphans:
            self._wake.set()

    def _settle(self) -> None:
        try:
            replays = intents.settle(self.runtime, self.identity.host)
        except Exception:
            log.exception("could not replay the undo journals of interrupted tasks")
            return
        for replay in replays:
            task = recovery.get_task(self.runtime.engine, replay.task_id)
            if task is not None:
                self.runtime.notify(intents.cleaned_up_event(task, replay))

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self.run_pass()
            except Exception as exc:
                # A database outage must not kill the scheduler, nor log a traceback per pass
                # while MariaDB restarts: logged once, tried again on the timer.
                if is_outage(exc):
                    self._db_outage.failed(exc)
                else:
                    log.exception("scheduler pass failed")
            else:
                self._db_outage.ok()
            self._wake.wait(self.settings.poll_interval)
