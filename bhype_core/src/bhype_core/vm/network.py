"""Guest NICs on FreeBSD: one tap(4) per NIC, added to an existing if_bridge(4).

Until virtual switches exist (their own feature), a NIC's ``switch`` names an existing bridge
interface (default ``bridge0``), like vm-bhyve's "manual" switch (reference 5.2). Per
ifconfig(8) (reference 5.1): ``ifconfig tap create`` prints the new name (``tap3``), the tap is
described ``bhype/<vm>/<n>`` and brought up, then ``ifconfig <bridge> addm <tap>``. The taps
of a run are recorded in ``<vm_dir>/taps.json`` and destroyed (``ifconfig <tap> destroy``)
when the VM stops or before its next start. On Linux the QEMU driver uses user networking.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bhype_core.drivers.base import HostCommand
from bhype_core.spec import VMSpec

IFCONFIG = "/sbin/ifconfig"
DEFAULT_BRIDGE = "bridge0"
TAPS_FILE = "taps.json"


def bridge_of(spec: VMSpec, index: int) -> str:
    """The bridge NIC ``index`` joins."""
    return spec.nics[index].switch or DEFAULT_BRIDGE


def placeholder(index: int) -> str:
    """How a plan names the tap ``ifconfig tap create`` will print for NIC ``index``."""
    return f"<tap of nics.{index}>"


def tap_plan(spec: VMSpec) -> list[HostCommand]:
    """The commands that attach every NIC (shown by show-command before the driver's own)."""
    commands = []
    for index in range(len(spec.nics)):
        tap = placeholder(index)
        commands += [
            HostCommand(
                [IFCONFIG, "tap", "create"], f"create the tap of nics.{index}; it prints the name used as {tap}"
            ),
            HostCommand([IFCONFIG, tap, "description", f"bhype/{spec.name}/{index}", "up"], "label it and bring it up"),
            HostCommand([IFCONFIG, bridge_of(spec, index), "addm", tap], f"attach nics.{index} to its bridge"),
        ]
    return commands


def _record(vm_dir: Path) -> Path:
    return Path(vm_dir) / TAPS_FILE


def release_taps(runner: Any, vm_dir: Path) -> list[str]:
    """Destroy the taps recorded for ``vm_dir`` (ones already gone are ignored)."""
    path = _record(vm_dir)
    try:
        taps = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    for tap in taps:
        runner.run([IFCONFIG, tap, "destroy"], timeout=30, check=False)
    path.unlink(missing_ok=True)
    return list(taps)


def create_taps(runner: Any, spec: VMSpec, vm_dir: Path) -> list[str]:
    """Create and attach one tap per NIC; on failure the ones made so far are destroyed.

    :returns: the tap names, in NIC order (what bhyve's ``-s …,virtio-net,<tap>`` gets).
    """
    release_taps(runner, vm_dir)
    taps: list[str] = []
    try:
        for index in range(len(spec.nics)):
            tap = runner.run([IFCONFIG, "tap", "create"], timeout=30).stdout.strip()
            if not tap.startswith("tap"):
                raise ValueError(f"ifconfig tap create printed {tap!r}, not a tap name")
            taps.append(tap)
            _record(vm_dir).write_text(json.dumps(taps))
            runner.run([IFCONFIG, tap, "description", f"bhype/{spec.name}/{index}", "up"], timeout=30)
            runner.run([IFCONFIG, bridge_of(spec, index), "addm", tap], timeout=30)
    except BaseException:
        release_taps(runner, vm_dir)
        raise
    return taps
