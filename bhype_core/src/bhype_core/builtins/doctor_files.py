"""The ``file-modes`` doctor check: the data directory, embedded database and queue are private.

The SQLite database holds sessions and VNC passwords, the queue task messages (issue 11):
the data directory must be 0700 and each file (with its ``-wal``/``-shm``/``-journal``) 0600.
``bhype serve`` and ``bhype worker`` tighten them at start-up; this check names what is loose
and the command that fixes it now. It also checks that directory datastores lie where only
root writes (the data directory belongs to the API user).
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path
from typing import Any

from bhype_core.private_files import loose_paths, sqlite_files
from bhype_core.registry import CheckResult

NAME = "private files"


def check_file_modes(data_dir: Path, files: list[Path]) -> CheckResult:
    """Fails naming every path others could read, with the ``chmod`` that fixes it."""
    loose = loose_paths(data_dir, files)
    if not loose:
        return CheckResult(NAME, True, f"{data_dir} is 0700 and the database/queue files 0600")
    detail = "; ".join(f"{path} is {mode:04o} (wanted {wanted:04o})" for path, mode, wanted in loose)
    fix = " && ".join(f"chmod {wanted:o} {shlex.quote(str(path))}" for path, _, wanted in loose)
    return CheckResult(NAME, False, f"readable by other local users: {detail}",
                       f"{fix} (or restart bhype serve/worker: they tighten these at start-up)")


def run_file_modes(settings: Any) -> list[CheckResult]:
    """The ``file-modes`` doctor check: private files, and datastores only root writes."""
    return [check_file_modes(Path(settings.core.data_dir), sqlite_files(settings)), check_datastore_roots(settings)]


def plantable_ancestor(path: Path) -> tuple[Path, str] | None:
    """The first of ``path`` and its parents that a non-root account could swap or fill (owned
    by another uid, or writable by group/others without the sticky bit), with why; ``None``
    when root alone controls the whole chain. Absent parts are skipped."""
    for candidate in (path, *path.parents):
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if info.st_uid != 0:
            return candidate, f"owned by uid {info.st_uid}"
        if mode & 0o022 and not mode & stat.S_ISVTX:
            return candidate, f"mode {mode:04o} lets others write"
    return None


def check_datastore_roots(settings: Any) -> CheckResult:
    """Directory datastores (disks, ISO library) and admin templates lie where only root
    writes: the root worker attaches datastore files to VMs and builds VMs from templates (whose
    ``extra`` options reach the hypervisor), so no directory the API user could swap (one it
    owns, or may write without the sticky bit) may lie above either. Checked only when bHype
    runs as root (unprivileged, nothing crosses a privilege line)."""
    name = "datastore directories"
    if os.geteuid() != 0:
        return CheckResult(name, True, "bHype runs unprivileged here: no privilege line to guard")
    try:
        vm = settings.section("vm")
    except Exception:  # the VM built-in is not loaded: its defaults still describe the host
        from bhype_core.vm.settings import VmSettings

        vm = VmSettings.model_validate({})
    data_dir = Path(settings.core.data_dir)
    places = [(f"datastore {store}", Path(options.path or data_dir / "datastore"))
              for store, options in sorted(vm.datastores.items()) if options.backend == "directory"]
    places.append(("templates_dir", Path(vm.templates_dir or data_dir / "templates")))
    problems = []
    for what, root in places:
        found = plantable_ancestor(root)
        if found:
            problems.append(f"{what} ({root}): {found[0]} is {found[1]}")
    if not problems:
        return CheckResult(name, True, "directory datastores and templates are under directories only root writes")
    return CheckResult(name, False, "; ".join(problems),
                       "make each directory named root's and not writable by others (or sticky), or set "
                       "vm.datastores.<name>.path and vm.templates_dir to such directories, or use a ZFS datastore")
