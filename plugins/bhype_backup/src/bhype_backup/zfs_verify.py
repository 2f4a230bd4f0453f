"""``backup.verify`` of a point on a ZFS target: every checksum of the manifest re-read there.

The manifest must hash to the ``manifest_sha256`` the point row recorded; then each zvol disk of
the point's snapshot and each file of the VM's dataset at the snapshot is read on the target
(:class:`~bhype_backup.zfs_read.PointReader`: temporary clones, digests computed there) and
compared with the manifest's sha256. The result is the same list of problems as for rsync
targets (``verify.check_point``), so a mismatch is the same failed task, point state and
``backup.verify_mismatch`` event.
"""

from __future__ import annotations

import hashlib
from typing import Any

from bhype_backup.manifest import parse_manifest
from bhype_backup.zfs_read import PointReader
from bhype_backup.zfs_target import ZfsTarget
from bhype_core.plugin_api import BhypeError


def check_zfs_point(context: Any, point: Any, target: Any) -> list[dict[str, Any]]:
    """Every problem found re-reading ``point`` on ZFS target ``target`` (empty: all match)."""
    remote = ZfsTarget(context.runtime, target)
    try:
        data = remote.read_manifest(point.path)
    except BhypeError as exc:
        return [{"file": "manifest.json", "problem": f"cannot be read: {exc.message}"}]
    if point.manifest_sha256 and hashlib.sha256(data).hexdigest() != point.manifest_sha256:
        return [{"file": "manifest.json", "problem": "the manifest is not the one written with this backup"}]
    manifest = parse_manifest(data)
    reader = PointReader(remote, point.path)
    total = max(sum(entry.size for entry in manifest.files), 1)
    done = 0
    problems: list[dict[str, Any]] = []
    files = [e for e in manifest.files if e.stored.startswith("files/")]
    zvols = [e for e in manifest.files if not e.stored.startswith("files/")]
    for entry in zvols:
        context.check_cancelled()
        context.progress(100.0 * done / total, f"checking {entry.stored}")
        try:
            with reader.device(entry.stored) as device:
                found = reader.sha256(device)
        except (BhypeError, ValueError) as exc:
            problems.append({"file": entry.stored, "problem": f"cannot be read: {exc}"})
        else:
            if found != entry.sha256:
                problems.append({"file": entry.stored, "problem": f"sha256 {found} differs from the manifest's"})
        done += entry.size
    if files:
        try:
            with reader.files() as mountpoint:
                for entry in files:
                    context.check_cancelled()
                    context.progress(100.0 * done / total, f"checking {entry.stored}")
                    try:
                        found = reader.sha256(f"{mountpoint}/{entry.original}")
                    except (BhypeError, ValueError) as exc:
                        problems.append({"file": entry.stored, "problem": f"cannot be read: {exc}"})
                    else:
                        if found != entry.sha256:
                            problems.append({"file": entry.stored,
                                             "problem": f"sha256 {found} differs from the manifest's"})
                    done += entry.size
        except BhypeError as exc:
            problems += [{"file": e.stored, "problem": f"cannot be read: {exc.message}"} for e in files
                         if not any(p["file"] == e.stored for p in problems)]
    return problems
