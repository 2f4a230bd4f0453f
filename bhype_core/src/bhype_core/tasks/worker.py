"""The worker: runs the huey consumer over the runtime's queue, as a process or a thread."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from huey.consumer import Consumer

from bhype_core.consoles.broker import start_console_broker
from bhype_core.errors import BhypeError, ConfigError
from bhype_core.tasks.periodic import submit_run
from bhype_core.tasks.queue_outages import QuietScheduler, QuietWorker
from bhype_core.tasks.samplers import SamplerThreads
from bhype_core.tasks.watchers import WatcherThreads

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bhype_core.runtime import Runtime
    from bhype_core.tasks.scheduler import Scheduler

log = logging.getLogger("bhype.worker")

# Polling limits for storages that cannot block (SQLite): start at 0.1 s and back off to at
# most 1 s when idle, so a task queued on an idle embedded queue starts within about a second
# (huey's default ceiling of 10 s is too slow for interactive VM actions).
INITIAL_DELAY = 0.1
MAX_DELAY = 1.0
BACKOFF = 1.15


class BhypeConsumer(Consumer):
    """huey's consumer; installs signal handlers only where Python allows it (main thread),
    submits each periodic run in one worker only (:mod:`bhype_core.tasks.periodic_slots`)
    and logs once it is ready."""

    scheduler_class = QuietScheduler  # periodic slots claimed once; a Redis outage logged once
    worker_class = QuietWorker  # woken by the doorbell; a Redis outage logged once

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # huey restarts itself on SIGHUP by re-executing sys.argv, which for ``python -m
        # bhype_core.tasks.worker`` would run this file as a script with its own directory first
        # on sys.path. SIGHUP stops gracefully instead; the service manager starts the worker again.
        if hasattr(signal, "SIGHUP"):
            self._signal_actions[signal.SIGHUP] = (False, True)

    def _set_signal_handlers(self) -> None:
        # signal.signal() raises outside the main thread; the in-process worker (bhype serve)
        # runs the consumer in a thread and is stopped through InProcessWorker.stop().
        if threading.current_thread() is threading.main_thread():
            super()._set_signal_handlers()

    def stop(self, graceful: bool = False) -> None:
        self.huey.stopping.set()  # threads running the queue themselves stop after their task
        self.stop_flag.set()
        self.huey.doorbell.ring()  # sleeping worker threads see the stop flag now
        super().stop(graceful)

    def start(self) -> None:
        self.huey.stopping.clear()
        super().start()
        log.info("bhype worker ready: %d %s worker(s) on %s", self.workers, self.worker_type, self.huey.name)


def build_consumer(runtime: Runtime, workers: int | None = None) -> BhypeConsumer:
    """The consumer for ``runtime.queue`` with ``workers`` threads (default ``queue.workers``).

    :raises ConfigError: the queue runs tasks immediately (``memory``): there is nothing to consume.
    """
    queue = runtime.queue
    if queue.huey.immediate:
        raise ConfigError(f"queue.backend {queue.backend!r} runs tasks at once; it needs no worker")
    count = workers if workers is not None else runtime.settings.queue.workers
    if count < 1:
        raise ConfigError(f"queue.workers: must be at least 1, not {count}")
    return BhypeConsumer(
        queue.huey,
        workers=count,
        worker_type="thread",
        periodic=True,
        initial_delay=INITIAL_DELAY,
        backoff=BACKOFF,
        max_delay=MAX_DELAY,
    )


def describe(runtime: Runtime) -> list[str]:
    """Log lines naming the queue, each task kind, periodic job and sampler with its plugin."""
    queue = runtime.queue
    registry = runtime.registry
    lines = [f"queue: {queue.detail}"]
    lines += [f"task kind {name} (plugin {registry.tasks.plugin_of(name)})" for name in sorted(registry.tasks.names())]
    for name in sorted(queue.periodic):
        job = registry.periodic_jobs[name]
        schedule = queue.periodic[name].describe()
        lines.append(f"periodic job {name} [{schedule}] task {job.kind} "
                     f"(plugin {registry.periodic_jobs.plugin_of(name)})")
    lines += [f"sampler {sampler.name} every {sampler.interval:g}s (plugin {registry.samplers.plugin_of(sampler.name)})"
              for sampler in registry.samplers]
    return lines


def enqueue_start_jobs(runtime: Runtime) -> list[str]:
    """Submit one run of every periodic job registered with ``run_at_start`` (as ``@system``;
    skipped when a run of it is still queued or running, e.g. another worker's start-up run);
    returns the names of the jobs submitted. A failure (no task tables yet) is logged."""
    submitted = []
    for job in runtime.registry.periodic_jobs:
        if not job.run_at_start:
            continue
        try:
            if submit_run(runtime, job, "the run at start") is not None:
                submitted.append(job.name)
        except Exception as exc:  # e.g. no task tables before `bhype db upgrade`: the schedule still runs
            log.warning("periodic job %s: could not submit its run at start: %s: %s", job.name,
                        type(exc).__name__, exc)
    return submitted


def warm_up_driver(runtime: Runtime) -> threading.Thread:
    """Start the driver's supervisor launcher in the background, so the first VM start does not
    pay for it (issue 15; ``SupervisedDriver.warm_up``) and the worker's start-up does not wait
    for it. A host whose driver cannot be built (no hypervisor configured) is no reason to stop
    the worker: the start task will say why."""
    thread = threading.Thread(target=_warm_up, args=(runtime,), name="bhype-launcher-warm-up", daemon=True)
    thread.start()
    return thread


def _warm_up(runtime: Runtime) -> None:
    try:
        from bhype_core.vm.services import active_driver

        warm = getattr(active_driver(runtime), "warm_up", None)
        if warm is not None:
            warm()
    except Exception as exc:  # noqa: BLE001 - an optimisation only
        log.debug("no supervisor launcher warm-up: %s: %s", type(exc).__name__, exc)


def run_worker(runtime: Runtime, workers: int | None = None) -> None:
    """Run the task scheduler and the consumer in this process until SIGINT or SIGHUP
    (graceful: running tasks finish) or SIGTERM (immediate: running tasks are abandoned and
    marked interrupted). Call from the main thread so the signal handlers can be installed.

    At start-up the scheduler releases tasks of workers that died (issue 3, crash safety).

    :param workers: worker threads; default ``queue.workers``.
    """
    consumer = build_consumer(runtime, workers)
    for line in describe(runtime):
        log.info("%s", line)
    scheduler = runtime.queue.scheduler.start()
    enqueue_start_jobs(runtime)
    warm_up_driver(runtime)
    watchers = WatcherThreads(runtime).start()
    samplers = SamplerThreads(runtime).start()
    broker = start_console_broker(runtime)  # root worker + API user: consoles for the API
    try:
        consumer.run()
    finally:
        if broker is not None:
            broker.stop()
        samplers.stop()
        watchers.stop()
        scheduler.stop()
    log.info("bhype worker stopped")


class InProcessWorker:
    """A consumer running in a background thread of this process (``bhype serve`` on the
    embedded queue). Stop it with :meth:`stop`; signals are the host process's business."""

    def __init__(
        self, consumer: BhypeConsumer, scheduler: Scheduler | None = None, watchers: WatcherThreads | None = None,
        samplers: SamplerThreads | None = None,
    ) -> None:
        self.consumer = consumer
        self.scheduler = scheduler
        self.watchers = watchers
        self.samplers = samplers
        self.thread = threading.Thread(target=consumer.run, name="bhype-worker", daemon=True)

    @property
    def alive(self) -> bool:
        """Whether the consumer thread is still running."""
        return self.thread.is_alive()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop taking tasks and wait up to ``timeout`` seconds for running ones to finish.

        :returns: whether everything stopped in time (worker threads still busy after
            ``timeout`` are daemon threads and end with the process).
        """
        self.consumer.shutdown_timeout = timeout
        self.consumer.stop(graceful=True)  # sets the stop flag, joins the worker threads
        self.thread.join(timeout)
        if self.samplers is not None:
            self.samplers.stop()
        if self.watchers is not None:
            self.watchers.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        return not self.alive


def start_in_process_worker(runtime: Runtime, workers: int | None = None) -> InProcessWorker:
    """Start the task scheduler and a consumer for ``runtime.queue`` in background threads and
    return their handle."""
    consumer = build_consumer(runtime, workers)
    handle = InProcessWorker(consumer, runtime.queue.scheduler.start())
    for line in describe(runtime):
        log.info("in-process %s", line)
    enqueue_start_jobs(runtime)
    warm_up_driver(runtime)
    handle.thread.start()
    handle.watchers = WatcherThreads(runtime).start()
    handle.samplers = SamplerThreads(runtime).start()
    return handle


def configure_logging(level: str) -> None:
    """Log to stderr at ``level`` (``core.log_level``) unless logging is already set up."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bhype_core.tasks.worker [--config PATH] [--workers N]``: load settings, build the
    runtime with every installed plugin, run the worker until a signal stops it."""
    from bhype_core.config import load_settings
    from bhype_core.runtime import build_runtime

    parser = argparse.ArgumentParser(prog="python -m bhype_core.tasks.worker", description=main.__doc__)
    parser.add_argument(
        "--config", type=Path, help="configuration file (default: BHYPE_CONFIG or the platform default)"
    )
    parser.add_argument("--workers", type=int, help="worker threads (default: queue.workers)")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        configure_logging(settings.core.log_level)
        runtime = build_runtime(settings)
        run_worker(runtime, workers=args.workers)
    except BhypeError as exc:
        print(f"bhype worker: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
