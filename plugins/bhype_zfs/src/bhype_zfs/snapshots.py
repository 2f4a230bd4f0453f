"""Snapshots of a dataset tree (a VM: its filesystem and every zvol): take, list, roll back, destroy, hold.

A VM snapshot is one ``zfs snapshot -r`` (zfs-snapshot(8)): every disk at the same instant.
Rollback has no recursive form (zfs-rollback(8), reference 6.5), so it is done per dataset,
after checking every member first: either all roll back or nothing changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from bhype_core.plugin_api import Conflict, NotFound, ValidationErrors
from bhype_zfs import argv
from bhype_zfs.dependents import Dependents, explain, find_dependents, refuse_if_dependents
from bhype_zfs.names import check_snapshot_name, check_tag
from bhype_zfs.parse import SNAPSHOT_COLUMNS, Hold, SnapshotInfo, parse_holds, parse_snapshots
from bhype_zfs.tool import ZfsHost


@dataclass
class SnapshotGroup:
    """One snapshot name across a tree: sizes summed over its members (``used`` is what
    destroying it would free, roughly; ``referenced`` is the root dataset's)."""

    name: str
    created: datetime
    txg: int
    used: int = 0
    referenced: int = 0
    holds: int = 0
    members: list[SnapshotInfo] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "created": self.created.isoformat(),
            "used": self.used,
            "referenced": self.referenced,
            "holds": self.holds,
            "datasets": [m.dataset for m in self.members],
        }


def default_name(prefix: str = "manual", now: datetime | None = None) -> str:
    """``manual-20250131T140000Z``: a UTC time stamp that sorts by time."""
    return f"{prefix}-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%SZ')}"


def group(snapshots: list[SnapshotInfo], root: str) -> list[SnapshotGroup]:
    """Group snapshot rows of a tree by name, oldest first (by the root's transaction group)."""
    groups: dict[str, SnapshotGroup] = {}
    for snap in snapshots:
        entry = groups.get(snap.name)
        if entry is None:
            entry = groups[snap.name] = SnapshotGroup(snap.name, snap.created, snap.txg)
        entry.members.append(snap)
        entry.used += snap.used
        entry.holds += snap.holds
        if snap.dataset == root:
            entry.referenced, entry.created, entry.txg = snap.referenced, snap.created, snap.txg
    return sorted(groups.values(), key=lambda g: (g.txg, g.created, g.name))


def list_snapshots(host: ZfsHost, dataset: str, recursive: bool = True) -> list[SnapshotGroup]:
    """The tree's snapshots grouped by name, oldest first (zfs-list(8) ``-t snapshot``)."""
    command = argv.list_datasets(host.tools, list(SNAPSHOT_COLUMNS), [dataset], types=("snapshot",),
                                 depth=None if recursive else 1, recursive=recursive, sort="createtxg")
    return group(parse_snapshots(host.text(command)), dataset)


def find(host: ZfsHost, dataset: str, name: str) -> SnapshotGroup:
    """The group called ``name`` on the tree (only those snapshots are listed, not all).

    :raises NotFound: ``dataset`` or ``dataset@name`` does not exist.
    """
    check_snapshot_name(name, "name")
    tree = members(host, dataset)
    command = argv.list_datasets(host.tools, list(SNAPSHOT_COLUMNS), [f"{m}@{name}" for m in tree],
                                 types=("snapshot",))
    # zfs list prints the snapshots that exist and exits 1 naming those that do not (zfs-list(8)).
    found = group(parse_snapshots(host.probe(command).stdout), dataset)
    if not found or not any(m.dataset == dataset for m in found[0].members):
        raise NotFound(f"snapshot {dataset}@{name} does not exist")
    return found[0]


def take(host: ZfsHost, dataset: str, name: str, *, recursive: bool = True,
         properties: dict[str, str] | None = None) -> SnapshotGroup:
    """Snapshot ``dataset`` (and with ``recursive`` every descendant, atomically) as ``@name``.

    :raises Conflict: a snapshot of that name exists.
    """
    check_snapshot_name(name, "name")
    host.run(argv.snapshot(host.tools, [f"{dataset}@{name}"], recursive=recursive, properties=properties))
    return find(host, dataset, name)


def members(host: ZfsHost, dataset: str) -> list[str]:
    """The tree's filesystems and volumes, the root first."""
    text = host.text(argv.list_datasets(host.tools, ["name"], [dataset], recursive=True))
    return text.split()


def rollback(host: ZfsHost, dataset: str, name: str, *, destroy_newer: bool = False) -> dict:
    """Roll every dataset of the tree back to ``@name``. Stop the VM first (callers check).

    :param destroy_newer: also destroy the snapshots taken after ``@name`` (``-r``); without
        it, newer snapshots make the rollback refuse.
    :raises NotFound: no such snapshot.
    :raises Conflict: newer snapshots exist (without ``destroy_newer``), a member lacks the
        snapshot (a disk added later), or a newer snapshot is held or cloned. Nothing changed.
    """
    target = find(host, dataset, name)
    tree = members(host, dataset)
    have = {m.dataset for m in target.members}
    missing = [d for d in tree if d not in have]
    if missing:
        raise Conflict(
            f"cannot roll back {dataset} to @{name}: {', '.join(missing)} did not exist when it was taken "
            "(a disk added later); remove it or roll back the other datasets one by one"
        )
    newer = [g for g in list_snapshots(host, dataset) if g.txg > target.txg]
    if newer and not destroy_newer:
        raise Conflict(
            f"cannot roll back {dataset} to @{name}: newer snapshots exist ({', '.join(g.name for g in newer)}); "
            "roll back with destroy_newer to destroy them, or pick the newest snapshot"
        )
    problems = [find_dependents(host, dataset, g.name) for g in newer]
    blocking = [p for p in problems if p]
    if blocking:
        merged_clones = {k: v for p in blocking for k, v in p.clones.items()}
        held = [h for p in blocking for h in p.held]
        raise Conflict(explain(Dependents(merged_clones, held), f"the snapshots newer than @{name}")
                       + f" (needed to roll {dataset} back)")
    for member in tree:
        host.run(argv.rollback(host.tools, f"{member}@{name}", destroy_newer=bool(newer)))
    return {"dataset": dataset, "snapshot": name, "datasets": tree, "destroyed": [g.name for g in newer]}


def destroy(host: ZfsHost, dataset: str, name: str, *, recursive: bool = True) -> list[str]:
    """Destroy ``@name`` on the tree (``zfs destroy -r ds@name``).

    :raises Conflict: it is held or a clone depends on it (nothing destroyed; the message
        says what to do).
    """
    entry = find(host, dataset, name)
    refuse_if_dependents(host, dataset, f"snapshot {dataset}@{name}", snapshot=name)
    host.run(argv.destroy_snapshots(host.tools, dataset, [name], recursive=recursive))
    return [m.full_name for m in entry.members]


def hold(host: ZfsHost, dataset: str, name: str, tag: str, *, recursive: bool = True) -> list[Hold]:
    """Protect ``@name`` on the tree with hold ``tag`` (zfs-hold(8)); returns its holds."""
    find(host, dataset, name)
    host.run(argv.hold(host.tools, check_tag(tag), [f"{dataset}@{name}"], recursive=recursive))
    return holds(host, dataset, name)


def release(host: ZfsHost, dataset: str, name: str, tag: str, *, recursive: bool = True) -> list[Hold]:
    """Drop hold ``tag`` from ``@name`` (zfs-release(8)); returns the remaining holds.

    :raises NotFound: no such hold on the snapshot.
    """
    current = holds(host, dataset, name)
    if not any(h.tag == tag for h in current):
        raise NotFound(f"snapshot {dataset}@{name} has no hold {tag!r}")
    host.run(argv.release(host.tools, check_tag(tag), [f"{dataset}@{name}"], recursive=recursive))
    return holds(host, dataset, name)


def holds(host: ZfsHost, dataset: str, name: str) -> list[Hold]:
    """Every hold on ``@name`` in the tree (zfs-holds(8) ``-r``)."""
    check_snapshot_name(name, "name")
    return parse_holds(host.text(argv.holds(host.tools, [f"{dataset}@{name}"], recursive=True)))


def require_name(name: object) -> str:
    """A user-given snapshot name, checked (``name``)."""
    if name is None:
        raise ValidationErrors([("name", "a snapshot name is needed")])
    return check_snapshot_name(name, "name")
