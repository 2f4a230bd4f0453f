"""A fake plugin with its own table and migration branch ``fakedb`` (depends on the core's)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlmodel import Field, SQLModel

from bhype_core.db.types import ID, TABLE_OPTIONS
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import ModelSet

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class Widget(SQLModel, table=True):
    """Table ``fakedb_widget``: refers to a core table, so its branch depends on the core's."""

    __tablename__ = "fakedb_widget"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str = Field(max_length=64, unique=True)
    # Same type as the referenced id (BIGINT on MariaDB), or InnoDB refuses the foreign key.
    host_command_id: int | None = Field(default=None, foreign_key="core_host_command.id", sa_type=ID)


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    register(ModelSet(name="fakedb", models=(Widget,), migrations=MIGRATIONS))
