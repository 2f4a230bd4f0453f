"""Suspend to disk: the saved state of a suspended VM in its private directory, and its record.

A driver that declares :attr:`~bhype_core.drivers.capabilities.Capability.SUSPEND` saves a
running guest's memory and device state to ``<vm_dir>/saved-state`` (bhyve adds
``saved-state.kern`` and, on current releases, ``saved-state.meta``: bhyvectl(8)
``--suspend``; QEMU writes one migration stream), the hypervisor exits, and the driver records
``suspended.json`` beside it. The VM's state is then ``stopped`` (no process runs) and its
status carries ``suspended``; the next start resumes from the files (bhyve(8) ``-r``, QEMU
``-incoming``) instead of booting, and removes them once the guest runs again.

Every file here is 0600 and none is opened through a symlink (:mod:`bhype_core.safe_files`):
guest memory may hold secrets, and the VM directory is the worker's.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bhype_core.errors import BhypeError
from bhype_core.safe_files import UnsafeFile, chmod_regular, read_bytes, write_atomic

STATE_FILE = "saved-state"  # bhyve: + .kern, + .meta (bhyvectl(8), bhyve(8) -r)
RECORD_FILE = "suspended.json"
SUFFIXES = ("", ".kern", ".meta")  # every file a bhyve snapshot may have; QEMU writes the first


class SuspendFailed(BhypeError):
    """Saving the guest's state failed; the guest still runs (the message says why)."""

    code = "suspend_failed"
    http_status = 409


class ResumeRefused(BhypeError):
    """A saved state cannot be resumed as things are (its devices changed, a file is missing):
    start with ``discard_saved_state`` to boot the VM afresh instead."""

    code = "resume_refused"
    http_status = 409


@dataclass(frozen=True)
class SavedState:
    """What a suspend left in the VM directory.

    :param path: the state file given to the hypervisor (``<vm_dir>/saved-state``).
    :param files: every file of the state (bhyve: with ``.kern``/``.meta``), all 0600.
    :param driver: the driver that wrote it (another one cannot resume it).
    :param argv: the hypervisor's command line when it was saved: a resume must present the
        identical device list (bhyve(8) ``-r``; QEMU migration), so a changed one is refused.
    :param at: when it was saved (ISO 8601, UTC). :param size: bytes in ``files``.
    """

    path: str
    files: list[str]
    driver: str
    argv: list[str]
    at: str
    size: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def state_path(vm_dir: Path) -> Path:
    """Where a suspend of the VM in ``vm_dir`` saves its state."""
    return Path(vm_dir) / STATE_FILE


def candidate_files(path: Path) -> list[Path]:
    """The files a state saved at ``path`` may consist of."""
    return [path.with_name(path.name + suffix) for suffix in SUFFIXES]


def clear_files(path: Path) -> None:
    """Remove what an earlier, failed save left at ``path`` (unlink never follows a symlink).

    :raises SuspendFailed: something that is not a file is in the way (a directory): left alone.
    """
    for candidate in candidate_files(path):
        try:
            candidate.unlink(missing_ok=True)
        except (IsADirectoryError, PermissionError) as exc:  # Linux EISDIR, FreeBSD EPERM for a directory
            raise SuspendFailed(f"cannot save the guest: {candidate} is in the way ({exc.strerror}): "
                                "left alone") from None


def seal(path: Path) -> tuple[list[str], int]:
    """Make every file of the state at ``path`` 0600 through a descriptor (a symlink there is
    refused, never followed) and return them with their total size.

    :raises SuspendFailed: the main file is missing, or a file is not a regular file.
    """
    files, size = [], 0
    for candidate in candidate_files(path):
        if not os.path.lexists(candidate):
            continue
        try:
            chmod_regular(candidate, 0o600)
        except UnsafeFile as exc:
            raise SuspendFailed(f"the saved state is unsafe: {exc.message}") from None
        files.append(str(candidate))
        size += candidate.lstat().st_size
    if str(path) not in files:
        raise SuspendFailed(f"the hypervisor wrote no state file at {path}")
    return files, size


def record(vm_dir: Path, saved: SavedState) -> None:
    """Write ``suspended.json`` (atomically, 0600)."""
    data = json.dumps(saved.to_dict(), indent=1, sort_keys=True).encode()
    write_atomic(Path(vm_dir) / RECORD_FILE, data + b"\n", mode=0o600)


def read(vm_dir: Path) -> SavedState | None:
    """The VM's saved state, or ``None`` when it is not suspended (or the record is unreadable:
    a record that is not a regular file is ignored, never followed)."""
    try:
        data = json.loads(read_bytes(Path(vm_dir) / RECORD_FILE, 1 << 20))
        return SavedState(**data)
    except (OSError, ValueError, TypeError, UnsafeFile):
        return None


def discard(vm_dir: Path, saved: SavedState | None = None) -> None:
    """Remove a saved state's files and its record (after a resume, or when a fresh boot was
    asked for)."""
    saved = saved or read(vm_dir)
    if saved is not None:
        for name in saved.files:
            Path(name).unlink(missing_ok=True)
    (Path(vm_dir) / RECORD_FILE).unlink(missing_ok=True)


def check_resumable(saved: SavedState, driver: str, argv: list[str]) -> None:
    """Refuse a resume the hypervisor could not do faithfully.

    :raises ResumeRefused: another driver saved it, a file is gone, or the command line (the
        device list) differs from the one the guest was saved under.
    """
    hint = "; start the VM with discard_saved_state to boot it afresh (its memory state is lost)"
    if saved.driver != driver:
        raise ResumeRefused(f"the saved state was written by driver {saved.driver}, not {driver}" + hint)
    missing = [name for name in saved.files if not os.path.isfile(name)]
    if missing:
        raise ResumeRefused(f"the saved state is incomplete: {', '.join(missing)} missing" + hint)
    if list(argv) != list(saved.argv):
        changed = sorted(set(argv) ^ set(saved.argv))[:6]
        raise ResumeRefused("the VM's devices changed since it was suspended (" + " ".join(changed) + ")" + hint)
