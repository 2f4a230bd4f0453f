"""Logins through the real PAM stack with real local users (issue 3, "Identity")."""

from __future__ import annotations

import asyncio
import pwd

import pytest

from bhype_core.auth import pam
from bhype_core.auth.identity import account_usable, groups_of
from bhype_core.auth.login import login, login_async
from bhype_core.auth.pam import GENERIC_FAILURE, FailureFloor, LoginFailed


def test_right_password_gives_identity_with_primary_and_supplementary_groups(auth_env, floor):
    users = auth_env.users
    primary, other = users.group(), users.group()
    user = users(primary_group=primary, groups=[auth_env.operators, other])

    identity = login(user.name, user.password, auth_env.settings, floor)

    assert identity.username == user.name
    assert identity.uid == pwd.getpwnam(user.name).pw_uid == user.uid
    assert identity.groups[0] == primary.name  # primary first
    assert set(identity.groups) == {primary.name, auth_env.operators.name, other.name}
    assert identity.role == "operator" and not identity.is_admin
    assert floor.slept == []  # successes are never padded


def test_admin_group_wins_and_primary_group_counts(auth_env, floor):
    users = auth_env.users
    both = users(groups=[auth_env.operators, auth_env.admins])
    assert login(both.name, both.password, auth_env.settings, floor).role == "admin"

    # Membership only through the primary gid (absent from /etc/group's member lists).
    primary_admin = users(primary_group=auth_env.admins)
    identity = login(primary_admin.name, primary_admin.password, auth_env.settings, floor)
    assert identity.role == "admin"
    assert identity.groups == (auth_env.admins.name,)


def _failure(username, password, settings, floor) -> dict:
    with pytest.raises(LoginFailed) as caught:
        login(username, password, settings, floor)
    return caught.value.to_dict()


def test_every_failure_is_the_same_generic_answer_and_padded(auth_env, floor):
    users = auth_env.users
    good = users(groups=[auth_env.operators])
    locked = users(groups=[auth_env.operators])
    users.lock(locked)
    expired = users(groups=[auth_env.operators])
    users.expire(expired)
    settings = auth_env.settings

    answers = {
        "wrong password": _failure(good.name, good.password + "x", settings, floor),
        "unknown user": _failure("bht_no_such_user", "whatever", settings, floor),
        "locked account": _failure(locked.name, locked.password, settings, floor),
        "expired account": _failure(expired.name, expired.password, settings, floor),
        "empty password": _failure(good.name, "", settings, floor),
        "NUL in username": _failure(good.name + "\0", good.password, settings, floor),
        "empty username": _failure("", good.password, settings, floor),
    }

    expected = {"error": {"code": "login_failed", "message": GENERIC_FAILURE}}
    assert answers == {case: expected for case in answers}
    # Each failure went through the floor once, asking for the rest of the 5 s floor.
    assert len(floor.slept) == len(answers)
    assert all(0 < wait <= 5.0 for wait in floor.slept)
    # The right password still works afterwards: nothing above changed the good account.
    assert login(good.name, good.password, settings, floor).username == good.name


def test_right_password_without_a_bhype_group_answers_like_a_wrong_one(auth_env, floor):
    """Issue 11: the right password of an account in no bHype group used to answer 403 at once,
    a wrong one 401 after the floor, so bHype told anyone which password of any local account
    (root's included) was right. Both now get the generic answer through the floor."""
    users = auth_env.users
    outsider = users(groups=[users.group()])

    right = _failure(outsider.name, outsider.password, auth_env.settings, floor)
    wrong = _failure(outsider.name, "nope", auth_env.settings, floor)

    assert right == wrong == {"error": {"code": "login_failed", "message": GENERIC_FAILURE}}
    assert "bHype group" in GENERIC_FAILURE  # the one message still names the other cause
    assert len(floor.slept) == 2 and all(0 < wait <= 5.0 for wait in floor.slept)
    # Once in a group, the same password logs in: the refusal was the group, nothing else.
    users.add_to_group(outsider, auth_env.operators)
    assert login(outsider.name, outsider.password, auth_env.settings, floor).role == "operator"


def test_no_pam_call_for_an_account_in_no_bhype_group(auth_env, floor, monkeypatch):
    """The password of an account bHype would refuse anyway is never checked, so no answer
    (status, body or time) can depend on it."""
    outsider = auth_env.users(groups=[auth_env.users.group()])
    checked = []
    monkeypatch.setattr(pam, "pam_check", lambda *args: checked.append(args) or (0, ""))
    _failure(outsider.name, outsider.password, auth_env.settings, floor)
    assert checked == []


def test_group_change_takes_effect_at_next_login(auth_env, floor):
    users = auth_env.users
    user = users(groups=[auth_env.operators])
    assert login(user.name, user.password, auth_env.settings, floor).role == "operator"
    users.add_to_group(user, auth_env.admins)
    assert login(user.name, user.password, auth_env.settings, floor).role == "admin"


def test_account_usable_follows_the_os_account(auth_env):
    users, service = auth_env.users, auth_env.service
    alive = users(groups=[auth_env.operators])
    locked = users(groups=[auth_env.operators])
    expired = users(groups=[auth_env.operators])
    deleted = users(groups=[auth_env.operators])

    assert account_usable(alive.name, pam_service=service).usable

    users.lock(locked)
    assert account_usable(locked.name, pam_service=service).reason == "locked"
    users.expire(expired)
    assert account_usable(expired.name, pam_service=service).reason == "expired"
    users.delete(deleted)
    status = account_usable(deleted.name, pam_service=service)
    assert not status.usable and status.reason == "no such user"

    assert account_usable(alive.name, pam_service=service).usable  # others unaffected


def test_expired_account_is_also_refused_by_pam_account_management(auth_env):
    users = auth_env.users
    user = users(groups=[auth_env.operators])
    assert pam.check_account(user.name, auth_env.service) == (True, "")
    users.expire(user)
    ok, reason = pam.check_account(user.name, auth_env.service)
    assert not ok and "expired" in reason.lower()


def test_groups_of_unknown_user_raises_keyerror(auth_env):
    user = auth_env.users(groups=[auth_env.operators])
    assert auth_env.operators.name in groups_of(user.name)
    with pytest.raises(KeyError):
        groups_of("bht_no_such_user")


def test_async_login_runs_pam_and_awaits_the_floor(auth_env, floor):
    user = auth_env.users(groups=[auth_env.admins])

    async def scenario():
        identity = await login_async(user.name, user.password, auth_env.settings, floor)
        with pytest.raises(LoginFailed):
            await login_async(user.name, "wrong", auth_env.settings, floor)
        return identity

    identity = asyncio.run(scenario())
    assert identity.role == "admin"
    assert len(floor.slept) == 1 and floor.slept[0] > 0


def test_failure_floor_waits_only_for_what_is_left():
    now = [100.0]
    slept: list[float] = []
    floor = FailureFloor(seconds=1.0, jitter=0.0, clock=lambda: now[0], sleep=slept.append)

    now[0] = 100.25  # the failure took 0.25 s
    assert floor.pad(100.0) == pytest.approx(0.75)
    now[0] = 102.0  # slower than the floor: no extra wait
    assert floor.pad(100.0) == 0.0
    assert slept == [pytest.approx(0.75)]


def test_failure_floor_jitter_stays_within_bounds():
    floor = FailureFloor(seconds=1.0, jitter=0.2, clock=lambda: 0.0)
    waits = [floor.remaining(0.0) for _ in range(200)]
    assert all(1.0 <= wait <= 1.2 for wait in waits)
    assert len(set(waits)) > 1  # random, not a constant an observer could subtract


def test_authenticate_applies_the_default_floor_from_settings(auth_env):
    from bhype_core.auth.login import failure_floor

    assert failure_floor(auth_env.settings).seconds == auth_env.settings.failure_min_seconds
    assert FailureFloor().seconds == 1.0


def test_shipped_service_files():
    linux = pam.service_file_text("linux")
    freebsd = pam.service_file_text("freebsd14")
    assert "auth     required   pam_unix.so nodelay" in linux
    assert "account  required   pam_unix.so" in linux
    assert "auth     required   pam_unix.so no_warn try_first_pass" in freebsd
    assert "account  required   pam_unix.so" in freebsd
    assert "nullok" not in linux.replace("No nullok", "")
    assert str(pam.service_file_path(platform="freebsd14")) == "/usr/local/etc/pam.d/bhype"
    assert str(pam.service_file_path("svc", platform="linux")) == "/etc/pam.d/svc"
