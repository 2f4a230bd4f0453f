"""The token fast path (issue 15): a token row read moments ago answers from memory for
TOKEN_CACHE_SECONDS (a revocation through this process at once), and a read request's use is
stored by the one writer after the answer, in order, many per commit. Counted, not timed."""

from __future__ import annotations

import threading

from sqlalchemy import event
from sqlmodel import Session, col, select
from test_api_tokens import bearer, create_token, session_with_csrf

from bhype_core.api.audit_log import TOKEN_USED, event_row
from bhype_core.api.token_uses import TokenUseWriter
from bhype_core.api.tokens import TOKEN_CACHE_SECONDS, TokenStore
from bhype_core.db.auth_models import ApiToken
from bhype_core.db.models import AuditEvent, utcnow


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_row_answers_from_memory_until_the_bound_and_a_revocation_here_is_at_once(db_engine):
    clock = Clock()
    mine, elsewhere = TokenStore(db_engine, clock=clock), TokenStore(db_engine)
    first, second = mine.create("alice", "operator", "one"), mine.create("alice", "operator", "two")
    assert mine.cached(first.secret) is None  # never read yet: the caller must query
    assert mine.find(first.secret).id == first.token.id
    assert mine.cached(first.secret).id == first.token.id
    # Revoked by another process (another group host's API): still answered here within the bound ...
    assert elsewhere.delete(first.token.id, "alice")
    clock.now += TOKEN_CACHE_SECONDS - 0.1
    assert mine.find(first.secret) is not None
    # ... and refused once it has passed.
    clock.now += 0.2
    assert mine.cached(first.secret) is None and mine.find(first.secret) is None
    # Revoked through this process: refused at once.
    assert mine.find(second.secret) is not None
    assert mine.delete(second.token.id, "alice")
    assert mine.cached(second.secret) is None and mine.find(second.secret) is None


def test_the_writer_stores_uses_in_the_order_they_came_with_each_tokens_latest_use(db_engine):
    store = TokenStore(db_engine)
    tokens = [store.create("alice", "operator", f"t{n}").token.id for n in range(3)]
    writer = TokenUseWriter(db_engine)
    commits = []
    event.listen(db_engine, "commit", lambda connection: commits.append(1))
    sent, futures = [], []
    for n in range(60):
        token_id = tokens[n % 3]
        when = utcnow()
        sent.append((token_id, f"/api/v1/vms?n={n}", when))
        futures.append(writer.submit(token_id, when, event_row(TOKEN_USED, user="alice", target=f"token:{token_id}",
                                                               method="GET", path=f"/api/v1/vms?n={n}")))
    for future in futures:
        future.result(timeout=30)
    with Session(db_engine) as db:
        rows = db.exec(select(AuditEvent).where(col(AuditEvent.action) == TOKEN_USED).order_by(col(AuditEvent.id)))
        assert [(row.target, row.detail["path"]) for row in rows] == [(f"token:{t}", p) for t, p, _ in sent]
        used = {row.id: row.last_used_at for row in db.exec(select(ApiToken))}
    for token_id in tokens:
        assert used[token_id] == max(when for t, _, when in sent if t == token_id)
    assert 1 <= len(commits) <= 60  # uses queued together share a commit


def test_reads_by_a_token_query_it_once_and_are_all_audited_before_the_answer_returns(make_api, daemon_world):
    api = make_api(auth={"account_recheck_interval": 3600})
    user = daemon_world.users(groups=[daemon_world.operators])
    created = create_token(api, session_with_csrf(api, user))
    anonymous = api.client.__class__(api.app)
    reads = []
    lock = threading.Lock()

    def count(connection, cursor, statement, *rest) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "core_api_token" in statement:
            with lock:
                reads.append(statement)

    event.listen(api.runtime.engine, "before_cursor_execute", count)
    try:
        for _ in range(5):
            assert anonymous.get("/api/v1/auth/me", headers=bearer(created["token"])).status_code == 200
    finally:
        event.remove(api.runtime.engine, "before_cursor_execute", count)
    assert len(reads) == 1, reads  # the first request read it; the other four came from memory
    uses = api.audit("auth.token_used")
    assert [(e.user, e.detail["method"], e.detail["path"]) for e in uses] == [(user.name, "GET", "/api/v1/auth/me")] * 5
    # A revocation through this API holds at once, for the revoking request's own process.
    assert anonymous.delete(f"/api/v1/auth/tokens/{created['id']}", headers=bearer(created["token"])).status_code == 204
    assert anonymous.get("/api/v1/auth/me", headers=bearer(created["token"])).status_code == 401
    # The DELETE, a state change, recorded its use before it ran.
    assert [e.detail["method"] for e in api.audit("auth.token_used")][-1] == "DELETE"
