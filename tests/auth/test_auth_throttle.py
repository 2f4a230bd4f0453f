"""Per-account and per-address login throttling with a controlled clock."""

from __future__ import annotations

import pytest

from bhype_core.auth.settings import ThrottleSettings
from bhype_core.auth.throttle import MemoryThrottle, Throttle, TooManyAttempts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock) -> MemoryThrottle:
    settings = ThrottleSettings(window_seconds=60, account_failures=3, address_failures=5)
    return MemoryThrottle(settings, clock=clock)


def test_account_is_throttled_after_limit_and_says_when(throttle, clock):
    for _ in range(3):
        throttle.check("alice", "10.0.0.1")
        throttle.record_failure("alice", "10.0.0.1")
        clock.now += 10
    # Failures at 1000, 1010, 1020; now 1030: the first leaves the window at 1060.
    with pytest.raises(TooManyAttempts) as caught:
        throttle.check("alice", "10.0.0.2")  # another address does not help
    assert caught.value.retry_after == 30
    assert caught.value.message == "too many failed logins; try again in 30 s"
    assert caught.value.http_status == 429
    assert caught.value.to_dict()["error"]["retry_after"] == 30
    throttle.check("bob", "10.0.0.2")  # other accounts are unaffected

    clock.now = 1060.0
    throttle.check("alice", "10.0.0.2")  # window slid past the first failure


def test_address_is_throttled_across_accounts(throttle, clock):
    for index in range(5):
        throttle.record_failure(f"user{index}", "192.0.2.7")
    with pytest.raises(TooManyAttempts) as caught:
        throttle.check("someone-else", "192.0.2.7")
    assert caught.value.retry_after == 60
    throttle.check("someone-else", "192.0.2.8")


def test_success_clears_the_account_but_not_the_address(throttle, clock):
    for _ in range(3):
        throttle.record_failure("alice", "192.0.2.9")
    throttle.record_success("alice", "192.0.2.9")
    throttle.check("alice", "192.0.2.10")
    throttle.record_failure("mallory", "192.0.2.9")
    throttle.record_failure("mallory2", "192.0.2.9")
    # the address has 5 failures now, the good login did not reset it
    with pytest.raises(TooManyAttempts):
        throttle.check("alice", "192.0.2.9")


def test_retry_after_rounds_up_to_whole_seconds(throttle, clock):
    for _ in range(3):
        throttle.record_failure("alice", "")
    clock.now += 59.2
    with pytest.raises(TooManyAttempts) as caught:
        throttle.check("alice", "")
    assert caught.value.retry_after == 1


def test_memory_stays_bounded(clock):
    throttle = MemoryThrottle(ThrottleSettings(window_seconds=60, max_keys=100), clock=clock)
    for index in range(150):
        throttle.record_failure(f"user{index}", "")
    assert len(throttle) <= 100
    clock.now += 120  # everything is stale now
    throttle.record_failure("late", "")
    for index in range(100):
        throttle.record_failure(f"other{index}", "")
    assert len(throttle) <= 100


def test_memory_throttle_implements_the_interface():
    assert issubclass(MemoryThrottle, Throttle)
    assert Throttle.__abstractmethods__ == {"retry_after", "record_failure", "record_success"}
