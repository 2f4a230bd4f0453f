"""Recording API token uses off the request path: one writer thread, uses written in the order
they came, many per commit.

A token's every use is audited (``auth.token_used``) and moves its ``last_used_at``. Written
inside the request, that is a commit per request: on MariaDB a log flush, the largest cost of a
``GET /api/v1/vms`` page (issue 15). A read request (GET/HEAD) by a token now hands its use to
this writer; the request's background task waits until it is stored, after the answer went out.
So the use is still recorded before that request is over (a test client that waits for the
background tasks reads it at once), the rows keep the order the uses came in (one FIFO, one
thread), and uses arriving together share one commit. A request that may change state records
its use itself, before anything else happens (:meth:`bhype_core.api.tokens.TokenStore.mark_used`).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import col

from bhype_core.api.audit_log import EngineSource, resolve_engine
from bhype_core.db.auth_models import ApiToken
from bhype_core.db.models import AuditEvent

log = logging.getLogger("bhype.auth")

MAX_BATCH = 500  # uses per commit at most (a burst of thousands still commits in steps)
WAIT_SECONDS = 30.0  # how long a request's background task waits for its use to be stored


@dataclass
class TokenUse:
    """One use: the token's row id, when, and its ``auth.token_used`` audit row."""

    token_id: int
    when: datetime
    audit: AuditEvent
    done: Future[None] = field(default_factory=Future)


class TokenUseWriter:
    """The writer thread (started on the first use; a daemon, so it never holds up an exit)."""

    def __init__(self, engine: EngineSource) -> None:
        self._engine = engine
        self._queue: queue.SimpleQueue[TokenUse] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, token_id: int, when: datetime, audit: AuditEvent) -> Future[None]:
        """Queue one use; the future completes once it is committed (or carries the error)."""
        use = TokenUse(token_id, when, audit)
        self._queue.put(use)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="bhype-token-uses", daemon=True)
                self._thread.start()
        return use.done

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[TokenUse]) -> None:
        try:
            store(resolve_engine(self._engine), batch)
        except Exception:
            if len(batch) > 1:  # one bad row must not lose the others: each on its own
                for use in batch:
                    self._write([use])
                return
            log.exception("API token %s: its use could not be recorded", batch[0].token_id)
            batch[0].done.set_exception(RuntimeError("the token use could not be recorded"))
            return
        for use in batch:
            use.done.set_result(None)


def store(engine: Any, batch: list[TokenUse]) -> None:
    """Write ``batch`` in one transaction: the audit rows in order, each token's latest use."""
    table = AuditEvent.__table__  # type: ignore[attr-defined]
    latest: dict[int, datetime] = {}
    for use in batch:
        latest[use.token_id] = max(use.when, latest.get(use.token_id, use.when))
    with engine.begin() as connection:
        connection.execute(insert(table), [use.audit.model_dump(exclude={"id"}) for use in batch])
        for token_id, when in latest.items():
            connection.execute(update(ApiToken).where(col(ApiToken.id) == token_id).values(last_used_at=when))


def wait_stored(done: Future[None]) -> None:
    """A request's background task: return once its token use is stored (raises its error)."""
    done.result(timeout=WAIT_SECONDS)
