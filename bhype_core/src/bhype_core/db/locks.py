"""One transaction that no other process runs alongside, on SQLite and on MariaDB alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from bhype_core.errors import Conflict


@contextmanager
def exclusive_transaction(engine: Engine, purpose: str, timeout: int, what: str) -> Iterator[Connection]:
    """A connection in one transaction that excludes every other holder of ``purpose``.

    SQLite takes its write lock up front (``BEGIN IMMEDIATE``, so a read-then-write never meets
    "database is locked" half-way); MariaDB serialises holders with a named lock (``GET_LOCK``,
    scoped to the database) released afterwards.

    :param purpose: what the lock guards (``migrate``, ``tasks``); part of the lock's name.
    :param timeout: seconds to wait for the MariaDB lock.
    :param what: who holds it, for the error (``another database upgrade``).
    :raises Conflict: the MariaDB lock was not free within ``timeout`` seconds.
    """
    with engine.connect() as connection:
        mysql = engine.dialect.name in ("mysql", "mariadb")
        name = f"bhype.{purpose}.{engine.url.database}"[:64]
        if not mysql:
            connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        try:
            with connection.begin():
                if mysql:
                    # Inside the transaction, no commit of its own (a round trip less, issue 15):
                    # InnoDB takes a transaction's snapshot at its first read of a table, which
                    # comes after the lock is granted.
                    got = connection.execute(
                        text("SELECT GET_LOCK(:name, :timeout)"), {"name": name, "timeout": timeout}
                    ).scalar()
                    if got != 1:
                        raise Conflict(f"{what} has held the lock for {timeout}s")
                yield connection
        finally:
            if mysql:
                try:
                    connection.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": name})
                    connection.commit()
                except Exception:
                    connection.invalidate()  # a pooled connection must not keep the lock
