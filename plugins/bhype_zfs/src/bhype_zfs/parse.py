"""Pure parsers for zpool/zfs machine output (``-H``: TAB-separated, no header; ``-p``: exact numbers).

Formats (reference 6.1; zfs-list(8), zfs-get(8), zfs-holds(8), zpool-list(8), zpool-status(8),
zfs-send(8)): one row per line, fields separated by exactly one TAB, ``-`` for an absent value;
with ``-p`` sizes are bytes, ``creation`` is seconds since the epoch, ``cap`` has no ``%`` and
``dedup`` no ``x``. Parsers refuse rows with the wrong number of fields instead of guessing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime


class ParseError(ValueError):
    """Output that does not have the documented shape (names the command and the line)."""


def parse_rows(text: str, columns: Sequence[str], what: str = "output") -> list[dict[str, str | None]]:
    """Split ``-H`` output into dicts keyed by ``columns``; ``-`` becomes ``None``.

    :raises ParseError: a row has a different number of fields than ``columns``.
    """
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(columns):
            raise ParseError(f"{what}: expected {len(columns)} TAB-separated fields ({', '.join(columns)}): {line!r}")
        rows.append({name: (None if value == "-" else value) for name, value in zip(columns, fields, strict=True)})
    return rows


def to_int(value: str | None) -> int | None:
    """An exact ``-p`` number (``None`` stays ``None``)."""
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ParseError(f"expected an exact number (-p), got {value!r}") from None


def to_time(value: str | None) -> datetime | None:
    """``creation`` with ``-p``: seconds since the epoch, as an aware UTC datetime."""
    seconds = to_int(value)
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


# ------------------------------------------------------------------------------------------
# zpool list / zpool status


@dataclass(frozen=True)
class PoolInfo:
    """One row of ``zpool list -Hp -o name,size,alloc,free,frag,cap,dedup,health``."""

    name: str
    size: int
    allocated: int
    free: int
    fragmentation: int | None
    capacity: int
    dedup: float
    health: str


def parse_zpool_list(text: str) -> list[PoolInfo]:
    """Parse ``zpool list -Hp -o name,size,alloc,free,frag,cap,dedup,health`` (zpool-list(8)).
    ``frag`` is ``-`` on pools without spacemap histograms."""
    pools = []
    for row in parse_rows(text, ("name", "size", "alloc", "free", "frag", "cap", "dedup", "health"), "zpool list"):
        pools.append(PoolInfo(
            name=row["name"] or "",
            size=to_int(row["size"]) or 0,
            allocated=to_int(row["alloc"]) or 0,
            free=to_int(row["free"]) or 0,
            fragmentation=to_int(row["frag"]),
            capacity=to_int(row["cap"]) or 0,
            dedup=float(row["dedup"] or 1),
            health=row["health"] or "UNKNOWN",
        ))
    return pools


@dataclass(frozen=True)
class VdevRow:
    """One line of the ``config:`` table: ``depth`` 0 is the pool (or a ``logs``/``cache``/
    ``spares`` heading), 1 a top-level vdev, 2 its disks."""

    name: str
    depth: int
    state: str | None
    read: int | None = None
    write: int | None = None
    checksum: int | None = None
    note: str = ""


@dataclass(frozen=True)
class PoolStatus:
    """What ``zpool status -P -p <pool>`` says about one pool."""

    pool: str
    state: str
    status: str = ""
    action: str = ""
    errors: str = ""
    vdevs: list[VdevRow] = field(default_factory=list)

    @property
    def devices(self) -> list[VdevRow]:
        """The leaf devices (disks or partitions; full paths with ``-P``): rows below the pool
        that no deeper row follows."""
        leaves = []
        for index, row in enumerate(self.vdevs):
            following = self.vdevs[index + 1] if index + 1 < len(self.vdevs) else None
            if row.depth > 0 and row.state is not None and (following is None or following.depth <= row.depth):
                leaves.append(row)
        return leaves


_SECTION = re.compile(r"^\s*(pool|state|status|action|see|scan|config|errors|remove|checkpoint):\s?(.*)$")


def parse_zpool_status(text: str) -> PoolStatus:
    """Parse ``zpool status -P -p <pool>`` (zpool-status(8)): the ``state:``, ``status:``,
    ``action:`` and ``errors:`` fields and the vdev table under ``config:`` (names indented two
    spaces per level under a TAB, then STATE READ WRITE CKSUM and an optional note).

    :raises ParseError: no ``pool:`` or ``state:`` line.
    """
    fields: dict[str, str] = {}
    vdevs: list[VdevRow] = []
    current = None
    in_table = False
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match and not (in_table and line.startswith("\t")):
            current, value = match.group(1), match.group(2).strip()
            fields[current] = value
            in_table = False
            continue
        if current == "config":
            if not line.strip():
                if in_table and vdevs:
                    current = None
                continue
            body = line[1:] if line.startswith("\t") else line.lstrip()
            if body.split()[:2] == ["NAME", "STATE"]:
                in_table = True
                continue
            if in_table:
                vdevs.append(_vdev_row(body))
            continue
        if current in ("status", "action", "scan", "errors") and line.startswith("\t"):
            fields[current] = (fields[current] + " " + line.strip()).strip()
    if "pool" not in fields or "state" not in fields:
        raise ParseError(f"zpool status: no 'pool:'/'state:' line in {text[:200]!r}")
    return PoolStatus(
        pool=fields["pool"],
        state=fields["state"],
        status=fields.get("status", ""),
        action=fields.get("action", ""),
        errors=fields.get("errors", ""),
        vdevs=vdevs,
    )


def _vdev_row(body: str) -> VdevRow:
    depth = (len(body) - len(body.lstrip(" "))) // 2
    words = body.split()
    name = words[0]
    if len(words) >= 5 and all(w.isdigit() for w in words[2:5]):
        return VdevRow(name, depth, words[1], int(words[2]), int(words[3]), int(words[4]), " ".join(words[5:]))
    # Headings (logs, cache, spares) have no counters; spares show only a state (AVAIL/INUSE).
    return VdevRow(name, depth, words[1] if len(words) > 1 else None, note=" ".join(words[2:]))


# ------------------------------------------------------------------------------------------
# zfs list / get / holds / send


SNAPSHOT_COLUMNS = ("name", "used", "refer", "creation", "userrefs", "createtxg")


@dataclass(frozen=True)
class SnapshotInfo:
    """One row of ``zfs list -Hp -t snapshot -o name,used,refer,creation,userrefs,createtxg``.

    ``txg`` orders snapshots exactly (``creation`` has one-second resolution).
    """

    dataset: str
    name: str
    used: int
    referenced: int
    created: datetime
    holds: int
    txg: int = 0

    @property
    def full_name(self) -> str:
        return f"{self.dataset}@{self.name}"


def parse_snapshots(text: str) -> list[SnapshotInfo]:
    """Parse ``zfs list -Hp -t snapshot -o name,used,refer,creation,userrefs,createtxg`` (zfs-list(8))."""
    snapshots = []
    for row in parse_rows(text, SNAPSHOT_COLUMNS, "zfs list -t snapshot"):
        dataset, _, name = (row["name"] or "").partition("@")
        if not name:
            raise ParseError(f"zfs list -t snapshot: {row['name']!r} is not dataset@snapshot")
        created = to_time(row["creation"])
        if created is None:
            raise ParseError(f"zfs list -t snapshot: no creation time for {row['name']!r}")
        snapshots.append(SnapshotInfo(
            dataset=dataset,
            name=name,
            used=to_int(row["used"]) or 0,
            referenced=to_int(row["refer"]) or 0,
            created=created,
            holds=to_int(row["userrefs"]) or 0,
            txg=to_int(row["createtxg"]) or 0,
        ))
    return snapshots


@dataclass(frozen=True)
class PropertyValue:
    """A property as ``zfs get -Hp -o name,property,value,source`` reports it."""

    value: str | None
    source: str

    @property
    def local(self) -> bool:
        return self.source in ("local", "received")


def parse_zfs_get(text: str) -> dict[str, dict[str, PropertyValue]]:
    """Parse ``zfs get -Hp -o name,property,value,source`` into ``{dataset: {property: value}}``.

    An unset user property prints ``-`` with source ``-``; it is left out. Inherited values
    keep their source (``inherited from tank/x``), zfsprops(7).
    """
    result: dict[str, dict[str, PropertyValue]] = {}
    for row in parse_rows(text, ("name", "property", "value", "source"), "zfs get"):
        if row["value"] is None and row["source"] is None:
            continue
        result.setdefault(row["name"] or "", {})[row["property"] or ""] = PropertyValue(
            row["value"], row["source"] or "-"
        )
    return result


@dataclass(frozen=True)
class Hold:
    """One user hold: ``zfs holds -Hp`` prints ``snapshot<TAB>tag<TAB>epoch`` (zfs-holds(8))."""

    snapshot: str
    tag: str
    created: datetime


def parse_holds(text: str) -> list[Hold]:
    """Parse ``zfs holds -Hp [-r] ds@snap...``."""
    holds = []
    for row in parse_rows(text, ("snapshot", "tag", "time"), "zfs holds"):
        created = to_time(row["time"])
        holds.append(Hold(row["snapshot"] or "", row["tag"] or "", created or datetime.fromtimestamp(0, UTC)))
    return holds


def parse_send_estimate(text: str) -> int:
    """The total of ``zfs send -n -v -P``: the ``size<TAB>bytes`` line (zfs-send(8), reference 6.7).

    :raises ParseError: no ``size`` line.
    """
    for line in text.splitlines():
        parts = line.split("\t")
        if parts[0] == "size" and len(parts) == 2:
            return to_int(parts[1]) or 0
    raise ParseError(f"zfs send -nvP: no 'size' line in {text[:200]!r}")


_CLOCK = re.compile(r"\d\d:\d\d:\d\d\Z")


def parse_send_progress(line: str) -> int | None:
    """Bytes sent so far from one ``zfs send -v -P`` progress line on stderr, else ``None``.

    Every second the sender prints ``HH:MM:SS<TAB>bytes<TAB>dataset@snapshot`` (libzfs
    ``send_progress_thread``; the header lines ``full``/``incremental``/``size`` are not
    progress). Bytes count from the start of the current snapshot's stream.
    """
    parts = line.strip().split("\t")
    if len(parts) >= 3 and _CLOCK.match(parts[0]) and parts[1].isdigit():
        return int(parts[1])
    return None


def parse_destroy_dry_run(text: str) -> list[str]:
    """Dataset names a ``zfs destroy -n -v -p`` would destroy (``destroy<TAB>name`` lines)."""
    return [line.split("\t")[1] for line in text.splitlines() if line.startswith("destroy\t")]
