"""The scheduling decision as a pure function: which queued tasks start now, and why the rest wait.

Rules (issue 3, "Per-user task queue"):

* per-user FIFO: a user's tasks start in submission order; when the head of a user's queue
  cannot start (lock held, user at their limit), none of that user's later tasks start either;
* a per-user limit of running tasks, and a global limit (worker slots);
* fairness: slots are handed out round-robin, one per user per round, users ordered by who was
  served longest ago (never-served users first, then by their oldest queued task), so one user's
  long queue delays another user's first task by at most one slot;
* per-resource locks (``vm:3``, ``pool:tank``): a task starts only when none of its locks is
  held by a running task or by a task started earlier in the same decision.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class QueuedTask:
    """A task waiting to start, as the planner needs it."""

    id: str
    owner: str
    locks: tuple[str, ...] = ()
    # A remote sub-task (run by another host than its parent's): its ancestors' ids. Locks
    # they hold do not block it, as for a sub-task run in its parent's slot.
    family: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RunningTask:
    """A task that holds its locks and (unless it is a sub-task running in its parent's slot,
    ``in_own_slot`` false) a slot."""

    id: str
    owner: str
    locks: tuple[str, ...] = ()
    in_own_slot: bool = True


@dataclass(frozen=True)
class Limits:
    """``per_user`` running tasks per owner, ``total`` running tasks overall (worker slots)."""

    per_user: int = 2
    total: int = 2

    def __post_init__(self) -> None:
        if self.per_user < 1 or self.total < 1:
            raise ValueError(f"limits must be at least 1, not per_user={self.per_user} total={self.total}")


@dataclass(frozen=True)
class Decision:
    """What to do now: ``start`` (task ids, in the order to hand them to workers) and, for every
    task that stays queued, ``waiting[id]``: what it waits for, in words."""

    start: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)


def waiting_for_lock(lock: str, holder: str) -> str:
    """The message of a task whose lock ``lock`` is held by task ``holder``."""
    return f"waiting for lock {lock} held by task {holder}"


def waiting_for_user_limit(limit: int) -> str:
    """The message of a task whose owner already runs ``limit`` tasks."""
    return f"waiting: {limit} of this user's tasks are running (limit {limit})"


WAITING_FOR_SLOT = "waiting for a free worker slot"
WAITING_BEHIND = "waiting for this user's earlier tasks to start"


def fairness_order(
    queued: Sequence[QueuedTask], last_served: Mapping[str, datetime | None]
) -> list[str]:
    """Owners with queued tasks, least recently served first.

    Owners never served come first, in the order of their oldest queued task; then the others
    by the time their latest task started (oldest first), ties broken the same way.
    """
    first_position: dict[str, int] = {}
    for position, task in enumerate(queued):
        first_position.setdefault(task.owner, position)

    def key(owner: str) -> tuple[bool, datetime, int]:
        served = last_served.get(owner)
        return (served is not None, served or datetime.min, first_position[owner])

    return sorted(first_position, key=key)


def plan(
    queued: Sequence[QueuedTask],
    running: Sequence[RunningTask],
    limits: Limits,
    last_served: Mapping[str, datetime | None] | None = None,
) -> Decision:
    """Decide which queued tasks start now.

    :param queued: every queued task, in submission order (oldest first).
    :param running: every started task that has not finished (sub-tasks hold locks only).
    :param limits: the per-user and global limits.
    :param last_served: per owner, when their most recent task started (``None`` or absent:
        never); drives the round-robin order across users.
    :returns: the tasks to start (round-robin order) and why each other queued task waits.
    """
    last_served = last_served or {}
    queues: dict[str, list[QueuedTask]] = {}
    for task in queued:
        queues.setdefault(task.owner, []).append(task)
    holders: dict[str, str] = {lock: task.id for task in running for lock in task.locks}
    slots = [task for task in running if task.in_own_slot]
    per_user = Counter(task.owner for task in slots)
    free = limits.total - len(slots)
    start: list[str] = []
    blocked: dict[str, str] = {}  # owner -> why their head cannot start

    order = fairness_order(queued, last_served)
    progressed = True
    while free > 0 and progressed:
        progressed = False
        for owner in order:
            if free <= 0:
                break
            if owner in blocked or not queues[owner]:
                continue
            head = queues[owner][0]
            reason = _blocker(head, per_user[owner], limits, holders)
            if reason:
                blocked[owner] = reason
                continue
            queues[owner].pop(0)
            start.append(head.id)
            per_user[owner] += 1
            free -= 1
            holders.update((lock, head.id) for lock in head.locks)
            progressed = True

    waiting: dict[str, str] = {}
    for owner, remaining in queues.items():
        for position, task in enumerate(remaining):
            if position:
                waiting[task.id] = WAITING_BEHIND
                continue
            reason = blocked.get(owner) or _blocker(task, per_user[owner], limits, holders)
            waiting[task.id] = reason or WAITING_FOR_SLOT
    return Decision(start=start, waiting=waiting)


def _blocker(task: QueuedTask, running_for_owner: int, limits: Limits, holders: Mapping[str, str]) -> str:
    """Why ``task`` (the head of its owner's queue) cannot start, or ``""`` when it can."""
    for lock in task.locks:
        if lock in holders and holders[lock] not in task.family:
            return waiting_for_lock(lock, holders[lock])
    if running_for_owner >= limits.per_user:
        return waiting_for_user_limit(limits.per_user)
    return ""
