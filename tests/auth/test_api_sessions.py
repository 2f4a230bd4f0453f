"""Session lifetime (idle and absolute timeouts) and the session stores: the embedded database
(SQLite, MariaDB) and Redis, which also shares the login throttle between API processes."""

from __future__ import annotations

import json
import time

import pytest
import redis
from sqlmodel import Session, select

from bhype_core.api.session_store import session_key
from bhype_core.db.auth_models import AuthSession


def test_idle_timeout_ends_an_unused_session(make_api, daemon_world):
    api = make_api(auth={"session_idle_timeout": 60, "account_recheck_interval": 3600})
    clock = api.frozen_clock()
    user = daemon_world.users(groups=[daemon_world.operators])
    assert api.login(user).status_code == 200
    clock.advance(59)
    assert api.client.get("/api/v1/auth/me").status_code == 200  # used: the idle clock restarts
    clock.advance(59)
    assert api.client.get("/api/v1/auth/me").status_code == 200
    clock.advance(60)
    response = api.client.get("/api/v1/auth/me")
    assert response.status_code == 401
    assert response.json()["error"] == {
        "code": "session_ended",
        "message": "the session has expired (idle timeout); log in again",
    }
    (event,) = api.audit("auth.session_ended")
    assert event.detail["reason"] == "idle timeout"


def test_absolute_timeout_ends_even_a_busy_session(make_api, daemon_world):
    api = make_api(
        auth={"session_idle_timeout": 60, "session_absolute_timeout": 100, "account_recheck_interval": 3600}
    )
    clock = api.frozen_clock()
    user = daemon_world.users(groups=[daemon_world.operators])
    assert api.login(user).status_code == 200
    clock.advance(50)
    assert api.client.get("/api/v1/auth/me").status_code == 200  # keeps the idle clock fresh
    clock.advance(50)
    # Only 50 s idle, but 100 s since login.
    response = api.client.get("/api/v1/auth/me")
    assert response.status_code == 401 and "absolute timeout" in response.json()["error"]["message"]
    assert api.audit("auth.session_ended")[0].detail["reason"] == "absolute timeout"


def test_sessions_are_stored_by_hash_and_expired_rows_are_purged(make_api, daemon_world):
    api = make_api(auth={"session_idle_timeout": 1.0, "account_recheck_interval": 3600})
    first = daemon_world.users(groups=[daemon_world.operators])
    assert api.login(first).status_code == 200
    cookie = api.client.cookies.get("bhype_session")
    with Session(api.runtime.engine) as db:
        (row,) = db.exec(select(AuthSession)).all()
    assert row.key == session_key(cookie) and cookie not in str(row.model_dump())
    assert row.username == first.name and row.role == "operator"
    time.sleep(1.1)
    # The next login purges the expired session without anyone asking for it.
    second = daemon_world.users(groups=[daemon_world.operators])
    assert api.login(second).status_code == 200
    with Session(api.runtime.engine) as db:
        assert [r.username for r in db.exec(select(AuthSession))] == [second.name]


@pytest.mark.mariadb
def test_sessions_and_tokens_on_mariadb(make_api, daemon_world, fresh_mariadb_url):
    api = make_api(core={"database_url": fresh_mariadb_url})
    user = daemon_world.users(groups=[daemon_world.admins])
    login = api.login(user)
    assert login.status_code == 200
    created = api.client.post("/api/v1/auth/tokens", json={"name": "ci"}, headers=api.csrf(login))
    assert created.status_code == 201
    bearer = {"Authorization": f"Bearer {created.json()['token']}"}
    assert api.client.__class__(api.app).get("/api/v1/auth/me", headers=bearer).json()["method"] == "token"
    assert api.client.post("/api/v1/auth/logout", headers=api.csrf(login)).status_code == 204
    assert [e.action for e in api.audit()] == [
        "auth.login",
        "auth.token_created",
        "auth.token_used",
        "auth.logout",
    ]


@pytest.mark.redis
def test_redis_store_keeps_sessions_with_a_ttl_and_forgets_them_on_logout(
    make_api, daemon_world, redis_url, redis_prefix
):
    api = make_api(
        core={"redis_url": redis_url}, auth={"redis_prefix": f"{redis_prefix}:", "session_idle_timeout": 600}
    )
    user = daemon_world.users(groups=[daemon_world.operators])
    login = api.login(user)
    assert login.status_code == 200
    name = f"{redis_prefix}:session:{session_key(api.client.cookies.get('bhype_session'))}"
    client = redis.Redis.from_url(redis_url)
    try:
        stored = json.loads(client.get(name))
        assert stored["username"] == user.name and stored["csrf_token"] == login.json()["csrf_token"]
        assert 0 < client.pttl(name) <= 600_000
        with Session(api.runtime.engine) as db:  # nothing in the database store
            assert db.exec(select(AuthSession)).all() == []
        assert api.client.get("/api/v1/auth/me").status_code == 200
        assert api.client.post("/api/v1/auth/logout", headers=api.csrf(login)).status_code == 204
        assert client.exists(name) == 0
    finally:
        client.close()


@pytest.mark.redis
def test_redis_session_idle_timeout(make_api, daemon_world, redis_url, redis_prefix):
    api = make_api(
        core={"redis_url": redis_url},
        auth={
            "redis_prefix": f"{redis_prefix}:",
            "session_idle_timeout": 3.0,  # Redis expires the key itself: real time, no clock to move
            "account_recheck_interval": 3600,
        },
    )
    assert api.login(daemon_world.users(groups=[daemon_world.operators])).status_code == 200
    assert api.client.get("/api/v1/auth/me").status_code == 200
    time.sleep(3.3)
    assert api.client.get("/api/v1/auth/me").json()["error"]["code"] == "session_ended"


@pytest.mark.redis
def test_two_api_processes_share_sessions_and_the_throttle_through_redis(
    make_api, daemon_world, redis_url, redis_prefix
):
    auth = {"redis_prefix": f"{redis_prefix}:", "throttle": {"account_failures": 2}}
    first, second = (
        make_api(core={"redis_url": redis_url}, auth=auth),
        make_api(core={"redis_url": redis_url}, auth=auth),
    )
    user = daemon_world.users(groups=[daemon_world.operators])
    # A session opened on one process is valid on the other.
    assert first.login(user).status_code == 200
    other = second.client.__class__(
        second.app, cookies={"bhype_session": first.client.cookies.get("bhype_session")}
    )
    assert other.get("/api/v1/auth/me").json()["user"]["name"] == user.name
    # Failures counted on one process throttle the account on the other.
    victim = daemon_world.users(groups=[daemon_world.operators])
    assert first.login(victim, "wrong").status_code == 401
    assert second.login(victim, "wrong").status_code == 401
    throttled = first.login(victim)
    assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0


def test_building_the_app_creates_no_database(tmp_path, plugin_manager):
    from bhype_core.api.app import create_app
    from bhype_core.runtime import build_runtime
    from bhype_core.testing import make_settings

    data = tmp_path / "not-yet"
    runtime = build_runtime(make_settings(data), plugin_manager)
    app = create_app(runtime=runtime)
    assert app.state.auth.sessions is not None
    assert not data.exists() and "engine" not in runtime.__dict__
