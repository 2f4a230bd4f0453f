"""Built-in plugin ``core_doctor``: the core's read-only host checks for ``bhype doctor``."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bhype_core.builtins.doctor_access import run_access
from bhype_core.builtins.doctor_files import run_file_modes
from bhype_core.builtins.doctor_freebsd import freebsd_checks
from bhype_core.builtins.doctor_hostinit import run_host_init
from bhype_core.builtins.doctor_linux import linux_checks
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import CheckResult, DoctorCheck


def doctor_runner(settings: Any) -> Any:
    """The runner for doctor queries, per ``[runner]`` (local or SSH) but never a dry run:
    every doctor command is a read-only query, and a dry run would report nothing real."""
    from bhype_core.host.runner import make_runner

    return make_runner(settings.runner.model_copy(update={"dry_run": False}))


def check_data_dir(path: Path) -> CheckResult:
    """``core.data_dir`` is a writable directory, or can be created.

    Checked from this process's own view (not through the runner): the database and queue
    files there are opened by this process, whichever host the runner drives.
    """
    fix = f"mkdir -p {path} and make it writable by the user bHype runs as, or set core.data_dir"
    existing = path
    try:
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
    except OSError as exc:  # a parent this user may not even search
        return CheckResult("data directory", False, f"cannot inspect {existing}: {exc.strerror}", fix)
    if existing == path and not path.is_dir():
        return CheckResult("data directory", False, f"{path} exists but is not a directory", fix)
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == path else f"does not exist and {existing} is not writable"
        return CheckResult("data directory", False, f"{path} {what}", fix)
    if existing == path:
        return CheckResult("data directory", True, f"{path} is writable")
    return CheckResult("data directory", True, f"{path} will be created (in writable {existing})")


def run_data_dir(settings: Any) -> list[CheckResult]:
    """The ``data-dir`` doctor check."""
    return [check_data_dir(Path(settings.core.data_dir))]


def run_freebsd(settings: Any) -> list[CheckResult]:
    """The ``freebsd-host`` doctor check: modules, CPU, ZFS, firmware."""
    return freebsd_checks(doctor_runner(settings))


def run_linux(settings: Any) -> list[CheckResult]:
    """The ``linux-host`` doctor check: QEMU, qemu-img, KVM."""
    return linux_checks(doctor_runner(settings))


@hookimpl
def bhype_register_doctor_checks(register: Callable[[DoctorCheck], None]) -> None:
    """The core's checks: the data directory, its private files and logins (PAM, groups)
    everywhere, then the platform's prerequisites."""
    register(DoctorCheck(name="data-dir", run=run_data_dir))
    register(DoctorCheck(name="file-modes", run=run_file_modes))
    register(DoctorCheck(name="access", run=run_access))
    register(DoctorCheck(name="freebsd-host", run=run_freebsd, platforms=("freebsd",)))
    register(DoctorCheck(name="linux-host", run=run_linux, platforms=("linux",)))
    register(DoctorCheck(name="host-init", run=run_host_init))
