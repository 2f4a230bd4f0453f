"""Building the SQLAlchemy engine for ``core.database_url`` (SQLite or MariaDB) and probing it."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event, text
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import ArgumentError, DisconnectionError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from bhype_core.errors import ConfigError
from bhype_core.private_files import ensure_private_sqlite

SETTING = "core.database_url"

# Seconds a SQLite connection waits for another process's write lock (API and worker share
# the file) before giving up with "database is locked".
SQLITE_BUSY_TIMEOUT = 15.0

# pymysql waits forever by default; a dead server must become an error, not a hung request.
# read/write are generous because a migration's ALTER TABLE on a large table is one long read.
# A value in the URL's query string (``?read_timeout=600``) wins.
MYSQL_CONNECT_ARGS: dict[str, Any] = {
    "connect_timeout": 10,
    "read_timeout": 300,
    "write_timeout": 300,
    "charset": "utf8mb4",  # real UTF-8 (4-byte), not MySQL's 3-byte "utf8"
}

# Seconds a pooled MariaDB connection may rest before its next checkout pings the server first.
# A ping is a round trip, and the task path checks connections out several times per task (issue
# 15): a connection used this recently was alive then, and should the server have restarted
# since, the first statement fails as a disconnect, which makes SQLAlchemy replace every pooled
# connection; the server's own idle limit (wait_timeout, 8 h) is far longer than this.
PING_AFTER_IDLE = 2.0

SUPPORTED = {
    "sqlite": "sqlite:///path/to/bhype.sqlite3",
    "sqlite+pysqlite": "sqlite+pysqlite:///path/to/bhype.sqlite3",
    "mysql+pymysql": "mysql+pymysql://user:password@host:3306/bhype",
    "mariadb+pymysql": "mariadb+pymysql://user:password@host:3306/bhype",
}


def parse_database_url(url: str) -> URL:
    """Parse and check a database URL; anything bHype cannot use is a :class:`ConfigError`
    naming ``core.database_url``."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"{SETTING}: must be a SQLAlchemy URL such as {SUPPORTED['sqlite']}")
    try:
        parsed = make_url(url.strip())
    except (ArgumentError, ValueError):  # ValueError: e.g. a port that is not a number
        # Never echo the URL itself: it may carry a password.
        raise ConfigError(
            f"{SETTING}: not a valid database URL (expected e.g. {SUPPORTED['mysql+pymysql']})"
        ) from None
    if parsed.drivername not in SUPPORTED:
        raise ConfigError(
            f"{SETTING}: unsupported database driver {parsed.drivername!r}; "
            f"use one of {', '.join(sorted(SUPPORTED))}"
        )
    if parsed.get_backend_name() != "sqlite" and not parsed.database:
        raise ConfigError(f"{SETTING}: the URL names no database (…/bhype at the end)")
    return parsed


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """Build the engine for ``url`` with bHype's connection settings.

    SQLite: the file's directory is created, the file made 0600 before SQLite first opens it
    (:mod:`bhype_core.private_files`; an existing looser file is tightened and logged),
    connections may cross threads (the API's thread pool, the in-process worker), and each
    connection gets WAL journalling (readers do not block the writer), enforced foreign keys
    and a busy timeout. Transactions are begun explicitly so DDL is transactional too (a failed
    migration leaves nothing behind); a connection with the execution option
    ``sqlite_begin="BEGIN IMMEDIATE"`` takes the write lock up front.

    MariaDB (``mysql+pymysql://``): a connection idle for :data:`PING_AFTER_IDLE` seconds is
    pinged before use (the server drops idle ones), connections are recycled hourly, time out
    instead of hanging, and speak utf8mb4.

    :raises ConfigError: the URL is malformed or names a driver bHype does not support; the
        message names ``core.database_url`` and never contains the password.
    """
    parsed = parse_database_url(url)
    try:
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(parsed, echo)
        return _mysql_engine(parsed, echo)
    except (ArgumentError, NoSuchModuleError, TypeError, ValueError) as exc:
        where = parsed.render_as_string(hide_password=True)
        raise ConfigError(f"{SETTING}: cannot use {where}: {exc}") from None


def _sqlite_engine(url: URL, echo: bool) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    if not in_memory and not database.startswith("file:"):
        directory = Path(database).expanduser().parent
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{SETTING}: cannot create the directory {directory}: {exc.strerror}") from None
        try:
            # Created 0600 before SQLite opens it, so its side files are 0600 too (private_files).
            ensure_private_sqlite(Path(database).expanduser())
        except OSError as exc:
            raise ConfigError(f"{SETTING}: cannot create {database}: {exc.strerror}") from None
    options: dict[str, Any] = {
        "echo": echo,
        "connect_args": {"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT},
    }
    if in_memory:
        # Every new connection to :memory: is a new empty database: share exactly one.
        options["poolclass"] = StaticPool
    engine = sqlalchemy.create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite opens transactions itself only before DML, so DDL would autocommit; turn
        # that off and issue BEGIN in the "begin" hook below (SQLAlchemy's documented recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, far fewer fsyncs
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))

    return engine


def _switch_to_wal(cursor: Any, attempts: int = 50) -> None:
    """``PRAGMA journal_mode=WAL``, retried: when two processes open a new database at once,
    SQLite answers "database is locked" at once instead of waiting (its deadlock avoidance
    skips the busy handler while the other connection holds a shared lock)."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 + 0.01 * attempt)


def _mysql_engine(url: URL, echo: bool) -> Engine:
    connect_args = {key: value for key, value in MYSQL_CONNECT_ARGS.items() if key not in url.query}
    engine = sqlalchemy.create_engine(
        url,
        echo=echo,
        pool_recycle=3600,  # below the server's wait_timeout, so no "server has gone away"
        connect_args=connect_args,
    )
    ping_idle_connections(engine, PING_AFTER_IDLE)
    return engine


def ping_idle_connections(engine: Engine, idle: float) -> None:
    """Ping a pooled connection at checkout when it rested at least ``idle`` seconds (SQLAlchemy's
    ``pool_pre_ping`` pings at every checkout: one round trip more per transaction). A failed
    ping discards the connection and the pool opens a fresh one (``DisconnectionError``, the
    pool's documented checkout contract)."""

    @event.listens_for(engine.pool, "checkin")
    def _rested_since(dbapi_connection: Any, record: Any) -> None:
        record.info["bhype.checked_in"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _ping_if_rested(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("bhype.checked_in")
        if since is None or time.monotonic() - since < idle:
            return  # just opened, or used moments ago
        try:
            dbapi_connection.ping(reconnect=False)
        except Exception as exc:  # the server closed it (restart, wait_timeout): a new one
            raise DisconnectionError(f"pooled connection lost while idle: {exc}") from exc


def backend_name(engine: Engine) -> str:
    """``sqlite``, ``mariadb`` or ``mysql`` (told apart only once connected)."""
    dialect = engine.dialect
    if dialect.name in ("mysql", "mariadb"):
        return "mariadb" if getattr(dialect, "is_mariadb", False) or dialect.name == "mariadb" else "mysql"
    return dialect.name


def check_database(engine: Engine) -> dict[str, Any]:
    """Probe the database for the health endpoint; never raises.

    :returns: ``{"ok": bool, "backend": "sqlite"|"mariadb"|"mysql", "detail": str}``; the detail
        is the server version when reachable, else the error (the password is never shown).
    """
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                version = connection.exec_driver_sql("SELECT sqlite_version()").scalar()
                detail = f"SQLite {version} at {engine.url.database or ':memory:'}"
            else:
                version = connection.execute(text("SELECT VERSION()")).scalar()
                detail = f"server {version} at {where}"
        return {"ok": True, "backend": backend_name(engine), "detail": detail}
    except Exception as exc:  # the health check reports every failure, it never raises
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return {
            "ok": False,
            "backend": backend_name(engine),
            "detail": f"{where}: {type(exc).__name__}: {message}",
        }
