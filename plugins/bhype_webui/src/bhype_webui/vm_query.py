"""VM lists for the pages, done by the database: one page of VMs (filtered, sorted, counted),
counts by state, and what changed since a moment — all under the core's visibility rule
(``bhype_core.vm.records``: operators see their own VMs, admins all)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, true
from sqlmodel import Session, col

from bhype_core.plugin_api import VM, ListQuery, VMSummary, is_admin, list_page

SORTS = {"name": col(VM.name), "state": col(VM.state), "owner": col(VM.owner), "updated": col(VM.updated)}
MAX_QUERY = 63  # a VM name is at most 63 characters: a longer search cannot match


@dataclass(frozen=True)
class VmFilter:
    """What the VM list shows: a name search, a state, an owner (admins), a sort and a page."""

    q: str = ""
    state: str = ""
    owner: str = ""
    sort: str = "name"
    page: int = 1
    per_page: int = 50
    host: str = ""  # a group host (issue 22)

    @classmethod
    def from_query(cls, params: Any, per_page: int) -> VmFilter:
        """Read the filter from query parameters, correcting what makes no sense rather than
        failing (a bookmarked list must always open)."""
        try:
            page = max(1, int(params.get("page") or 1))
        except ValueError:
            page = 1
        sort = params.get("sort") or "name"
        return cls(
            q=(params.get("q") or "").strip()[:MAX_QUERY],
            state=(params.get("state") or "").strip()[:16],
            owner=(params.get("owner") or "").strip()[:255],
            sort=sort if sort in SORTS else "name",
            page=page,
            per_page=per_page,
            host=(params.get("host") or "").strip()[:63],
        )

    def query_string(self, **changes: Any) -> str:
        """The filter as a URL query (with ``changes``), for page and sort links."""
        from urllib.parse import urlencode

        values = {"q": self.q, "state": self.state, "owner": self.owner, "host": self.host, "sort": self.sort,
                  "page": self.page}
        values.update(changes)
        return urlencode({k: v for k, v in values.items() if v not in ("", None) and not (k == "page" and v == 1)
                          and not (k == "sort" and v == "name")})


@dataclass
class VmPage:
    """One page of the VM list and what the pager needs."""

    vms: list[VMSummary]
    total: int
    filter: VmFilter
    states: dict[str, int] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.filter.per_page))


def _visible(principal: Any) -> list[Any]:
    # The same rule as bhype_core.vm.records.list_vms, as a condition for any query.
    return [] if is_admin(principal) else [col(VM.owner) == getattr(principal, "name", None)]


def _conditions(principal: Any, flt: VmFilter) -> list[Any]:
    conditions = _visible(principal)
    if flt.q:
        conditions.append(col(VM.name).contains(flt.q, autoescape=True))
    if flt.state:
        conditions.append(col(VM.state) == flt.state)
    if flt.owner and is_admin(principal):
        conditions.append(col(VM.owner) == flt.owner)
    if flt.host:
        conditions.append(col(VM.host) == flt.host)
    return conditions


def vm_page(db: Session, principal: Any, flt: VmFilter) -> VmPage:
    """The VMs of ``flt``'s page that ``principal`` may see, with the total matching count."""
    where = and_(true(), *_conditions(principal, flt))
    total = int(db.execute(select(func.count()).select_from(VM).where(where)).scalar() or 0)
    pages = max(1, math.ceil(total / flt.per_page))
    if flt.page > pages:
        flt = VmFilter(flt.q, flt.state, flt.owner, flt.sort, pages, flt.per_page, flt.host)
    # The API's and CLI's paginated list (one query, summaries from the stored spec), by page number.
    query = ListQuery(owner=flt.owner if is_admin(principal) else None, state=flt.state, search=flt.q,
                      sort=flt.sort, limit=flt.per_page, offset=(flt.page - 1) * flt.per_page, host=flt.host or None)
    page = list_page(db.connection(), principal, query)
    return VmPage(vms=[VMSummary(**vm) for vm in page.vms], total=total, filter=flt)


def state_counts(db: Session, principal: Any) -> dict[str, int]:
    """How many visible VMs are in each state."""
    query = select(col(VM.state), func.count()).where(and_(true(), *_visible(principal))).group_by(col(VM.state))
    return {state: int(count) for state, count in db.execute(query).all()}


def owners(db: Session, principal: Any) -> list[str]:
    """Every VM owner (admins filter by owner); an operator gets only themself."""
    if not is_admin(principal):
        return [principal.name]
    return [name for (name,) in db.execute(select(col(VM.owner)).distinct().order_by(col(VM.owner))).all()]


def hosts(db: Session) -> list[str]:
    """The group hosts that hold VMs (the host filter offers them; one host shows no column)."""
    return [name for (name,) in db.execute(select(col(VM.host)).distinct().order_by(col(VM.host))).all() if name]


def latest_change(db: Session, principal: Any) -> datetime | None:
    """When a visible VM last changed (a live stream starts from there)."""
    return db.execute(select(func.max(VM.updated)).where(and_(true(), *_visible(principal)))).scalar()


def changes_since(db: Session, principal: Any, since: datetime | None, name: str | None = None) -> list[dict[str, Any]]:
    """Visible VMs (or VM ``name``) whose row changed after ``since``, oldest change first."""
    conditions = _visible(principal)
    if since is not None:
        conditions.append(col(VM.updated) > since)
    if name:
        conditions.append(col(VM.name) == name)
    return _state_rows(db, conditions)


def on_hosts(db: Session, principal: Any, hosts: set[str], name: str | None = None) -> list[dict[str, Any]]:
    """Visible VMs (or VM ``name``) living on one of ``hosts`` (whose reachability changed)."""
    conditions = [*_visible(principal), col(VM.host).in_(sorted(hosts))]
    if name:
        conditions.append(col(VM.name) == name)
    return _state_rows(db, conditions)


def _state_rows(db: Session, conditions: list[Any]) -> list[dict[str, Any]]:
    """What the stream sends of each VM matching ``conditions``, oldest change first."""
    query = (select(col(VM.id), col(VM.name), col(VM.state), col(VM.state_detail), col(VM.updated), col(VM.host))
             .where(and_(true(), *conditions)).order_by(col(VM.updated)).limit(1000))
    return [{"id": vm_id, "name": vm_name, "state": state, "state_detail": detail, "updated": updated, "host": host}
            for vm_id, vm_name, state, detail, updated, host in db.execute(query).all()]


def visible_count(db: Session, principal: Any) -> int:
    """How many VMs ``principal`` may see."""
    return int(db.execute(select(func.count()).select_from(VM).where(and_(true(), *_visible(principal)))).scalar() or 0)
