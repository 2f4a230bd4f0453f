"""Where a backup point lives on a target, and file names that are valid everywhere.

A target holds ``<vm uuid>/<point name>/`` per point: ``config/`` (spec, NVRAM, cloud-init
inputs), ``disks/<n>-<volume>.img`` and ``manifest.json`` (written last). Every name bHype
writes comes from a safe alphabet (``a-z 0-9 . _ -``, lower case, no trailing dot or space) so
a Windows target (NTFS, or FAT/exFAT) accepts it, and names are unique without case: original
names (a VM file called ``Seed:1.iso``) live in the manifest only.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

SAFE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
# Windows' reserved device names (naming-a-file, next-features.md §4): refused with any extension.
RESERVED = {"con", "prn", "aux", "nul", "conin$", "conout$", *(f"com{i}" for i in range(1, 10)),
            *(f"lpt{i}" for i in range(1, 10))}
MANIFEST = "manifest.json"


def point_name(created: datetime, point_id: int) -> str:
    """``20261207-174500-17`` (UTC): sorts by time, unique by id, safe everywhere."""
    return f"{created.strftime('%Y%m%d-%H%M%S')}-{point_id}"


def point_path(vm_uuid: str, name: str) -> str:
    """The point's directory relative to the target root."""
    return f"{vm_uuid}/{name}"


def is_safe(name: str) -> bool:
    """Whether ``name`` is valid on NTFS/FAT and POSIX alike (and not a device name)."""
    stem = name.split(".", 1)[0]
    return bool(SAFE.match(name)) and not name.endswith((".", " ")) and stem not in RESERVED


def safe_name(original: str, taken: set[str]) -> str:
    """A safe, case-insensitively unique file name for ``original`` (kept readable when it can
    be: ``disk0.img`` stays ``disk0.img``; ``Seed:1.ISO`` becomes ``seed-1.iso``; clashes get a
    short hash). ``taken`` (lower-case names already used) is updated."""
    lowered = original.lower()
    cleaned = re.sub(r"[^a-z0-9._-]+", "-", lowered).strip(".- ") or "file"
    if cleaned.split(".", 1)[0] in RESERVED or not cleaned[0].isalnum():
        cleaned = f"f-{cleaned}"
    cleaned = cleaned[:80]
    candidate = cleaned
    if candidate in taken or not is_safe(candidate):
        digest = hashlib.sha256(original.encode()).hexdigest()[:8]
        stem, dot, extension = cleaned.rpartition(".") if "." in cleaned[1:] else (cleaned, "", "")
        candidate = f"{stem[:60]}-{digest}{dot}{extension[:10]}"
    taken.add(candidate)
    return candidate
