"""Cloning a VM's dataset tree: linked (``zfs clone``, O(1)), full (send/receive) or promoted.

Every filesystem and volume of the source tree is cloned from one snapshot (a new recursive
snapshot, or an existing one: zfs-clone(8)); zvols keep ``volmode=dev``. The NVRAM copy and any
other file in the VM's dataset come along with the filesystem clone. The new tree gets its own
identity properties (``org.bhype:name``/``uuid``/``owner``); the VM record (new UUID, MACs, VNC
password, cloud-init identity) is made by :mod:`bhype_zfs.clone_record` when the source has one.
A linked clone keeps its origin snapshot alive: destroying the source is refused until the clone
is destroyed or promoted (:mod:`bhype_zfs.dependents`).
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import Conflict, Undo, ValidationErrors
from bhype_zfs import argv, snapshots
from bhype_zfs.names import check_dataset, check_snapshot_name
from bhype_zfs.replicate import copy_dataset
from bhype_zfs.tool import ZfsHost

MODES = ("linked", "full", "promote")


def _types(host: ZfsHost, dataset: str) -> dict[str, str]:
    """``{dataset: filesystem|volume}`` for the tree, root first."""
    text = host.text(argv.list_datasets(host.tools, ["name", "type"], [dataset], recursive=True))
    return dict(line.split("\t") for line in text.splitlines() if line)


def clone_tree(
    host: ZfsHost,
    source: str,
    target: str,
    *,
    snapshot: str | None = None,
    mode: str = "linked",
    identity: dict[str, str] | None = None,
    copy_timeout: float | None = None,
    context: Any = None,
    before_changes: Callable[[str | None], Any] | None = None,
) -> dict[str, Any]:
    """Clone dataset tree ``source`` to ``target`` (which must not exist).

    :param snapshot: an existing snapshot of ``source`` to clone from; ``None`` takes a new
        recursive one (``clone-<uuid>``), crash-consistent even while the VM runs.
    :param mode: ``linked`` (O(1), depends on the snapshot), ``full`` (independent copy via
        send/receive; the temporary snapshot is removed) or ``promote`` (linked, then
        ``zfs promote``: the source then depends on the clone, zfs-promote(8)).
    :param identity: user properties set on the new root (``org.bhype:name`` etc.).
    :param copy_timeout: seconds allowed per dataset copied in ``full`` mode.
    :param before_changes: called with the temporary snapshot's name (``None`` when cloning
        from an existing one) right before the first change: the task records its undo intent.
    :returns: ``source``, ``target``, ``snapshot``, ``mode`` and the created ``datasets``.
    :raises Conflict: ``target`` exists. :raises NotFound: no such snapshot.
    """
    check_dataset(source, "source")
    check_dataset(target, "target")
    if mode not in MODES:
        raise ValidationErrors([("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")])
    if target == source or target.startswith(source + "/"):
        raise ValidationErrors([("target", f"{target} lies inside the source {source}")])
    if host.exists(target):
        raise Conflict(f"{target} already exists")
    tools = host.tools
    taken = None
    if snapshot is None:
        taken = snapshot = f"clone-{uuidlib.uuid4().hex[:12]}"
        if before_changes is not None:
            before_changes(taken)
        snapshots.take(host, source, snapshot, properties={"org.bhype:clone-of": source})
    else:
        check_snapshot_name(snapshot, "snapshot")
        snapshots.find(host, source, snapshot)
    kinds = _types(host, source)
    have = {m.dataset for m in snapshots.find(host, source, snapshot).members}
    missing = [d for d in kinds if d not in have]
    if missing:
        raise Conflict(f"{', '.join(missing)} did not exist at @{snapshot}: take a new snapshot to clone from")
    if taken is None and before_changes is not None:
        before_changes(None)
    undo = Undo(context)
    created = []
    try:
        for index, (dataset, kind) in enumerate(kinds.items()):
            new = target + dataset[len(source):]
            props = {"volmode": "dev"} if kind == "volume" else {}
            if context is not None:
                context.progress(10 + 80 * index / len(kinds), f"{mode} copy of {dataset}@{snapshot}")
            if mode == "full":
                copy_dataset(host, f"{dataset}@{snapshot}", new, _share(context, index, len(kinds)),
                             properties=props, timeout=copy_timeout)
            else:
                host.run(argv.clone(tools, f"{dataset}@{snapshot}", new, props))
            created.append(new)
            undo.push(f"dataset {new}", _destroyer(host, new))
        if identity:
            host.run(argv.set_properties(tools, target, identity))
        if mode == "promote":
            for new in created:
                host.run(argv.promote(tools, new))
            undo.discard()  # the source now depends on the clone: never destroy it automatically
    except BaseException:
        undo.rollback()
        if taken is not None:
            _drop_snapshot(host, source, taken)
        raise
    undo.discard()
    if mode == "full" and taken is not None:
        _drop_snapshot(host, source, taken)
    return {"source": source, "target": target, "snapshot": snapshot, "mode": mode, "datasets": created}


def _share(context: Any, index: int, count: int) -> Callable[[int, str], Any] | None:
    """Progress of copying dataset ``index`` of ``count``, mapped into the task's 10-90 %."""
    if context is None:
        return None
    return lambda percent, message: context.progress(10 + 80 * (index + percent / 100) / count, message)


def _drop_snapshot(host: ZfsHost, dataset: str, name: str) -> None:
    host.run(argv.destroy_snapshots(host.tools, dataset, [name], recursive=True))


def _destroyer(host: ZfsHost, dataset: str) -> Callable[[], Any]:
    return lambda: host.run(argv.destroy(host.tools, dataset, recursive=True))
