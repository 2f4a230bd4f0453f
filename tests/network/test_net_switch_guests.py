"""Three tiny QEMU guests on switches inside a network namespace: two on one switch reach each
other (and the switch's uplink host), the third, on another switch, reaches neither. QEMU runs
inside the namespace, where :func:`plug_nics` made its taps."""

from __future__ import annotations

from pathlib import Path

import pytest
from _netkit import NetnsRunner, pings, reaches, task_context, veth_into

from bhype_core.network.service import create_switch
from bhype_core.network.taps import plug_nics, unplug_nics
from bhype_core.spec import validate_spec
from bhype_core.testing.guest_image import GuestImage
from bhype_core.testing.qemu_guest import GuestFiles, QemuGuest, qemu_argv, short_workdir

pytestmark = [pytest.mark.guest, pytest.mark.slow]

BOOT_TIMEOUT = 240


def guest_ping(guest: QemuGuest, address: str, marker: str, tries: int = 2) -> bool:
    """Ping ``address`` from the guest's serial shell, up to ``tries`` single pings; True at
    the first answer. Proving a path exists takes more tries than proving there is none: a
    guest under TCG can be slow to answer its first ARP."""
    start = len(guest.serial_text())
    # The shell echoes the typed line: the answer must not appear in it literally ($r).
    guest.send_serial(f"r=down; for i in $(seq {tries}); do ping -c 1 -W 2 {address} >/dev/null 2>&1 "
                      f"&& r=up && break; done; echo {marker}=$r\n")
    match = guest.wait_for_serial(rf"{marker}=(up|down)\r?\n", timeout=30 + 5 * tries, start=start)
    return match.group(1) == "up"


def test_guests_on_one_switch_reach_each_other_and_not_another_switch(
    tiny_guest: GuestImage, netns, network_runtime, tmp_path: Path
) -> None:
    host_ns, outside = netns("host"), netns("out")
    network_runtime.__dict__["runner"] = NetnsRunner(host_ns)
    veth_into(host_ns, "up0", outside, "10.70.0.100/24")  # a host on lan's uplink cable
    create_switch(task_context(network_runtime, "switch.create"), name="lan", uplink="up0")
    create_switch(task_context(network_runtime, "switch.create"), name="dmz")
    plan = {"g1": ("lan", "10.70.0.1"), "g2": ("lan", "10.70.0.2"), "g3": ("dmz", "10.70.0.3")}
    guests: dict[str, QemuGuest] = {}
    specs = {}
    with short_workdir() as workdir:
        try:
            for name, (switch, _) in plan.items():
                spec = validate_spec({"name": name, "nics": [{"switch": switch}]})
                specs[name] = spec
                (tmp_path / name).mkdir()
                (tap,) = plug_nics(network_runtime, spec, tmp_path / name)
                nic = ["-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
                       "-device", f"virtio-net-pci,netdev=n0,mac={spec.nics[0].mac}"]
                files = GuestFiles(workdir / name)
                argv = qemu_argv(files, tiny_guest.kernel, tiny_guest.initrd,
                                 tiny_guest.append(f"bhype.hostname={name}"), extra=nic)
                guests[name] = QemuGuest.start(files, ["ip", "netns", "exec", host_ns, *argv])
            for name, (_, address) in plan.items():
                guest = guests[name]
                ready = guest.wait_for_serial(rf"BHYPE-GUEST-READY hostname={name}", timeout=BOOT_TIMEOUT)
                guest.wait_for_serial(r"# ", timeout=60, start=ready.end())  # the serial shell's prompt
                guest.type_until(f"ip addr replace {address}/24 dev eth0 && ip link set eth0 up && echo IP-$((6*7))\n",
                                 r"IP-42\r?\n", timeout=90)

            assert guest_ping(guests["g1"], "10.70.0.2", "same", tries=10)
            assert guest_ping(guests["g2"], "10.70.0.100", "uplink", tries=10)
            assert reaches(outside, "10.70.0.1")
            assert not guest_ping(guests["g1"], "10.70.0.3", "other")
            assert not guest_ping(guests["g3"], "10.70.0.2", "back")
            assert not pings(outside, "10.70.0.3")
        finally:
            for guest in guests.values():
                guest.stop()
            for name, spec in specs.items():
                unplug_nics(network_runtime, spec, tmp_path / name)
