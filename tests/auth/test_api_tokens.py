"""API tokens: created from a session and shown once, stored hashed, listed and revoked by their
owner only, expiring, re-checked against the OS account, every use audited."""

from __future__ import annotations

import hashlib

from sqlmodel import Session, select

from bhype_core.api.tokens import TokenStore
from bhype_core.db.auth_models import ApiToken
from bhype_core.db.engine import make_engine
from bhype_core.testing.concurrency import run_together


def session_with_csrf(api, user):
    """Log ``user`` in on ``api.client``; returns the CSRF header."""
    login = api.login(user)
    assert login.status_code == 200, login.text
    return api.csrf(login)


def create_token(api, csrf, **body):
    response = api.client.post("/api/v1/auth/tokens", json={"name": "ci", **body}, headers=csrf)
    assert response.status_code == 201, response.text
    return response.json()


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_token_is_shown_once_and_stored_only_as_its_hash(make_api, daemon_world):
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.operators])
    created = create_token(api, session_with_csrf(api, user), name="backup script")
    secret = created["token"]
    assert secret.startswith("bhype_") and len(secret) >= 40
    assert created["name"] == "backup script" and created["expires_at"] is None
    assert secret.startswith(created["prefix"])

    listed = api.client.get("/api/v1/auth/tokens").json()["tokens"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0] and "token_hash" not in listed[0] and secret not in str(listed)

    with Session(api.runtime.engine) as db:
        row = db.exec(select(ApiToken)).one()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(row.model_dump())
    (event,) = api.audit("auth.token_created")
    assert event.user == user.name and event.target == f"token:{created['id']}"


def test_bearer_token_authenticates_and_every_use_is_audited(make_api, daemon_world):
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.admins])
    created = create_token(api, session_with_csrf(api, user))
    anonymous = api.client.__class__(api.app)  # no cookies: only the token
    me = anonymous.get("/api/v1/auth/me", headers=bearer(created["token"]))
    assert me.status_code == 200
    assert me.json() == {
        "user": {"name": user.name, "role": "admin"},
        "method": "token",
        "token_id": created["id"],
    }
    anonymous.get("/api/v1/auth/tokens", headers=bearer(created["token"]))
    uses = api.audit("auth.token_used")
    assert [(e.user, e.target, e.detail["method"], e.detail["path"]) for e in uses] == [
        (user.name, f"token:{created['id']}", "GET", "/api/v1/auth/me"),
        (user.name, f"token:{created['id']}", "GET", "/api/v1/auth/tokens"),
    ]
    listed = anonymous.get("/api/v1/auth/tokens", headers=bearer(created["token"])).json()["tokens"]
    assert listed[0]["last_used_at"] is not None


def test_bearer_requests_need_no_csrf_token_but_cannot_mint_tokens(make_api, daemon_world):
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.operators])
    csrf = session_with_csrf(api, user)
    first, second = create_token(api, csrf, name="one"), create_token(api, csrf, name="two")
    anonymous = api.client.__class__(api.app)
    # A state change with a token and no X-CSRF-Token: allowed (a browser never adds a token).
    revoked = anonymous.delete(f"/api/v1/auth/tokens/{second['id']}", headers=bearer(first["token"]))
    assert revoked.status_code == 204
    # But a token cannot create more tokens (a stolen one must not outlive its revocation).
    mint = anonymous.post("/api/v1/auth/tokens", json={"name": "x"}, headers=bearer(first["token"]))
    assert mint.status_code == 403
    # And logout is for sessions.
    assert anonymous.post("/api/v1/auth/logout", headers=bearer(first["token"])).status_code == 400


def test_users_see_and_revoke_only_their_own_tokens(make_api, daemon_world):
    api_a, api_b = make_api(), None
    alice = daemon_world.users(groups=[daemon_world.admins])
    bob = daemon_world.users(groups=[daemon_world.operators])
    a_token = create_token(api_a, session_with_csrf(api_a, alice), name="alice's")
    api_b = api_a.client.__class__(api_a.app)
    b_login = api_a.login(bob, client=api_b)
    b_csrf = {"X-CSRF-Token": b_login.json()["csrf_token"]}
    b_token = api_b.post("/api/v1/auth/tokens", json={"name": "bob's"}, headers=b_csrf).json()

    assert [t["name"] for t in api_b.get("/api/v1/auth/tokens").json()["tokens"]] == ["bob's"]
    # Even an admin's listing shows only their own tokens.
    assert [t["name"] for t in api_a.client.get("/api/v1/auth/tokens").json()["tokens"]] == ["alice's"]
    # Bob cannot revoke Alice's token: the same 404 as for a token that does not exist.
    theirs = api_b.delete(f"/api/v1/auth/tokens/{a_token['id']}", headers=b_csrf)
    missing = api_b.delete("/api/v1/auth/tokens/999999", headers=b_csrf)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"]["message"] == f"you have no API token with id {a_token['id']}"
    assert api_a.client.get("/api/v1/auth/me", headers=bearer(a_token["token"])).status_code == 200

    # Bob revokes his own: it stops working at once.
    assert api_b.delete(f"/api/v1/auth/tokens/{b_token['id']}", headers=b_csrf).status_code == 204
    gone = api_a.client.__class__(api_a.app).get("/api/v1/auth/me", headers=bearer(b_token["token"]))
    assert gone.status_code == 401 and gone.json()["error"]["code"] == "invalid_token"
    assert [e.user for e in api_a.audit("auth.token_revoked")] == [bob.name]


def test_token_expires(make_api, daemon_world):
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.operators])
    created = create_token(api, session_with_csrf(api, user), expires_in=3600)
    assert created["expires_at"] is not None
    clock = api.frozen_clock()
    anonymous = api.client.__class__(api.app)
    clock.advance(3590)
    assert anonymous.get("/api/v1/auth/me", headers=bearer(created["token"])).status_code == 200
    clock.advance(11)
    expired = anonymous.get("/api/v1/auth/me", headers=bearer(created["token"]))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    (event,) = api.audit("auth.token_refused")
    assert event.detail["reason"] == "expired"


def test_token_of_a_deleted_account_stops_working(make_api, daemon_world):
    api = make_api()
    user = daemon_world.users(groups=[daemon_world.operators])
    created = create_token(api, session_with_csrf(api, user))
    anonymous = api.client.__class__(api.app)
    assert anonymous.get("/api/v1/auth/me", headers=bearer(created["token"])).status_code == 200
    daemon_world.users.delete(user)
    refused = anonymous.get("/api/v1/auth/me", headers=bearer(created["token"]))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    (event,) = api.audit("auth.token_refused")
    assert event.detail["reason"] == "account unusable: no such user"


def test_token_role_follows_the_accounts_groups(make_api, daemon_world):
    api = make_api()
    users = daemon_world.users
    user = users(groups=[daemon_world.admins])
    created = create_token(api, session_with_csrf(api, user))
    anonymous = api.client.__class__(api.app)
    assert (
        anonymous.get("/api/v1/auth/me", headers=bearer(created["token"])).json()["user"]["role"] == "admin"
    )
    # Demote: out of the admin group (gpasswd(1) -d), into the operator group.
    users.add_to_group(user, daemon_world.operators)
    users.runner.run(["gpasswd", "-d", user.name, daemon_world.admins.name])
    assert (
        anonymous.get("/api/v1/auth/me", headers=bearer(created["token"])).json()["user"]["role"]
        == "operator"
    )
    # Out of every bHype group: the token is refused.
    users.runner.run(["gpasswd", "-d", user.name, daemon_world.operators.name])
    refused = anonymous.get("/api/v1/auth/me", headers=bearer(created["token"]))
    assert refused.status_code == 401
    assert api.audit("auth.token_refused")[-1].detail["reason"] == "no bHype group"


def test_malformed_authorization_headers_are_401(make_api):
    api = make_api()
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Bearer bhype_" + "x" * 43, "Bearer not-ours"):
        response = api.client.get("/api/v1/auth/me", headers={"Authorization": value})
        assert response.status_code == 401, value


def test_token_request_validation_names_fields(make_api, daemon_world):
    api = make_api()
    csrf = session_with_csrf(api, daemon_world.users(groups=[daemon_world.operators]))
    response = api.client.post("/api/v1/auth/tokens", json={"name": " x", "expires_in": 0}, headers=csrf)
    assert response.status_code == 422
    assert {f["path"] for f in response.json()["error"]["fields"]} == {"body.name", "body.expires_in"}
    assert api.client.get("/api/v1/auth/tokens").json() == {"tokens": []}


def test_two_processes_revoking_tokens_at_once_on_sqlite_wait_for_each_other(db_engine):
    # Revoking reads the token row, then deletes it. In a deferred SQLite transaction the delete
    # fails at once with "database is locked" whenever the other process committed after the read
    # (WAL snapshot rule); a write session takes the lock up front, so the other waits.
    other = make_engine(db_engine.url.render_as_string(hide_password=False))
    stores = [TokenStore(db_engine), TokenStore(other)]  # two engines on one file
    mine = [[store.create(f"user{n}", "operator", f"t{i}").token.id for i in range(60)]
            for n, store in enumerate(stores)]
    revoked: list[bool] = []

    def revoke(n: int) -> None:
        for token_id in mine[n]:
            revoked.append(stores[n].delete(token_id, f"user{n}"))

    errors = run_together(revoke, len(stores))
    other.dispose()
    assert errors == []
    assert revoked == [True] * 120
    assert stores[0].list("user0") == stores[0].list("user1") == []
