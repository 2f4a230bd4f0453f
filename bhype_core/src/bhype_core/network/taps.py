"""VM NICs on switches: the taps a start creates and a stop removes (what drivers attach).

The VM layer calls :func:`plug_nics` right before ``driver.start`` (its result is
``Attachments.taps``) and :func:`unplug_nics` after the VM stopped. The taps made are recorded
in ``<vm_dir>/taps.json``, so the next start removes any a crash left behind. On Linux without
root (or a NIC without a switch) a NIC gets ``None``: QEMU user networking.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bhype_core.errors import ValidationErrors
from bhype_core.network.host import SwitchHost
from bhype_core.network.models import SwitchConfig, linux_tap_name, nic_description
from bhype_core.spec import VMSpec

TAPS_FILE = "taps.json"


def _platform(runtime: Any) -> str:
    from bhype_core.host.platform import detect_platform

    return detect_platform(runtime.settings.core.platform)


def _can_make_taps(runtime: Any, platform: str) -> bool:
    # iproute2 needs CAP_NET_ADMIN; an unprivileged Linux host falls back to user networking.
    if platform != "linux" or getattr(runtime.runner, "target", "local") != "local":
        return True
    return os.geteuid() == 0


@contextmanager
def switch_guard(runtime: Any, switch: str) -> Iterator[None]:
    """Serialise tap changes on one switch across worker threads and processes (flock(2)):
    two VMs starting at once must not both create the same per-VLAN bridge."""
    directory = Path(runtime.settings.core.data_dir) / "run" / "locks"
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / f"switch-{switch}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _record(vm_dir: Path) -> Path:
    return Path(vm_dir) / TAPS_FILE


def plug_nics(runtime: Any, spec: VMSpec, vm_dir: Path, log: Any = None,
              switches: dict[str, SwitchConfig] | None = None) -> list[str | None]:
    """Create a tap per NIC of ``spec`` on its switch; returns them in NIC order.

    :param switches: the switch configs by name (default: read from ``core_switch``).
    :raises ValidationErrors: a NIC names a switch that does not exist (``nics.<n>.switch``).
    :raises CommandError: a host command failed; taps made so far are removed again.
    """
    platform = _platform(runtime)
    if not spec.nics:
        return []
    if not _can_make_taps(runtime, platform):
        if log:
            log("not root: NICs use QEMU user networking instead of switches")
        return [None] * len(spec.nics)
    if switches is None:
        from bhype_core.network.service import switch_configs

        switches = switch_configs(runtime)
    errors = ValidationErrors()
    for index, nic in enumerate(spec.nics):
        if nic.switch is not None and nic.switch not in switches:
            errors.add(f"nics.{index}.switch", f"no virtual switch named {nic.switch!r}")
    errors.raise_if_any()
    unplug_nics(runtime, spec, vm_dir, log, switches)  # whatever a crashed run left
    host = SwitchHost(runtime.runner, platform, log)
    plugged: list[dict[str, Any]] = []
    taps: list[str | None] = []
    try:
        for index, nic in enumerate(spec.nics):
            if nic.switch is None and platform == "linux":
                taps.append(None)  # user networking
                continue
            switch = switches[nic.switch] if nic.switch else None
            description = nic_description(spec.name, index, nic.switch or "none")
            with switch_guard(runtime, nic.switch or "none"):
                tap = host.plug(switch, nic.vlan, description, linux_tap_name(str(spec.uuid), index))
            plugged.append({"tap": tap, "switch": nic.switch, "vlan": nic.vlan})
            taps.append(tap)
    except Exception:
        _unplug(runtime, host, plugged, switches)
        raise
    _record(vm_dir).write_text(json.dumps(plugged))
    return taps


def unplug_nics(runtime: Any, spec: VMSpec, vm_dir: Path, log: Any = None,
                switches: dict[str, SwitchConfig] | None = None) -> list[str]:
    """Remove the taps the last :func:`plug_nics` of this VM made; returns their names."""
    record = _record(vm_dir)
    try:
        plugged = json.loads(record.read_text())
    except (FileNotFoundError, ValueError):
        return []
    # A bare list of names: what the VM layer's earlier interim FreeBSD tap code wrote.
    plugged = [{"tap": entry} if isinstance(entry, str) else entry for entry in plugged]
    if switches is None:
        from bhype_core.network.service import switch_configs

        switches = switch_configs(runtime)
    _unplug(runtime, SwitchHost(runtime.runner, _platform(runtime), log), plugged, switches)
    record.unlink(missing_ok=True)
    return [entry["tap"] for entry in plugged]


def _unplug(runtime: Any, host: SwitchHost, plugged: list[dict[str, Any]], switches: dict[str, SwitchConfig]) -> None:
    for entry in reversed(plugged):
        switch = switches.get(entry.get("switch") or "")
        with switch_guard(runtime, entry.get("switch") or "none"):
            host.unplug(entry["tap"], switch, entry.get("vlan"))


def planned_taps(spec: VMSpec, platform: str) -> list[str | None]:
    """What a plan (show-command, preflight) calls each NIC's tap: on Linux its stable name, or
    ``None`` for a NIC without a switch (user networking); on FreeBSD ``<tap of nics.N>``,
    standing for the name ``ifconfig tap create`` will print."""
    if platform == "freebsd":
        return [f"<tap of nics.{index}>" for index in range(len(spec.nics))]
    return [linux_tap_name(str(spec.uuid), index) if nic.switch else None for index, nic in enumerate(spec.nics)]


def plan_nics(spec: VMSpec, platform: str, switches: dict[str, SwitchConfig]) -> list[tuple[list[str], str]]:
    """The host commands a start runs for the NICs, as ``(argv, purpose)`` (show-command), with
    the taps named as :func:`planned_taps` names them."""
    from bhype_core.network import freebsd, linux

    argv = freebsd if platform == "freebsd" else linux
    steps: list[tuple[list[str], str]] = []
    for index, (nic, tap) in enumerate(zip(spec.nics, planned_taps(spec, platform), strict=True)):
        if tap is None:
            continue
        switch = switches.get(nic.switch or "")
        bridge = switch.segment_bridge(nic.vlan) if switch else None
        where = bridge or (f"switch {nic.switch}, which does not exist" if nic.switch else "no switch")
        named = f"; it prints the name shown as {tap}" if platform == "freebsd" else ""
        steps.append((argv.create_tap(linux_tap_name(str(spec.uuid), index)), f"tap for nics.{index}{named}"))
        description = nic_description(spec.name, index, nic.switch or "none")
        for command in argv.configure_tap(tap, description, bridge, switch.mtu if switch else None):
            steps.append((command, f"nics.{index} on {where}"))
    return steps
