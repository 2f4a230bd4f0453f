"""The core's own tables (``core_`` prefix): the host command audit trail, audit events, host facts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Double, Text, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from bhype_core.db.types import ID, TABLE_OPTIONS, JSONText, UTCDateTime

# Column sizes; record_host_command() trims to them so an audit row is never lost to a long value.
USER_LENGTH = 255
TASK_ID_LENGTH = 64
TARGET_LENGTH = 255
ACTION_LENGTH = 64
REMOTE_ADDR_LENGTH = 64
FACT_KEY_LENGTH = 128
STDERR_TAIL_LENGTH = 8000  # characters; the runner keeps only the last lines anyway
COMMAND_ID_LENGTH = 32  # uuid4().hex
COMMAND_STATE_LENGTH = 16


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class HostCommandBase(SQLModel):
    """One host command as the audit trail shows it."""

    time: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    user: str = Field(default="", max_length=USER_LENGTH, index=True)
    task_id: str | None = Field(default=None, max_length=TASK_ID_LENGTH, index=True)
    target: str = Field(default="local", max_length=TARGET_LENGTH)
    argv: list[str] = Field(sa_type=JSONText)
    returncode: int | None = None
    duration: float = Field(default=0.0, sa_type=Double)
    dry_run: bool = False
    stderr_tail: str = Field(default="", sa_type=Text)
    # running (written when the command starts), finished, or interrupted (the worker died
    # while it ran: recovery found the row still running). Issue 11.
    state: str = Field(default="finished", max_length=COMMAND_STATE_LENGTH, index=True)


class HostCommand(HostCommandBase, table=True):
    """Table ``core_host_command``: every command the runner ran (or would have, in dry-run),
    written when it starts and completed when it ends (matched by ``command_id``)."""

    __tablename__ = "core_host_command"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    command_id: str | None = Field(default=None, max_length=COMMAND_ID_LENGTH, index=True)


class HostCommandPublic(HostCommandBase):
    """A host command as the API returns it."""

    id: int


class AuditEventBase(SQLModel):
    """Something a user did that is worth keeping: a login, a token used, a setting changed."""

    time: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    user: str = Field(default="", max_length=USER_LENGTH, index=True)
    action: str = Field(max_length=ACTION_LENGTH, index=True)
    target: str = Field(default="", max_length=TARGET_LENGTH)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    remote_addr: str | None = Field(default=None, max_length=REMOTE_ADDR_LENGTH)


class AuditEvent(AuditEventBase, table=True):
    """Table ``core_audit_event``."""

    __tablename__ = "core_audit_event"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)


class AuditEventPublic(AuditEventBase):
    """An audit event as the API returns it."""

    id: int


class FactRecord(SQLModel, table=True):
    """Table ``core_fact``: the latest value of one host fact the worker probed (``zfs.status``),
    one row per key, replaced on every probe. Read and written through
    :class:`bhype_core.facts.FactStore`."""

    __tablename__ = "core_fact"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    key: str = Field(primary_key=True, max_length=FACT_KEY_LENGTH)
    value: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


CORE_MODELS: tuple[type[SQLModel], ...] = (HostCommand, AuditEvent, FactRecord)


def _field(record: Any, name: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(name, default)
    return getattr(record, name, default)


def _as_time(value: Any) -> datetime:
    if value is None:
        return utcnow()
    if isinstance(value, int | float):  # epoch seconds (time.time())
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    raise TypeError(f"host command time must be a datetime or epoch seconds, not {type(value).__name__}")


def _trim(value: Any, length: int, keep_end: bool = False) -> str:
    text = "" if value is None else str(value)
    if len(text) <= length:
        return text
    return text[-length:] if keep_end else text[:length]


def host_command_from_record(record: Any) -> HostCommand:
    """Turn the runner's audit record (an object or mapping with the ``HostCommand`` fields)
    into a row, trimming over-long values to the column sizes."""
    argv = _field(record, "argv")
    if argv is None:
        raise ValueError("a host command record needs argv")
    task_id = _field(record, "task_id")
    return HostCommand(
        command_id=_field(record, "command_id") or None,
        state=_trim(_field(record, "state", "finished") or "finished", COMMAND_STATE_LENGTH),
        time=_as_time(_field(record, "time")),
        user=_trim(_field(record, "user"), USER_LENGTH),
        task_id=None if task_id in (None, "") else _trim(task_id, TASK_ID_LENGTH),
        target=_trim(_field(record, "target", "local") or "local", TARGET_LENGTH),
        argv=[str(arg) for arg in argv],
        returncode=_field(record, "returncode"),
        duration=float(_field(record, "duration", 0.0) or 0.0),
        dry_run=bool(_field(record, "dry_run", False)),
        stderr_tail=_trim(_field(record, "stderr_tail"), STDERR_TAIL_LENGTH, keep_end=True),
    )


def record_host_command(engine: Engine, record: Any) -> int:
    """Store one host command in ``core_host_command`` (the runner's audit sink).

    :param engine: the runtime's engine (tables created by ``bhype db upgrade``).
    :param record: the runner's ``AuditRecord`` or a mapping with its fields: ``time``
        (datetime or epoch seconds; default now), ``user``, ``task_id``, ``target``, ``argv``,
        ``returncode`` (None when the command was killed or never started), ``duration``,
        ``dry_run``, ``stderr_tail``.
    :returns: the new row's id.
    :raises sqlalchemy.exc.SQLAlchemyError: the database refused or is unreachable; the caller
        decides whether a lost audit row fails the command.
    """
    row = host_command_from_record(record)
    if row.command_id and row.state != "running":
        # The end of a command whose start was recorded: complete that row. One UPDATE, not a
        # read then a write: SQLite refuses to upgrade a reading transaction while another
        # connection writes ("database is locked") instead of waiting for it.
        values = {name: getattr(row, name) for name in ("returncode", "duration", "dry_run", "stderr_tail", "state")}
        with engine.begin() as connection:
            changed = connection.execute(update(HostCommand).where(
                col(HostCommand.command_id) == row.command_id).values(**values)).rowcount
        if changed:
            with engine.connect() as connection:
                return int(connection.execute(select(col(HostCommand.id)).where(
                    col(HostCommand.command_id) == row.command_id)).scalar_one())
    with Session(engine) as session:
        session.add(row)
        session.commit()
        assert row.id is not None
        return row.id


class HostCommandSink:
    """The runtime's audit sink for ``core_host_command``: a row when a command starts
    (state ``running``), completed when it ends."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def started(self, record: Any) -> None:
        """Write the row of a command that starts now."""
        record_host_command(self.engine, record)

    def __call__(self, record: Any) -> None:
        """Complete the row of a command that ended (or write it, if its start was lost)."""
        record_host_command(self.engine, record)


def mark_commands_interrupted(engine: Engine, task_id: str) -> int:
    """Mark the ``running`` commands of ``task_id`` as ``interrupted`` (recovery: the worker
    running them died); returns how many."""
    with engine.begin() as connection:  # one UPDATE (see record_host_command)
        statement = update(HostCommand).where(col(HostCommand.task_id) == task_id, col(HostCommand.state) == "running")
        return int(connection.execute(statement.values(state="interrupted")).rowcount)
