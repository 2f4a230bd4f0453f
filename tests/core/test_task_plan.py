"""The scheduler's pure decision: per-user FIFO, per-user and global limits, fairness across
users, resource locks, and the words a waiting task shows."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from bhype_core.tasks.plan import (
    WAITING_BEHIND,
    WAITING_FOR_SLOT,
    Decision,
    Limits,
    QueuedTask,
    RunningTask,
    fairness_order,
    plan,
    waiting_for_lock,
    waiting_for_user_limit,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def q(task_id: str, owner: str, *locks: str) -> QueuedTask:
    return QueuedTask(task_id, owner, tuple(locks))


def r(task_id: str, owner: str, *locks: str) -> RunningTask:
    return RunningTask(task_id, owner, tuple(locks))


def test_nothing_queued_starts_nothing():
    assert plan([], [r("x", "alice")], Limits(2, 2)) == Decision([], {})


def test_one_user_starts_in_submission_order_up_to_their_limit():
    queued = [q("a1", "alice"), q("a2", "alice"), q("a3", "alice")]
    decision = plan(queued, [], Limits(per_user=2, total=10))
    assert decision.start == ["a1", "a2"]
    assert decision.waiting == {"a3": waiting_for_user_limit(2)}


def test_running_tasks_count_against_the_user_limit():
    decision = plan([q("a2", "alice")], [r("a1", "alice")], Limits(per_user=1, total=10))
    assert decision.start == []
    assert decision.waiting == {"a2": waiting_for_user_limit(1)}


def test_global_limit_leaves_the_rest_waiting_for_a_slot():
    queued = [q("a1", "alice"), q("b1", "bob"), q("c1", "carol")]
    decision = plan(queued, [r("x", "dave")], Limits(per_user=2, total=3))
    assert decision.start == ["a1", "b1"]
    assert decision.waiting == {"c1": WAITING_FOR_SLOT}


def test_no_free_slot_starts_nothing_even_when_limits_were_lowered():
    running = [r("x", "alice"), r("y", "bob"), r("z", "carol")]
    decision = plan([q("d1", "dave")], running, Limits(per_user=2, total=2))
    assert decision.start == []
    assert decision.waiting == {"d1": WAITING_FOR_SLOT}


def test_round_robin_hands_out_one_slot_per_user_per_round():
    queued = [q("a1", "alice"), q("a2", "alice"), q("a3", "alice"), q("b1", "bob"), q("b2", "bob")]
    decision = plan(queued, [], Limits(per_user=5, total=4))
    assert decision.start == ["a1", "b1", "a2", "b2"]
    assert decision.waiting == {"a3": WAITING_FOR_SLOT}


def test_a_user_with_a_long_queue_delays_another_users_first_task_by_at_most_one_slot():
    # alice has 100 queued and holds both slots; bob submits one task after all of hers.
    queued = [q(f"a{n}", "alice") for n in range(3, 103)] + [q("b1", "bob")]
    running = [r("a1", "alice"), r("a2", "alice")]
    served = {"alice": T0 + timedelta(seconds=2)}
    full = plan(queued, running, Limits(per_user=2, total=2), served)
    assert full.start == []
    # The next slot that frees goes to bob, not to alice's next task.
    freed = plan(queued, running[:1], Limits(per_user=2, total=2), served)
    assert freed.start == ["b1"]
    assert freed.waiting["a3"] == WAITING_FOR_SLOT


def test_fairness_order_prefers_the_least_recently_served():
    queued = [q("a1", "alice"), q("b1", "bob"), q("c1", "carol"), q("d1", "dave")]
    served = {"alice": T0 + timedelta(seconds=5), "bob": T0 + timedelta(seconds=1), "carol": None}
    # Never served first (carol, dave, in queue order), then bob (served longest ago), then alice.
    assert fairness_order(queued, served) == ["carol", "dave", "bob", "alice"]
    assert plan(queued, [], Limits(per_user=1, total=2), served).start == ["c1", "d1"]


def test_never_served_users_go_in_the_order_of_their_oldest_task():
    queued = [q("b1", "bob"), q("a1", "alice"), q("b2", "bob")]
    assert fairness_order(queued, {}) == ["bob", "alice"]


def test_a_held_lock_blocks_the_task_and_says_who_holds_it():
    decision = plan([q("a1", "alice", "vm:3")], [r("b0", "bob", "vm:3")], Limits(2, 10))
    assert decision.start == []
    assert decision.waiting == {"a1": "waiting for lock vm:3 held by task b0"}
    assert decision.waiting["a1"] == waiting_for_lock("vm:3", "b0")


def test_the_head_waiting_for_a_lock_blocks_the_same_users_later_tasks():
    queued = [q("a1", "alice", "vm:1"), q("a2", "alice", "vm:2"), q("b1", "bob", "vm:2")]
    decision = plan(queued, [r("x", "carol", "vm:1")], Limits(per_user=2, total=10))
    # a2 could run (vm:2 is free) but alice's tasks start in order: b1 takes vm:2.
    assert decision.start == ["b1"]
    assert decision.waiting == {"a1": waiting_for_lock("vm:1", "x"), "a2": WAITING_BEHIND}


def test_two_queued_tasks_on_one_lock_never_start_together():
    queued = [q("a1", "alice", "vm:1"), q("b1", "bob", "vm:1"), q("c1", "carol", "pool:tank")]
    decision = plan(queued, [], Limits(per_user=2, total=10))
    assert decision.start == ["a1", "c1"]
    assert decision.waiting == {"b1": waiting_for_lock("vm:1", "a1")}


def test_a_task_holding_several_locks_waits_for_each():
    queued = [q("a1", "alice", "vm:1", "pool:tank")]
    assert plan(queued, [r("x", "bob", "pool:tank")], Limits(2, 10)).waiting == {
        "a1": waiting_for_lock("pool:tank", "x")
    }
    assert plan(queued, [r("y", "bob", "vm:2")], Limits(2, 10)).start == ["a1"]


def test_limits_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Limits(per_user=0, total=2)


def random_case(rng: random.Random) -> tuple[list[QueuedTask], list[RunningTask], Limits, dict]:
    owners = ["alice", "bob", "carol", "dave"][: rng.randint(1, 4)]
    locks = ["vm:1", "vm:2", "vm:3", "pool:tank"]
    counter = itertools.count()

    def some_locks() -> tuple[str, ...]:
        return tuple(rng.sample(locks, rng.choice([0, 0, 1, 1, 2])))

    running, held = [], set()
    for _ in range(rng.randint(0, 4)):
        mine = tuple(lock for lock in some_locks() if lock not in held)
        held.update(mine)
        running.append(RunningTask(f"r{next(counter)}", rng.choice(owners), mine))
    queued = [QueuedTask(f"q{next(counter)}", rng.choice(owners), some_locks()) for _ in range(rng.randint(0, 12))]
    served = {owner: T0 + timedelta(seconds=rng.randint(0, 5)) for owner in owners if rng.random() < 0.5}
    return queued, running, Limits(per_user=rng.randint(1, 3), total=rng.randint(1, 6)), served


@pytest.mark.parametrize("seed", range(400))
def test_invariants_hold_for_random_queues(seed):
    queued, running, limits, served = random_case(random.Random(seed))
    decision = plan(queued, running, limits, served)
    started = [task for task in queued if task.id in decision.start]

    # Every queued task either starts or has a reason; nothing else appears.
    assert set(decision.start).isdisjoint(decision.waiting)
    assert set(decision.start) | set(decision.waiting) == {task.id for task in queued}
    assert all(decision.waiting.values())
    # Limits: overall and per user.
    assert len(running) + len(started) <= max(limits.total, len(running))
    per_user = Counter(task.owner for task in running) + Counter(task.owner for task in started)
    for owner in Counter(task.owner for task in started):
        assert per_user[owner] <= limits.per_user, owner
    # Locks: no lock held twice among running and started tasks.
    held = [lock for task in [*running, *started] for lock in task.locks]
    assert len(held) == len(set(held))
    # Per-user FIFO: what starts is a prefix of each user's queue, in order.
    for owner in {task.owner for task in queued}:
        mine = [task.id for task in queued if task.owner == owner]
        mine_started = [task_id for task_id in decision.start if task_id in mine]
        assert mine_started == mine[: len(mine_started)]
    # Work conservation: a waiting head blames a real obstacle.
    held_now = {lock for task in [*running, *started] for lock in task.locks}
    free = limits.total - len(running) - len(started)
    for owner in {task.owner for task in queued}:
        mine = [task for task in queued if task.owner == owner and task.id in decision.waiting]
        if not mine:
            continue
        head_reason = decision.waiting[mine[0].id]
        if head_reason == WAITING_FOR_SLOT:
            assert free <= 0
        elif head_reason.startswith("waiting for lock"):
            assert any(lock in held_now for lock in mine[0].locks)
        else:
            assert head_reason == waiting_for_user_limit(limits.per_user)
            assert per_user[owner] >= limits.per_user
        assert all(decision.waiting[task.id] == WAITING_BEHIND for task in mine[1:])


@pytest.mark.parametrize("seed", range(100))
def test_fairness_for_random_queues_one_slot_goes_to_the_least_recently_served_ready_user(seed):
    rng = random.Random(seed)
    owners = ["alice", "bob", "carol"]
    queued = [QueuedTask(f"q{n}", rng.choice(owners)) for n in range(rng.randint(1, 20))]
    served = {owner: T0 + timedelta(seconds=rng.randint(0, 9)) for owner in owners if rng.random() < 0.6}
    decision = plan(queued, [], Limits(per_user=10, total=1), served)
    first = next(task for task in queued if task.id == decision.start[0])
    assert first.owner == fairness_order(queued, served)[0]


def test_a_running_sub_task_holds_its_locks_but_no_slot():
    # The parent p holds alice's only slot; its child c runs in that slot and holds vm:9.
    running = [RunningTask("p", "alice"), RunningTask("c", "alice", ("vm:9",), in_own_slot=False)]
    decision = plan([q("a2", "alice"), q("b1", "bob", "vm:9"), q("b2", "bob")], running, Limits(per_user=1, total=2))
    assert decision.start == []  # one slot left: bob's head waits for the child's lock
    assert decision.waiting["b1"] == waiting_for_lock("vm:9", "c")
    assert decision.waiting["a2"] == waiting_for_user_limit(1)
    freed = plan([q("b2", "bob")], running, Limits(per_user=1, total=2))
    assert freed.start == ["b2"]  # the child took no second slot
