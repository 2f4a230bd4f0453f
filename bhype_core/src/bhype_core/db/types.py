"""Column types that behave the same on SQLite and MariaDB (UTC times, JSON as text, big ids)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

MYSQL_DIALECTS = ("mysql", "mariadb")

# Row ids: BIGINT on MariaDB (audit tables grow for years); on SQLite it must be exactly
# INTEGER, because only "INTEGER PRIMARY KEY" aliases the rowid and auto-increments.
ID = BigInteger().with_variant(Integer(), "sqlite")

# Table options for MariaDB: a database created with another default character set must not
# turn user names and VM descriptions into "???". Plugin tables should use them too.
TABLE_OPTIONS: dict[str, str] = {"mysql_charset": "utf8mb4"}


class UTCDateTime(TypeDecorator[datetime]):
    """A point in time, stored as naive UTC (neither backend keeps a zone) with microseconds.

    Writing a naive value assumes it is already UTC; an aware value is converted. Reading
    always gives an aware UTC ``datetime``.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL_DIALECTS:
            # MariaDB's DATETIME drops fractions of a second unless asked for them.
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class JSONText(TypeDecorator[Any]):
    """A JSON document stored as text (TEXT on SQLite, MEDIUMTEXT on MariaDB).

    Plain text rather than the backends' JSON types: MariaDB's JSON is LONGTEXT with a CHECK
    and reflects differently from SQLite's, while text compares cleanly in migrations and keeps
    non-ASCII characters readable (``ensure_ascii=False``).
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.MEDIUMTEXT())  # TEXT stops at 64 KiB
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(value)
