"""Host facts: what the worker probed on the host (tool versions, pool health), kept for the API.

The API process never runs host commands (issue 3, "Privilege separation"), so a status route
cannot ask the host itself. Instead a periodic job (or an admin's refresh task) in the worker
probes the host and stores the result under a key such as ``zfs.status``; the route reads the
stored value and says how old it is. One row per key in ``core_fact``, replaced on every probe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from bhype_core.db.models import FACT_KEY_LENGTH, FactRecord, utcnow
from bhype_core.errors import ValidationErrors

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Fact:
    """A stored fact: its ``key``, the JSON ``value`` the probe stored, and when (``updated``,
    aware UTC)."""

    key: str
    value: dict[str, Any]
    updated: datetime

    def age(self, now: datetime | None = None) -> float:
        """Seconds since the fact was stored (never negative, even with a clock step back)."""
        now = now or datetime.now(UTC)
        return max(0.0, (now - self.updated).total_seconds())


def check_fact(key: Any, value: Any) -> None:
    """Refuse what :meth:`FactStore.put` cannot store faithfully.

    :raises ValidationErrors: ``key`` is not a non-empty string of at most 128 characters, or
        ``value`` is not a JSON object (a dict of plain JSON data: no NaN, no dates).
    """
    errors = ValidationErrors()
    if not isinstance(key, str) or not key.strip():
        errors.add("key", "must be a non-empty string such as 'zfs.status'")
    elif len(key) > FACT_KEY_LENGTH:
        errors.add("key", f"must be at most {FACT_KEY_LENGTH} characters, not {len(key)}")
    if not isinstance(value, dict):
        errors.add("value", f"must be a JSON object (dict), not {type(value).__name__}")
    else:
        try:
            # Stored as JSON text: what does not survive json.dumps would come back changed.
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            errors.add("value", f"must be plain JSON data: {exc}")
    errors.raise_if_any()


class FactStore:
    """Reads and writes host facts in ``core_fact`` (the worker writes, the API reads).

    :param engine: the runtime's engine, migrated (``bhype db upgrade``; ``core_0006``).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put(self, key: str, value: dict[str, Any]) -> Fact:
        """Store ``value`` as the fact ``key``, replacing any earlier value, stamped now.

        :raises ValidationErrors: a bad ``key`` or ``value`` (see :func:`check_fact`); nothing
            is stored then.
        :returns: the stored fact.
        """
        check_fact(key, value)
        updated = utcnow()
        table = FactRecord.__table__  # type: ignore[attr-defined]
        # Update-or-insert in portable SQL. SQLite takes its write lock up front (BEGIN
        # IMMEDIATE waits for the busy timeout; a deferred BEGIN would fail at once when another
        # writer got in between). On MariaDB two probes racing to insert the first row: the
        # loser's insert fails on the key, and its retry finds the winner's row and updates it.
        for attempt in range(2):
            try:
                with self.engine.connect() as connection:
                    connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                    with connection.begin():
                        found = connection.execute(select(table.c.key).where(table.c.key == key)).first()
                        if found is None:
                            connection.execute(insert(table).values(key=key, value=value, updated=updated))
                        else:
                            connection.execute(
                                update(table).where(table.c.key == key).values(value=value, updated=updated)
                            )
                break
            except IntegrityError:
                if attempt:
                    raise
        return Fact(key, _copy(value), updated)

    def get(self, key: str) -> Fact | None:
        """The fact ``key`` as last stored, or ``None`` when nothing was stored yet."""
        with Session(self.engine) as session:
            row = session.get(FactRecord, key)
            if row is None:
                return None
            return Fact(row.key, row.value, row.updated)


def _copy(value: dict[str, Any]) -> dict[str, Any]:
    # What a later get() returns: the JSON round trip (tuples become lists), not the caller's
    # object, so later changes to the caller's dict cannot show up in the returned fact.
    return json.loads(json.dumps(value))


class ProbeState(BaseModel):
    """Where a status answer's host data came from: the worker's last probe, and its age.

    Status models of plugins that probe the host extend this; their probed fields are empty
    while ``probed`` is false.
    """

    probed: bool = Field(description="whether the worker has stored a probe of the host yet")
    probed_at: datetime | None = Field(None, description="when the worker probed (UTC)")
    age_seconds: float | None = Field(None, description="seconds since that probe")
    message: str | None = Field(None, description="why there is no probe to show, when there is none")


def read_probe(
    store: FactStore, key: str, model: type[M], *, what: str, refresh: str, now: datetime | None = None
) -> tuple[M | None, ProbeState]:
    """The stored probe ``key`` parsed as ``model``, and its :class:`ProbeState`.

    :param what: what the probe looks at, for the message (``"the host's ZFS"``).
    :param refresh: the route that queues a fresh probe, for the message.
    :returns: ``(value, state)``; ``value`` is ``None`` when nothing usable is stored (never
        probed, or stored by a plugin version whose document no longer fits ``model``), and
        ``state.message`` then says why and what to do.
    """
    fact = store.get(key)
    hint = f"it probes every few minutes, or at once after {refresh} (admins)"
    if fact is None:
        return None, ProbeState(
            probed=False, message=f"the worker has not probed {what} yet: {hint}; is the worker running?"
        )
    try:
        value = model.model_validate(fact.value)
    except ValidationError:
        # An upgrade changed the document's shape; the next probe replaces it.
        return None, ProbeState(
            probed=False, message=f"the stored probe of {what} is from an older version: {hint}"
        )
    state = ProbeState(probed=True, probed_at=fact.updated, age_seconds=round(fact.age(now), 3))
    return value, state
