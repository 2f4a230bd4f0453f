"""Core models, engine and sessions against real SQLite files and the real MariaDB server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fake_plugins import fakedb
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bhype_core.builtins import models as core_models
from bhype_core.db import migrate
from bhype_core.db.engine import check_database, make_engine
from bhype_core.db.models import STDERR_TAIL_LENGTH, AuditEvent, HostCommand, record_host_command
from bhype_core.db.session import session
from bhype_core.errors import ConfigError
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import Runtime, build_runtime
from bhype_core.testing import make_settings

UNICODE_ARG = "Grüße, ünïcode ✓ 🐡 \"quoted\" \\ back"


@dataclass
class AuditRecord:
    """The shape of the runner's audit record (engineer A's ``AuditRecord`` fields)."""

    time: datetime
    user: str
    task_id: str | None
    target: str
    argv: list[str]
    returncode: int | None
    duration: float
    dry_run: bool
    stderr_tail: str = ""
    extra: dict = field(default_factory=dict)


@pytest.fixture
def migrated(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime with the core (and the fake plugin's) tables migrated on ``database_url``."""
    plugins = [("core_models", core_models), ("fakedb", fakedb)]
    pm = make_plugin_manager(load_entrypoints=False, plugins=plugins)
    runtime = build_runtime(make_settings(tmp_path / "data", core={"database_url": database_url}), pm)
    migrate.upgrade(runtime)
    yield runtime
    runtime.engine.dispose()


def test_host_command_round_trip(migrated: Runtime) -> None:
    when = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=timezone(timedelta(hours=2)))
    record = AuditRecord(
        time=when,
        user="jürgen",
        task_id="3f2c9a1e-6d5b-4c1f-9d7e-1a2b3c4d5e6f",
        target="ssh://root@127.0.0.1:2222",
        argv=["zfs", "create", "-o", f"bhype:note={UNICODE_ARG}", "tank/vm/𝔳𝔪1"],
        returncode=None,
        duration=1.2345678901,
        dry_run=True,
        stderr_tail="x" * (STDERR_TAIL_LENGTH + 100) + "the end ✗",
    )
    row_id = record_host_command(migrated.engine, record)

    with Session(migrated.engine) as db:
        row = db.exec(select(HostCommand).where(HostCommand.id == row_id)).one()
    assert row.argv == record.argv
    assert row.time == when  # the same instant, with microseconds
    assert row.time.tzinfo is UTC and row.time.hour == 21
    assert (row.user, row.task_id, row.target) == (record.user, record.task_id, record.target)
    assert row.returncode is None and row.dry_run is True
    assert row.duration == record.duration  # a double, not MariaDB's 4-byte FLOAT
    assert len(row.stderr_tail) == STDERR_TAIL_LENGTH and row.stderr_tail.endswith("the end ✗")


def test_host_command_from_mapping_with_epoch_time(migrated: Runtime) -> None:
    first = record_host_command(
        migrated.engine, {"time": 1_700_000_000.5, "argv": ["true"], "returncode": 0, "task_id": ""}
    )
    second = record_host_command(migrated.engine, {"argv": ["false"], "returncode": 1, "user": "ops"})
    assert second > first
    with Session(migrated.engine) as db:
        rows = db.exec(select(HostCommand).order_by(HostCommand.id)).all()
    assert [(r.argv, r.returncode, r.user, r.task_id, r.target) for r in rows] == [
        (["true"], 0, "", None, "local"),
        (["false"], 1, "ops", None, "local"),
    ]
    assert rows[0].time == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=UTC)


def test_host_command_without_argv_is_refused(migrated: Runtime) -> None:
    with pytest.raises(ValueError, match="argv"):
        record_host_command(migrated.engine, {"returncode": 0})


def test_audit_event_round_trip_and_session_unit_of_work(migrated: Runtime) -> None:
    detail = {"method": "pam", "groups": ["wheel", "opérateurs"], "nested": {"ok": True, "n": 3}}
    with session(migrated) as db:
        db.add(AuditEvent(user="jürgen", action="login", target="api", detail=detail, remote_addr="::1"))
    with pytest.raises(RuntimeError):
        with session(migrated) as db:
            db.add(AuditEvent(user="mallory", action="login", target="api"))
            db.flush()  # reaches the database, and must still be undone
            raise RuntimeError("request failed")

    with session(migrated) as db:
        events = db.exec(select(AuditEvent)).all()
    found = [(e.user, e.action, e.detail, e.remote_addr) for e in events]
    assert found == [("jürgen", "login", detail, "::1")]
    assert events[0].time.tzinfo is UTC


def test_foreign_keys_are_enforced(migrated: Runtime) -> None:
    with pytest.raises(IntegrityError):
        with session(migrated) as db:
            db.add(fakedb.Widget(name="orphan", host_command_id=999_999))
    command_id = record_host_command(migrated.engine, {"argv": ["true"]})
    with session(migrated) as db:
        db.add(fakedb.Widget(name="ok", host_command_id=command_id))
    with session(migrated) as db:
        assert [w.name for w in db.exec(select(fakedb.Widget)).all()] == ["ok"]


def test_check_database_reports_backend(migrated: Runtime) -> None:
    result = check_database(migrated.engine)
    assert result["ok"] is True
    expected = "sqlite" if migrated.engine.dialect.name == "sqlite" else "mariadb"
    assert result["backend"] == expected
    assert result["detail"]


def test_sqlite_engine_settings(tmp_path: Path) -> None:
    database = tmp_path / "not" / "yet" / "there.sqlite3"
    engine = make_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            pragma = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                      for name in ("journal_mode", "foreign_keys", "busy_timeout")}
        assert database.is_file()
        assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 15000}
    finally:
        engine.dispose()


def test_db_session_fixture_has_core_tables(db_session: Session, db_engine: Engine) -> None:
    db_session.add(HostCommand(argv=["uname", "-a"], returncode=0))
    db_session.commit()
    assert [row.argv for row in db_session.exec(select(HostCommand)).all()] == [["uname", "-a"]]
    assert check_database(db_engine)["backend"] == "sqlite"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("", "must be a SQLAlchemy URL"),
        ("not a url", "not a valid database URL"),
        ("postgresql://u:hunter2@localhost/bhype", "unsupported database driver 'postgresql'"),
        ("mysql://u:hunter2@localhost/bhype", "unsupported database driver 'mysql'"),
        ("mysql+pymysql://u:hunter2@localhost:3306/", "names no database"),
        ("mysql+pymysql://u:hunter2@localhost:notaport/bhype", "not a valid database URL"),
    ],
)
def test_bad_database_url(url: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        make_engine(url)
    assert caught.value.message.startswith("core.database_url: ")
    assert expected in caught.value.message
    assert "hunter2" not in caught.value.message


def test_sqlite_directory_that_cannot_exist(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"core\.database_url: cannot create the directory"):
        make_engine(f"sqlite:///{blocker / 'sub' / 'db.sqlite3'}")


def test_check_database_never_raises(tmp_path: Path) -> None:
    unreachable = make_engine("mysql+pymysql://root:hunter2@127.0.0.1:1/bhype")
    directory = make_engine(f"sqlite:///{tmp_path}")  # a directory is no database file
    try:
        for engine, backend in ((unreachable, "mysql"), (directory, "sqlite")):
            result = check_database(engine)
            assert result["ok"] is False and result["backend"] == backend
            assert "hunter2" not in result["detail"]
        assert "Can't connect" in check_database(unreachable)["detail"]
    finally:
        unreachable.dispose()
        directory.dispose()
