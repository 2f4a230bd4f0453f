"""A restore drill's TCP sign of life with the real tiny guest (QEMU TCG), issue 16.

The backed-up VM has no NIC at all: the drill adds one on the isolated drill switch (a bridge
without uplink), and the worker reaches the guest's port over IPv6 link-local on that bridge
(the guest's address derived from its NIC's MAC), never through a host address or route. The
guest's busybox listens with ``nc -l -p PORT`` once started from its serial console (what the
test kit's image offers: typed here, as an admin would have it in the guest's init). Checked:
the drill passes with the guest's greeting in its excerpt, the bridge held only the drill VM's
tap and only a link-local host address, and a port nobody listens on fails the drill; the drill
VM is destroyed both times.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from bhype_backup.drill_tcp import eui64_link_local, link_local_argv, scoped, wait_for_port
from bhype_backup.jobs_service import check_drill
from bhype_backup.models import BackupPoint
from bhype_core.db.migrate import upgrade
from bhype_core.db.session import session
from bhype_core.drivers.select import select_driver
from bhype_core.plugin_api import list_vms, switch_interface
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.spec import validate_spec
from bhype_core.testing import make_settings
from bhype_core.testing.guest_image import READY_MARKER
from bhype_core.testing.roles import role_account

from .world import World, close_world

WAIT = 300  # a bound for TCG on a loaded machine, not a timing assertion
PORT = 8080
LISTEN = f"ip link set eth0 up; echo drill-alive-$((6*7)) | nc -l -p {PORT}"


def test_eui64_link_local_and_host_commands():
    assert eui64_link_local("52:54:00:12:34:56") == "fe80::5054:ff:fe12:3456"
    assert eui64_link_local("02:00:00:00:00:01") == "fe80::ff:fe00:1"  # U/L bit flipped back to 0
    with pytest.raises(ValueError):
        eui64_link_local("52:54:00")
    assert scoped("fe80::1", "vm-drill") == "fe80::1%vm-drill" and scoped("192.0.2.1", "vm-drill") == "192.0.2.1"
    assert link_local_argv("freebsd", "vm-drill") == ["ifconfig", "vm-drill", "inet6", "-ifdisabled", "auto_linklocal"]
    assert link_local_argv("linux", "vm-drill") == ["sysctl", "-q", "-w", "net.ipv6.conf.vm-drill.disable_ipv6=0"]
    assert check_drill({"kind": "tcp", "port": 22}) == []
    assert {p for p, _ in check_drill({"kind": "tcp", "port": 0, "address": "10.0.0.1", "x": 1})} == {
        "drill_check.port", "drill_check.address", "drill_check.x"}


def test_wait_for_port_reads_the_greeting_and_times_out_clearly():
    with socket.socket(socket.AF_INET6) as server:
        server.bind(("::1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        threading.Thread(target=lambda: server.accept()[0].sendall(b"SSH-2.0-test\r\n"), daemon=True).start()
        assert wait_for_port(["::1"], port, 10) == (True, f"TCP port {port} answered on [::1]: SSH-2.0-test")
    answered, said = wait_for_port(["::1"], port, 1.5)
    assert not answered and said.startswith(f"TCP port {port} did not answer ([::1]:{port}: Connection refused")


@pytest.fixture
def tcp_world(tiny_guest, local_user):
    root = Path(tempfile.mkdtemp(prefix="bh-dt-", dir="/tmp"))  # unix socket paths stay short
    (root / "templates").mkdir()
    (root / "templates" / "tiny.toml").write_text(tiny_guest.template_toml())
    switch = "dr" + secrets.token_hex(4)  # distinct per run: other people test on this machine
    settings = make_settings(root / "data", queue={"backend": "sqlite"}, qemu={"accel": "tcg"},
                             vm={"datastores": {"default": {"path": str(root / "ds")}},
                                 "templates_dir": str(root / "templates"), "stop_timeout": 90},
                             backup_jobs={"drill_switch": switch})
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=True))
    upgrade(runtime)
    world = World(runtime, root, role_account(local_user, runtime, "admin"))
    world.switch = switch
    try:
        yield world
    finally:
        driver = select_driver(world.runtime)
        for row in list_vms(world.runtime):
            try:
                driver.force_stop(validate_spec(row.spec), root / "ds" / "vms" / row.name)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        world.run("switch.destroy", {"name": switch})
        subprocess.run(["ip", "link", "delete", switch_interface(switch)], capture_output=True)
        close_world(world)
        shutil.rmtree(root, ignore_errors=True)


class GuestListener(threading.Thread):
    """Waits for the drill VM to boot, starts the listener on its serial console, and records
    what the drill switch's bridge holds meanwhile."""

    def __init__(self, root: Path, bridge: str) -> None:
        super().__init__(daemon=True)
        self.root, self.bridge, self.stop = root, bridge, threading.Event()
        self.members: list[str] = []
        self.addresses: list[dict] = []
        self.serial, self.debug = "", []

    def run(self) -> None:
        deadline = time.monotonic() + WAIT
        while not self.stop.is_set() and time.monotonic() < deadline:
            for vm_dir in (self.root / "ds" / "vms").glob("drill-*"):
                log = vm_dir / "serial.log"
                if log.exists() and READY_MARKER in log.read_text(errors="replace"):
                    self.listen(vm_dir)
                    return
            time.sleep(0.5)

    def listen(self, vm_dir: Path) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(vm_dir / "serial.sock"))
            sock.sendall(b"\r")
            time.sleep(1.5)
            line = LISTEN.encode() + b"\r"
            for at in range(0, len(line), 8):  # a TCG guest's UART drops a burst: type slowly
                sock.sendall(line[at:at + 8])
                time.sleep(0.1)
        links = json.loads(subprocess.run(["ip", "-j", "link", "show", "master", self.bridge],
                                          capture_output=True, text=True).stdout or "[]")
        self.members = [link["ifname"] for link in links]
        shown = json.loads(subprocess.run(["ip", "-j", "addr", "show", "dev", self.bridge],
                                          capture_output=True, text=True).stdout or "[]")
        self.addresses = [a for link in shown for a in link.get("addr_info", [])]
        time.sleep(8)
        try:  # kept for the failure message; a drill that passed fast has destroyed its VM by now
            self.serial = (vm_dir / "serial.log").read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            self.serial = "(the drill had already destroyed its VM)"
        self.debug = [subprocess.run(argv, capture_output=True, text=True).stdout for argv in (
            ["ip", "-6", "neigh", "show", "dev", self.bridge], ["ip", "addr", "show", "dev", self.bridge],
            ["ip", "link", "show", "master", self.bridge])]


@pytest.mark.guest
@pytest.mark.slow
def test_a_drill_reaches_a_guest_port_on_the_isolated_switch(tcp_world):
    world = tcp_world
    (world.root / "bk").mkdir()
    world.ok("backup.target_add", {"name": "usb", "destination": str(world.root / "bk")})
    world.ok("vm.create", {"name": "g1", "template": "tiny", "overrides": {"disks": [{"size": "8M"}], "nics": []}})
    point = world.ok("backup.run", {"vm": "g1", "target": "usb", "mode": "stop", "job": None})["point"]
    bridge = switch_interface(world.switch)

    listener = GuestListener(world.root, bridge)
    listener.start()
    try:
        result = world.run("backup.drill", {"point": point, "check": {"kind": "tcp", "port": PORT},
                                            "timeout": WAIT})
    finally:
        listener.stop.set()
        listener.join(5)
    assert result.state == "succeeded", (result.error, world.log(result), listener.serial, listener.debug)
    [drilled] = result.result["drills"]
    assert drilled["state"] == "ok" and f"TCP port {PORT} answered on [fe80::" in drilled["excerpt"]
    assert f"%{bridge}]: drill-alive-42" in drilled["excerpt"]
    # g1 has no NIC: the drill VM answered on the one the drill added on the isolated switch.
    # Isolated: the bridge held the drill VM's tap alone, and the host only a link-local address.
    assert len(listener.members) == 1 and listener.members[0].startswith("bh")
    assert listener.addresses and all(a["scope"] == "link" and a["local"].startswith("fe80:")
                                      for a in listener.addresses)
    with session(world.runtime) as db:
        assert db.get(BackupPoint, point).drill_state == "ok"
    assert [vm.name for vm in list_vms(world.runtime)] == ["g1"]

    # Nobody listens on this port: the drill fails, says so, and its VM goes too.
    failed = world.run("backup.drill", {"point": point, "check": {"kind": "tcp", "port": PORT + 1}, "timeout": 45})
    assert failed.state == "failed" and "g1 (point" in failed.error["message"]
    with session(world.runtime) as db:
        row = db.get(BackupPoint, point)
        assert row.drill_state == "failed" and f"TCP port {PORT + 1} did not answer" in row.drill_excerpt
    assert [vm.name for vm in list_vms(world.runtime)] == ["g1"]
