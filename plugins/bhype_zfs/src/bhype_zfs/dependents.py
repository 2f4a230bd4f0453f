"""What would stop a dataset or snapshot from being destroyed: clones that depend on it, and holds.

zfs-destroy(8) refuses a snapshot with dependent clones (unless ``-R``, which would destroy
the clones too: bHype never uses it) and a held snapshot ("dataset is busy"). bHype checks
first, so the whole tree is left untouched and the answer explains what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from bhype_core.plugin_api import Conflict
from bhype_zfs import argv
from bhype_zfs.parse import SNAPSHOT_COLUMNS, parse_rows, parse_snapshots
from bhype_zfs.tool import ZfsHost


@dataclass(frozen=True)
class Dependents:
    """Clones outside a tree whose origin is inside it (``origin → [clones]``) and held snapshots."""

    clones: dict[str, list[str]]
    held: list[str]

    def __bool__(self) -> bool:
        return bool(self.clones or self.held)


def inside(name: str, tree: str) -> bool:
    """Whether dataset or snapshot ``name`` lies in ``tree`` (the dataset itself or below it)."""
    dataset = name.split("@")[0]
    return dataset == tree or dataset.startswith(tree + "/")


def clones_of(text: str, tree: str, snapshot: str | None = None) -> dict[str, list[str]]:
    """From ``zfs list -Hp -o name,origin`` rows: clones outside ``tree`` whose origin lies in
    it (only origins named ``@snapshot`` when given)."""
    found: dict[str, list[str]] = {}
    for row in parse_rows(text, ("name", "origin"), "zfs list -o name,origin"):
        origin, name = row["origin"], row["name"] or ""
        if origin is None or inside(name, tree) or not inside(origin, tree):
            continue
        if snapshot is not None and origin.split("@")[1] != snapshot:
            continue
        found.setdefault(origin, []).append(name)
    return found


def find_dependents(host: ZfsHost, tree: str, snapshot: str | None = None) -> Dependents:
    """Clones (anywhere in the pool) of snapshots in ``tree``, and held snapshots in ``tree``
    (only those named ``snapshot`` when given)."""
    tools = host.tools
    pool = tree.split("/")[0]
    listing = host.text(argv.list_datasets(tools, ["name", "origin"], [pool], recursive=True))
    clones = clones_of(listing, tree, snapshot)
    snaps = host.text(argv.list_datasets(tools, list(SNAPSHOT_COLUMNS), [tree], types=("snapshot",), recursive=True))
    held = [s.full_name for s in parse_snapshots(snaps) if s.holds and (snapshot is None or s.name == snapshot)]
    return Dependents(clones, held)


def explain(dependents: Dependents, what: str) -> str:
    """One message saying why ``what`` cannot be destroyed and how to proceed."""
    parts = []
    for origin, clones in sorted(dependents.clones.items()):
        parts.append(
            f"snapshot {origin} is the origin of clone(s) {', '.join(sorted(clones))}: destroy those clones "
            "first, or run `zfs promote` on them (zfs-promote(8)) so they stop depending on it"
        )
    if dependents.held:
        parts.append(
            f"snapshot(s) {', '.join(dependents.held)} are held (zfs-hold(8)), e.g. for a backup: "
            "release the hold first"
        )
    return f"cannot destroy {what}: " + "; ".join(parts)


def refuse_if_dependents(host: ZfsHost, tree: str, what: str, snapshot: str | None = None) -> None:
    """:raises Conflict: something depends on ``tree`` (or its ``@snapshot``); nothing is destroyed."""
    dependents = find_dependents(host, tree, snapshot)
    if dependents:
        raise Conflict(explain(dependents, what))
