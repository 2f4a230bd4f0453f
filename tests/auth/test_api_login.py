"""Login, logout and sessions through the API, with real users, real PAM and the real privileged
daemon process; the API runs in this test process and never calls PAM itself."""

from __future__ import annotations

import http.cookies
from pathlib import Path

import pytest
from fastapi import APIRouter, WebSocket
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bhype_core.api.api_runtime import HostCommandRefused, RefusingRunner
from bhype_core.api.deps import RuntimeDep
from bhype_core.auth import pam
from bhype_core.hookspecs import hookimpl
from bhype_core.host.runner import LocalRunner
from bhype_core.registry import RouterEntry


def cookies_set(response) -> dict[str, http.cookies.Morsel]:
    """Every Set-Cookie of a response, parsed (flags included)."""
    jar: dict[str, http.cookies.Morsel] = {}
    for header in response.headers.get_list("set-cookie"):
        parsed = http.cookies.SimpleCookie()
        parsed.load(header)
        jar.update(parsed)
    return jar


@pytest.mark.parametrize("group", ["admins", "operators"])
def test_login_gives_the_role_of_the_group_and_a_strict_httponly_cookie(make_api, daemon_world, group):
    api = make_api()
    user = daemon_world.users(groups=[getattr(daemon_world, group)])
    response = api.login(user)
    assert response.status_code == 200, response.text
    body = response.json()
    role = "admin" if group == "admins" else "operator"
    assert body["user"]["name"] == user.name and body["user"]["role"] == role
    assert getattr(daemon_world, group).name in body["user"]["groups"]

    cookies = cookies_set(response)
    session = cookies["bhype_session"]
    assert session["httponly"] and session["samesite"].lower() == "strict" and session["path"] == "/"
    assert not session["secure"]  # plain HTTP here; see the HTTPS test
    csrf = cookies["bhype_session_csrf"]
    assert csrf.value == body["csrf_token"] and not csrf["httponly"]

    me = api.client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["user"] == {"name": user.name, "role": role}
    assert me.json()["method"] == "session" and me.json()["csrf_token"] == body["csrf_token"]

    (event,) = api.audit("auth.login")
    assert event.user == user.name and event.detail["role"] == role and event.detail["backend"] == "daemon"
    assert event.remote_addr == "testclient"


def test_cookie_is_secure_over_https(make_api, daemon_world):
    api = make_api(base_url="https://testserver")
    user = daemon_world.users(groups=[daemon_world.operators])
    response = api.login(user)
    assert response.status_code == 200
    assert all(morsel["secure"] for morsel in cookies_set(response).values())
    assert api.client.get("/api/v1/auth/me").status_code == 200


def test_html_form_login(make_api, daemon_world):
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.operators])
    response = api.client.post("/api/v1/auth/login", data={"username": user.name, "password": user.password})
    assert response.status_code == 200 and response.json()["user"]["role"] == "operator"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"json": {"password": "x"}}, "username"),
        ({"json": {"username": "someone"}}, "password"),
        ({"json": ["not", "an", "object"]}, "body"),
        ({"content": b"username=x", "headers": {"content-type": "text/plain"}}, "body"),
        ({"data": {"username": "", "password": "x"}}, "username"),
    ],
)
def test_bad_login_bodies_name_the_field(make_api, kwargs, field):
    api = make_api()
    response = api.client.post("/api/v1/auth/login", **kwargs)
    assert response.status_code == 422
    assert [f["path"] for f in response.json()["error"]["fields"]] == [field]
    assert api.audit() == []  # nothing was tried


def test_every_failed_login_is_the_same_401(make_api, daemon_world):
    api = make_api()
    users = daemon_world.users
    wrong = users(groups=[daemon_world.operators])
    locked = users(groups=[daemon_world.operators])
    users.lock(locked)
    expired = users(groups=[daemon_world.operators])
    users.expire(expired)
    attempts = {
        "wrong password": api.login(wrong, "not-" + wrong.password),
        "unknown user": api.client.post(
            "/api/v1/auth/login", json={"username": "bht_nosuchuser", "password": "x"}
        ),
        "locked": api.login(locked),
        "expired": api.login(expired),
    }
    for case, response in attempts.items():
        assert response.status_code == 401, case
        assert response.json() == {"error": {"code": "login_failed", "message": pam.GENERIC_FAILURE}}, case
        assert "set-cookie" not in response.headers, case
    failures = api.audit("auth.login_failed")
    assert [e.user for e in failures] == [wrong.name, "bht_nosuchuser", locked.name, expired.name]
    assert api.audit("auth.login") == []
    assert api.client.get("/api/v1/auth/me").status_code == 401


def test_right_password_without_a_bhype_group_is_the_same_401_as_a_wrong_one(make_api, daemon_world):
    """Issue 11: same status, body and failure floor as a wrong password, and counted by the
    throttle alike, so the answer tells nothing about the password of a non-bHype account."""
    api = make_api()
    user = daemon_world.users()  # only its own primary group
    right = api.login(user)
    wrong = api.login(user, "not-" + user.password)
    for response in (right, wrong):
        assert response.status_code == 401
        assert response.json() == {"error": {"code": "login_failed", "message": pam.GENERIC_FAILURE}}
        assert "set-cookie" not in response.headers
    assert [e.user for e in api.audit("auth.login_failed")] == [user.name, user.name]
    assert api.audit("auth.login_refused") == []


@pytest.mark.parametrize("change", ["delete", "lock"])
def test_deleted_or_locked_while_logged_in_loses_access(make_api, daemon_world, change):
    api = make_api()  # account_recheck_interval = 0: every request re-checks
    user = daemon_world.users(groups=[daemon_world.admins])
    assert api.login(user).status_code == 200
    assert api.client.get("/api/v1/auth/me").status_code == 200
    cookie = api.client.cookies.get("bhype_session")

    getattr(daemon_world.users, change)(user)

    response = api.client.get("/api/v1/auth/me")
    assert response.status_code == 401 and response.json()["error"]["code"] == "session_ended"
    assert cookies_set(response)["bhype_session"]["max-age"] == "0"  # the browser drops it
    (event,) = api.audit("auth.session_ended")
    assert event.user == user.name
    assert event.detail["reason"] == (
        "account unusable: no such user" if change == "delete" else "account unusable: locked"
    )
    # The session is gone on the server too: replaying the cookie does not bring it back.
    replay = TestClient(api.app, cookies={"bhype_session": cookie})
    assert replay.get("/api/v1/auth/me").json()["error"]["code"] == "session_ended"


def test_account_is_rechecked_only_after_the_interval(make_api, daemon_world):
    api = make_api(auth={"account_recheck_interval": 3600})
    user = daemon_world.users(groups=[daemon_world.operators])
    assert api.login(user).status_code == 200
    daemon_world.users.lock(user)
    # Within the interval the session is trusted without asking the daemon again.
    assert api.client.get("/api/v1/auth/me").status_code == 200
    assert api.audit("auth.session_ended") == []


def test_logout_ends_the_session_and_clears_cookies(make_api, daemon_world):
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.operators])
    login = api.login(user)
    old_cookie = api.client.cookies.get("bhype_session")

    refused = api.client.post("/api/v1/auth/logout")  # no CSRF token
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    assert api.client.get("/api/v1/auth/me").status_code == 200  # still logged in

    response = api.client.post("/api/v1/auth/logout", headers=api.csrf(login))
    assert response.status_code == 204
    assert {name: m["max-age"] for name, m in cookies_set(response).items()} == {
        "bhype_session": "0",
        "bhype_session_csrf": "0",
    }
    # Replaying the old cookie does not work: the session is gone on the server.
    replay = TestClient(api.app, cookies={"bhype_session": old_cookie})
    assert replay.get("/api/v1/auth/me").json()["error"]["code"] == "session_ended"
    assert [e.user for e in api.audit("auth.logout")] == [user.name]


def test_csrf_token_is_required_for_state_changes_by_cookie(make_api, daemon_world):
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.operators])
    login = api.login(user)
    body = {"name": "ci"}
    assert api.client.post("/api/v1/auth/tokens", json=body).status_code == 403
    wrong = api.client.post("/api/v1/auth/tokens", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf_failed"
    # Another session's token is no good either.
    other = make_api()
    other_login = other.login(daemon_world.users(groups=[daemon_world.operators]))
    assert (
        api.client.post("/api/v1/auth/tokens", json=body, headers=other.csrf(other_login)).status_code == 403
    )
    assert api.client.get("/api/v1/auth/tokens").json() == {"tokens": []}  # nothing was created
    # Reads need no token; the right token lets the change through.
    ok = api.client.post("/api/v1/auth/tokens", json=body, headers=api.csrf(login))
    assert ok.status_code == 201


def test_login_is_throttled_per_account_with_retry_after(make_api, daemon_world):
    api = make_api(auth={"throttle": {"account_failures": 3, "window_seconds": 600}})
    user = daemon_world.users(groups=[daemon_world.operators])
    for _ in range(3):
        assert api.login(user, "wrong").status_code == 401
    response = api.login(user)  # even the right password is refused now
    assert response.status_code == 429
    retry = int(response.headers["retry-after"])
    assert 590 <= retry <= 600
    error = response.json()["error"]
    assert error["code"] == "too_many_attempts" and error["retry_after"] == retry
    assert f"try again in {retry} s" in error["message"]
    assert [e.user for e in api.audit("auth.login_throttled")] == [user.name]
    assert len(api.audit("auth.login_failed")) == 3  # the refused try never reached PAM
    # Another account from the same address is not affected by this account's limit.
    assert api.login(daemon_world.users(groups=[daemon_world.operators])).status_code == 200


def test_login_is_throttled_per_address(make_api, daemon_world):
    api = make_api(auth={"throttle": {"account_failures": 5, "address_failures": 3}})
    for number in range(3):
        response = api.client.post(
            "/api/v1/auth/login", json={"username": f"bht_guess{number}", "password": "x"}
        )
        assert response.status_code == 401
    user = daemon_world.users(groups=[daemon_world.operators])
    response = api.login(user)
    assert response.status_code == 429 and int(response.headers["retry-after"]) > 0


def test_an_attacker_cannot_lock_the_owner_out_from_another_address(make_api, daemon_world):
    """Issue 11: failures count per (account, address) pair first; the account-wide ceiling is
    far higher, so one attacking address cannot lock the real owner out."""
    api = make_api(auth={"throttle": {"pair_failures": 3, "account_failures": 10, "window_seconds": 600}})
    owner = daemon_world.users(groups=[daemon_world.operators])
    attacker = TestClient(api.app, client=("198.51.100.66", 40000))
    home = TestClient(api.app, client=("192.0.2.10", 40000))
    for _ in range(3):
        assert api.login(owner, "guess", client=attacker).status_code == 401
    assert api.login(owner, client=attacker).status_code == 429  # even the right password
    assert api.login(owner, client=home).status_code == 200


def test_unreachable_daemon_is_503(make_api, tmp_path):
    api = make_api(auth={"privileged_socket": str(tmp_path / "nobody-listens.sock")})
    response = api.client.post("/api/v1/auth/login", json={"username": "someone", "password": "x"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "auth_service_unavailable"


class HostCommandPlugin:
    """A plugin route that (wrongly) tries to run a host command from the API process."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    @hookimpl
    def bhype_register_routers(self, register):
        router = APIRouter()

        @router.post("/touch")
        def touch(runtime: RuntimeDep) -> dict:
            runtime.runner.run(["touch", str(self.marker)])
            return {"touched": True}

        register(RouterEntry(name="hostcmd", router=router))


def test_the_api_process_cannot_run_host_commands(make_api, daemon_world, plugin_manager, tmp_path):
    marker = tmp_path / "touched"
    plugin_manager.register_plugin(HostCommandPlugin(marker), "hostcmd")
    api = make_api()
    runtime = api.app.state.runtime
    assert isinstance(runtime.runner, RefusingRunner)
    with pytest.raises(HostCommandRefused, match="submit a task"):
        runtime.runner.run(["touch", str(marker)])

    login = api.login(daemon_world.users(groups=[daemon_world.admins]))
    response = api.client.post("/api/v1/hostcmd/touch", headers=api.csrf(login))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "host_command_refused"
    assert not marker.exists()
    # Everything else is the process's runtime: the worker side keeps its real runner.
    assert runtime.engine is api.runtime.engine and runtime.settings is api.runtime.settings
    assert isinstance(api.runtime.runner, LocalRunner)


def test_logging_in_again_replaces_the_old_session(make_api, daemon_world):
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.operators])
    assert api.login(user).status_code == 200
    first = api.client.cookies.get("bhype_session")
    assert api.login(user).status_code == 200
    second = api.client.cookies.get("bhype_session")
    assert second != first  # a fresh random id every time (no session fixation)
    old = TestClient(api.app, cookies={"bhype_session": first})
    assert old.get("/api/v1/auth/me").json()["error"]["code"] == "session_ended"
    assert api.client.get("/api/v1/auth/me").status_code == 200


def test_daemon_is_the_default_backend_and_in_process_must_be_chosen(make_api, daemon_world):
    from bhype_core.auth.authenticator import DaemonAuthenticator, InProcessAuthenticator
    from bhype_core.auth.settings import AuthSettings

    assert AuthSettings().backend == "daemon"
    assert isinstance(make_api().app.state.auth.authenticator, DaemonAuthenticator)

    # Explicitly in-process (development): PAM runs here (this test process is root), and
    # nothing is asked of a daemon: its socket points nowhere.
    api = make_api(
        auth={
            "backend": "in-process",
            "privileged_socket": "/nonexistent/auth.sock",
            "failure_min_seconds": 0,
        }
    )
    assert isinstance(api.app.state.auth.authenticator, InProcessAuthenticator)
    user = daemon_world.users(groups=[daemon_world.admins])
    assert api.login(user).json()["user"]["role"] == "admin"
    assert api.audit("auth.login")[0].detail["backend"] == "in-process"
    assert api.login(user, "wrong").status_code == 401
    daemon_world.users.lock(user)
    assert api.client.get("/api/v1/auth/me").json()["error"]["code"] == "session_ended"


class LivePlugin:
    """A plugin WebSocket behind the guard (cookie sessions send the CSRF token as ?csrf=)."""

    @hookimpl
    def bhype_register_routers(self, register):
        router = APIRouter()

        @router.websocket("/live")
        async def live(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.send_text(f"hello {websocket.state.principal.name}")
            await websocket.close()

        register(RouterEntry(name="live", router=router))


def test_websocket_with_a_session_needs_the_csrf_token(make_api, daemon_world, plugin_manager):
    plugin_manager.register_plugin(LivePlugin(), "live")
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.operators])
    login = api.login(user)
    with pytest.raises(WebSocketDisconnect) as closed, api.client.websocket_connect("/api/v1/live/live") as ws:
        ws.receive_text()
    assert closed.value.code == 1008
    token = login.json()["csrf_token"]
    with api.client.websocket_connect(f"/api/v1/live/live?csrf={token}") as ws:
        assert ws.receive_text() == f"hello {user.name}"


def test_the_daemon_throttles_guesses_itself(make_api, daemon_world, strict_daemon):
    """Issue 11: a compromised API process talks to the daemon directly, past the API's own
    throttle; the daemon's per-account limit still stops it (here 3 failures per 10 minutes)."""
    from bhype_core.auth.privileged import PrivilegedClient
    from bhype_core.auth.throttle import TooManyAttempts

    victim = daemon_world.users(groups=[daemon_world.operators])
    other = daemon_world.users(groups=[daemon_world.operators])
    rogue = PrivilegedClient(strict_daemon, timeout=10)
    for guess in range(3):
        with pytest.raises(pam.LoginFailed):
            rogue.authenticate(victim.name, f"guess-{guess}")
    with pytest.raises(TooManyAttempts) as caught:
        rogue.authenticate(victim.name, victim.password)  # even the right one, now
    assert 590 <= caught.value.retry_after <= 600
    assert rogue.authenticate(other.name, other.password).username == other.name
    # Through the API (whose own limits are far higher) the daemon's refusal is a 429 too.
    api = make_api(auth={"privileged_socket": str(strict_daemon)})
    response = api.login(victim)
    assert response.status_code == 429 and int(response.headers["retry-after"]) >= 590
    (event,) = api.audit("auth.login_throttled")
    assert event.user == victim.name and event.detail["by"] == "daemon"
