"""Bounds every integer the API accepts shares: SQLite and MariaDB keep signed 64-bit integers,
so a larger number must be refused as bad input before it reaches a query (issue 11).

Query, path and body fields declare their bounds with these types (``offset: Offset``,
``up_to: NonNegativeInt64 | None``); a meta-test walks the OpenAPI document and fails on any
integer without both bounds. Integers inside free-form JSON (task arguments, VM specs) are
checked by :mod:`bhype_core.api.json_guard` before a route sees them.
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# Usable in pydantic fields and in FastAPI query/path parameters alike (both read
# annotated-types constraints), and shown as minimum/maximum in the OpenAPI document.
Int64 = Annotated[int, Ge(INT64_MIN), Le(INT64_MAX)]
NonNegativeInt64 = Annotated[int, Ge(0), Le(INT64_MAX)]
PositiveInt64 = Annotated[int, Ge(1), Le(INT64_MAX)]
# A row id (database primary keys start at 1).
RowId = PositiveInt64
# How many rows of a list to skip.
Offset = NonNegativeInt64


def in_int64(value: int) -> bool:
    """Whether ``value`` fits the signed 64-bit integers every supported database stores."""
    return INT64_MIN <= value <= INT64_MAX


def event_id(text: str | None) -> int | None:
    """A Server-Sent Events ``Last-Event-ID`` header as a non-negative 64-bit number, or None
    when it is absent or not one (a resuming client then starts afresh rather than failing)."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text[:20])  # more digits than 2**63 has: out of range anyway
    return value if len(text) <= 19 and value <= INT64_MAX else None
