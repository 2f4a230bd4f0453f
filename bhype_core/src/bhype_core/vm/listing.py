"""The one paginated VM list the API, the CLI and the web UI share: filtering, sorting and
paging done by the database in one query, summaries read from the stored spec (no per-VM file
reads, no spec validation), JSON written by orjson.

Pages are keyset ("cursor") pages: ``after`` is the opaque ``next`` of the previous page, so
page 100 costs what page 1 costs and a VM created meanwhile neither repeats nor hides a row.
The web UI's numbered pages use ``offset`` on the same query (issue 15).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Text, and_, or_, select, true, type_coerce
from sqlalchemy.engine import Connection
from sqlmodel import col

from bhype_core.errors import ValidationErrors
from bhype_core.vm.models import VM
from bhype_core.vm.records import is_admin

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SORTS = {"name": col(VM.name), "state": col(VM.state), "owner": col(VM.owner), "updated": col(VM.updated)}
MAX_SEARCH = 63  # a VM name is at most 63 characters: a longer search cannot match

# The spec as the stored text (orjson parses it ~5x faster than the column type's json.loads).
_COLUMNS = (col(VM.id), col(VM.name), col(VM.uuid), col(VM.owner), col(VM.datastore), col(VM.state),
            col(VM.state_detail), type_coerce(col(VM.spec), Text()), col(VM.created), col(VM.updated),
            col(VM.host))


@dataclass(frozen=True)
class ListQuery:
    """Which VMs, in which order, which page: ``owner``/``state`` exact, ``search`` a part of the
    name, ``sort`` a key of :data:`SORTS` (ties broken by name), ``after`` a cursor."""

    owner: str | None = None
    state: str | None = None
    search: str = ""
    host: str | None = None  # only VMs of this group host (issue 22)
    sort: str = "name"
    limit: int = DEFAULT_LIMIT
    after: str | None = None
    offset: int = 0


@dataclass(frozen=True)
class ListPage:
    """One page: summaries (the fields of :class:`~bhype_core.vm.public.VMSummary`, as dicts)
    and the cursor of the next page (``None`` on the last)."""

    vms: list[dict[str, Any]]
    next: str | None


def encode_cursor(sort: str, vm: dict[str, Any]) -> str:
    """The cursor after ``vm`` in ``sort`` order (URL-safe, opaque to clients)."""
    value = vm[sort]
    if isinstance(value, datetime):
        value = value.isoformat()
    return base64.urlsafe_b64encode(orjson.dumps([value, vm["name"]])).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> tuple[Any, str]:
    """``(sort value, name)`` from :func:`encode_cursor`'s text.

    :raises ValidationErrors: at ``after`` when the cursor is not one of ours.
    """
    try:
        value, name = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if sort == "updated":
            value = datetime.fromisoformat(value)
        if not isinstance(name, str) or not isinstance(value, str | datetime):
            raise ValueError(cursor)
    except (ValueError, TypeError, orjson.JSONDecodeError):
        raise ValidationErrors([("after", "not a cursor from this list (use the previous page's 'next')")]) from None
    return value, name


def _conditions(principal: Any, query: ListQuery) -> list[Any]:
    # The visibility rule of bhype_core.vm.records, as a condition.
    conditions = [] if is_admin(principal) else [col(VM.owner) == getattr(principal, "name", None)]
    if query.owner:
        conditions.append(col(VM.owner) == query.owner)
    if query.state:
        conditions.append(col(VM.state) == query.state)
    if query.host:
        conditions.append(col(VM.host) == query.host)
    if query.search:
        conditions.append(col(VM.name).contains(query.search[:MAX_SEARCH], autoescape=True))
    if query.after:
        value, name = decode_cursor(query.sort, query.after)
        if query.sort == "name":
            conditions.append(col(VM.name) > name)
        else:
            key = SORTS[query.sort]
            conditions.append(or_(key > value, and_(key == value, col(VM.name) > name)))
    return conditions


def filter_condition(principal: Any, query: ListQuery) -> Any:
    """The WHERE clause of ``query`` for ``principal`` (for counts over the same rows)."""
    return and_(true(), *_conditions(principal, query))


def summarize(row: Any) -> dict[str, Any]:
    """The list entry of a :data:`_COLUMNS` row: identity, owner, size and last known state."""
    vm_id, name, uuid, owner, datastore, state, detail, spec_text, created, updated, host = row
    spec = orjson.loads(spec_text) if spec_text else {}
    cpus = spec.get("cpus")
    return {"id": vm_id, "name": name, "uuid": uuid, "owner": owner, "datastore": datastore, "state": state,
            "state_detail": detail, "template": spec.get("template"), "os_type": spec.get("os_type", "other"),
            "cpus": cpus.get("count", 1) if isinstance(cpus, dict) else int(cpus or 1),
            "memory": str(spec.get("memory", "")), "disks": len(spec.get("disks") or []),
            "description": spec.get("description", ""), "tags": list(spec.get("tags") or []),
            "created": created, "updated": updated, "host": host}


def list_page(connection: Connection, principal: Any, query: ListQuery) -> ListPage:
    """The page of VMs ``principal`` may see that ``query`` asks for, in one SQL query.

    :raises ValidationErrors: an unknown sort or a bad cursor (``sort``/``after``).
    """
    if query.sort not in SORTS:
        raise ValidationErrors([("sort", f"one of {', '.join(SORTS)}")])
    limit = max(1, min(query.limit, MAX_LIMIT))
    order = [col(VM.name)] if query.sort == "name" else [SORTS[query.sort], col(VM.name)]
    statement = select(*_COLUMNS).where(filter_condition(principal, query)).order_by(*order).limit(limit + 1)
    if query.offset:
        statement = statement.offset(query.offset)
    rows = connection.execute(statement).all()
    vms = [summarize(row) for row in rows[:limit]]
    return ListPage(vms, encode_cursor(query.sort, vms[-1]) if len(rows) > limit else None)


def page_json(page: ListPage) -> bytes:
    """``{"vms": [...], "next": ...}`` as the API sends it (times in UTC with ``Z``, as pydantic)."""
    return orjson.dumps({"vms": page.vms, "next": page.next}, option=orjson.OPT_UTC_Z)
