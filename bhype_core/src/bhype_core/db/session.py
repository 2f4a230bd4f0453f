"""Database sessions: one unit of work that commits on success and rolls back on error."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session


@contextmanager
def session(runtime_or_engine: Any, *, write: bool = False) -> Iterator[Session]:
    """A SQLModel session over the runtime's engine (an ``Engine`` works too).

    Commits when the block ends normally, rolls back when it raises, and always closes.
    Objects stay readable after the block (no expiry on commit), so a route can return them::

        with session(runtime) as db:
            db.add(HostCommand(argv=["true"]))

    :param write: the block reads rows and then writes (read-modify-write). On SQLite the
        transaction then takes the write lock when it begins (``BEGIN IMMEDIATE``, which waits
        out another writer for the busy timeout): a deferred transaction that has read fails
        at its first write with "database is locked", at once and without waiting, whenever
        another connection committed in between (WAL snapshot rule). No effect on MariaDB.
    """
    engine: Engine = runtime_or_engine if isinstance(runtime_or_engine, Engine) else runtime_or_engine.engine
    with Session(engine, expire_on_commit=False) as db:
        if write and engine.dialect.name == "sqlite":
            db.connection(execution_options={"sqlite_begin": "BEGIN IMMEDIATE"})
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
