"""Login throttling per (account, address) pair, per account and per address, with a controlled
clock, on both implementations: in-process memory and Redis (real server)."""

from __future__ import annotations

import pytest

from bhype_core.auth.settings import ThrottleSettings
from bhype_core.auth.throttle import MemoryThrottle, Throttle, TooManyAttempts
from bhype_core.auth.throttle_redis import RedisThrottle

SETTINGS = ThrottleSettings(window_seconds=60, pair_failures=3, account_failures=6, address_failures=10)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def throttle(request, clock) -> Throttle:
    if request.param == "memory":
        return MemoryThrottle(SETTINGS, clock=clock)
    import redis

    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    request.addfinalizer(client.close)
    return RedisThrottle(client, SETTINGS, prefix=f"{prefix}:", clock=clock)


def fail(throttle: Throttle, account: str, address: str, times: int = 1) -> None:
    for _ in range(times):
        throttle.check(account, address)
        throttle.record_failure(account, address)


def test_a_pair_is_throttled_after_its_limit_and_says_when(throttle, clock):
    for _ in range(3):
        fail(throttle, "alice", "192.0.2.1")
        clock.now += 10
    # Failures at 1000, 1010, 1020; now 1030: the first leaves the window at 1060.
    with pytest.raises(TooManyAttempts) as caught:
        throttle.check("alice", "192.0.2.1")
    assert caught.value.retry_after == 30
    assert caught.value.message == "too many failed logins; try again in 30 s"
    assert caught.value.http_status == 429
    assert caught.value.to_dict()["error"]["retry_after"] == 30
    clock.now = 1060.0
    throttle.check("alice", "192.0.2.1")  # the window slid past the first failure


def test_an_attacker_on_one_address_does_not_lock_the_owner_out(throttle, clock):
    """Issue 11: five wrong passwords from anywhere used to lock the account for everyone."""
    fail(throttle, "alice", "198.51.100.66", 3)
    with pytest.raises(TooManyAttempts):
        throttle.check("alice", "198.51.100.66")
    throttle.check("alice", "192.0.2.1")  # the owner, from home
    throttle.check("bob", "198.51.100.66")  # and other accounts from the attacker's address


def test_the_account_ceiling_stops_guessing_spread_over_addresses(throttle, clock):
    fail(throttle, "alice", "198.51.100.1", 2)
    fail(throttle, "alice", "198.51.100.2", 2)
    clock.now += 5
    fail(throttle, "alice", "198.51.100.3", 2)
    # Six failures for alice, no pair at its limit: the ceiling now refuses every address.
    for address in ("198.51.100.4", "192.0.2.1", ""):
        with pytest.raises(TooManyAttempts) as caught:
            throttle.check("alice", address)
        assert caught.value.retry_after == 55
    throttle.check("bob", "198.51.100.1")


def test_a_nat_full_of_typos_does_not_lock_everyone_out(throttle, clock):
    # Nine users behind one address, one typo each: under the address limit of ten.
    for number in range(9):
        fail(throttle, f"user{number}", "203.0.113.9")
    throttle.check("someone-else", "203.0.113.9")
    fail(throttle, "user9", "203.0.113.9")
    # Ten: now the address is refused for every account (spraying many accounts stops here).
    with pytest.raises(TooManyAttempts) as caught:
        throttle.check("someone-else", "203.0.113.9")
    assert caught.value.retry_after == 60
    throttle.check("someone-else", "203.0.113.10")


def test_success_clears_the_pair_only(throttle, clock):
    fail(throttle, "alice", "192.0.2.9", 2)
    fail(throttle, "alice", "198.51.100.7", 2)
    throttle.record_success("alice", "192.0.2.9")
    fail(throttle, "alice", "192.0.2.9", 2)  # the pair starts again from zero: no refusal
    # But the ceiling counted all six failures, the owner's included.
    with pytest.raises(TooManyAttempts):
        throttle.check("alice", "192.0.2.10")


def test_names_and_addresses_cannot_be_combined_into_another_pair(throttle, clock):
    fail(throttle, "a:1", "x", 3)
    with pytest.raises(TooManyAttempts):
        throttle.check("a:1", "x")
    throttle.check("a", "1:x")


def test_retry_after_rounds_up_to_whole_seconds(throttle, clock):
    fail(throttle, "alice", "", 3)
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


def test_both_throttles_implement_the_interface():
    assert issubclass(MemoryThrottle, Throttle) and issubclass(RedisThrottle, Throttle)
    assert Throttle.__abstractmethods__ == {"retry_after", "record_failure", "record_success"}
