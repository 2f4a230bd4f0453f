"""The core's task queue: one huey instance per process, task kinds bound at start-up."""

from bhype_core.queue.huey_factory import BhypeQueue, TaskHandle, TaskOutcome, make_queue

__all__ = ["BhypeQueue", "TaskHandle", "TaskOutcome", "make_queue"]
