"""A VM's NICs over its life: taps plugged into their switches at start, unplugged at stop,
after a crash or a guest power-off (reconcile) and at destroy.

The tap work itself is :mod:`bhype_core.network.taps`; this module decides when it happens
and keeps a start and a clean-up of the same VM apart: both hold the VM's NIC lock
(:func:`nic_guard`), so a reconcile that finds a VM down never removes the taps of a start
under way.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bhype_core.drivers.base import Problem
from bhype_core.network.service import switch_configs
from bhype_core.network.taps import TAPS_FILE, plug_nics, unplug_nics
from bhype_core.spec import VMSpec

LOCK_FILE = "nics.lock"


@contextmanager
def nic_guard(vm_dir: Path) -> Iterator[None]:
    """Hold the NIC lock of the VM in ``vm_dir`` (flock(2) on ``<vm_dir>/nics.lock``; the
    kernel drops it if the holder dies). Not re-entrant: never nest it for one VM."""
    fd = os.open(Path(vm_dir) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def nic_problems(runtime: Any, spec: VMSpec) -> list[Problem]:
    """Preflight: every NIC's switch must exist (a switch may be destroyed after the VM was
    created with it)."""
    named = {nic.switch for nic in spec.nics if nic.switch}
    if not named:
        return []
    known = switch_configs(runtime)
    return [
        Problem(f"nics.{index}.switch", f"no virtual switch named {nic.switch!r}",
                f"create it (bhype switch create {nic.switch}) or edit the NIC's switch")
        for index, nic in enumerate(spec.nics)
        if nic.switch and nic.switch not in known
    ]


def plug(context: Any, spec: VMSpec, vm_dir: Path) -> list[str | None]:
    """Plug every NIC for a start (the caller holds :func:`nic_guard`); returns
    ``Attachments.taps``: per NIC its tap, or ``None`` for QEMU user networking."""
    taps = plug_nics(context.runtime, spec, vm_dir, context.log)
    for index, tap in enumerate(taps):
        where = f"switch {spec.nics[index].switch}" if spec.nics[index].switch else "no switch"
        context.log(f"nics.{index}: tap {tap} on {where}" if tap else f"nics.{index}: QEMU user networking")
    return taps


def unplug(runtime: Any, spec: VMSpec, vm_dir: Path, log: Any) -> list[str]:
    """Remove the taps the last start plugged (the caller holds :func:`nic_guard`)."""
    removed = unplug_nics(runtime, spec, vm_dir, log)
    for tap in removed:
        log(f"removed tap {tap}")
    return removed


def release_nics(runtime: Any, driver: Any, spec: VMSpec, vm_dir: Path, log: Any) -> list[str]:
    """Remove the taps of a VM that no longer runs (stopped, crashed, powered off by its
    guest); a running VM keeps them. Cheap when there is nothing to do (no ``taps.json``).

    :returns: the taps removed.
    """
    if not (Path(vm_dir) / TAPS_FILE).exists():
        return []
    with nic_guard(vm_dir):
        if driver.status(spec, vm_dir).active:  # started again meanwhile: its taps are in use
            return []
        return unplug(runtime, spec, vm_dir, log)
