"""The core's task queue transport: one huey instance per process, carrying Task row ids."""

from bhype_core.queue.huey_factory import BhypeQueue, make_queue

__all__ = ["BhypeQueue", "make_queue"]
