"""Real guests for move tests: the tiny guest as an admin template on every host, a VM with a
disk, a counter written to the disk by a process in the guest, and reading it back."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

from conftest import wait_task

from bhype_core.testing.guest_image import READY_MARKER, GuestImage
from bhype_core.testing.second_host import BhypeHost

BOOT_WAIT = 300.0  # TCG on a loaded 2-core machine; a deadline, not a timing assertion
COUNTER = ("i=0; while :; do i=$((i+1)); echo \"COUNT $i END\" | dd of=/dev/vda bs=512 count=1 conv=fsync "
           "2>/dev/null && echo \"WROTE $i\"; sleep 1; done &")


def host_sections(root: Path, guest: GuestImage) -> dict[str, Any]:
    """Settings sections that give a host the tiny guest as template ``tiny`` (QEMU, TCG)."""
    templates = root / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "tiny.toml").write_text(guest.template_toml())
    return {"qemu": {"accel": "tcg"}, "vm": {"templates_dir": str(templates), "stop_timeout": 90}}


def vm(host: BhypeHost, name: str) -> dict[str, Any]:
    return host.api().request("GET", f"/api/v1/vms/{name}")


def create_vm(host: BhypeHost, name: str, disk: str = "64M") -> dict[str, Any]:
    spec = {"disks": [{"size": disk}], "boot": {"cmdline": f"console=ttyS0 console=tty0 bhype.hostname={name}"}}
    body = {"name": name, "template": "tiny", "spec": spec}
    wait_task(host, host.api().request("POST", "/api/v1/vms", body))
    return vm(host, name)


def serial_log(host: BhypeHost, name: str) -> str:
    path = Path(vm(host, name)["status"]["consoles"]["serial"]["log"])
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_text(host: BhypeHost, name: str, pattern: str, after: int = 0, timeout: float = BOOT_WAIT) -> str:
    """Wait until VM ``name``'s serial log (past offset ``after``) matches ``pattern``."""
    deadline = time.monotonic() + timeout
    while True:
        text = serial_log(host, name)[after:]
        if re.search(pattern, text):
            return text
        assert time.monotonic() < deadline, f"no {pattern!r} on {name}'s serial console:\n{text[-2000:]}"
        time.sleep(0.5)


def start_and_boot(host: BhypeHost, name: str) -> None:
    wait_task(host, host.api().request("POST", f"/api/v1/vms/{name}/start"))
    wait_for_text(host, name, READY_MARKER)


def type_line(host: BhypeHost, name: str, command: str) -> None:
    """Type ``command`` at the guest's serial shell (a CR first ends busybox's cursor query)."""
    path = vm(host, name)["status"]["consoles"]["serial"]["unix"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(b"\r")
        time.sleep(2)
        sock.sendall(command.encode() + b"\r")
        time.sleep(1)


def start_counter(host: BhypeHost, name: str, at_least: int = 3) -> None:
    """Start the counter loop in the guest and wait until it wrote ``at_least`` values."""
    deadline = time.monotonic() + BOOT_WAIT
    while not re.search(rf"WROTE {at_least}\b", serial_log(host, name)):
        assert time.monotonic() < deadline, f"the counter did not run:\n{serial_log(host, name)[-2000:]}"
        if "WROTE" not in serial_log(host, name):
            type_line(host, name, COUNTER)
        time.sleep(2)


def last_written(serial: str) -> int:
    """The last counter value the guest reported as written (and fsynced)."""
    values = [int(v) for v in re.findall(r"WROTE (\d+)", serial)]
    assert values, "no counter value was written"
    return max(values)


def disk_counter(image: Path) -> int:
    """The counter value at the start of a raw disk image."""
    head = image.read_bytes()[:512] if image.stat().st_size < 2**20 else image.open("rb").read(512)
    found = re.match(rb"COUNT (\d+) END", head)
    assert found, f"no counter on {image}: {head[:40]!r}"
    return int(found.group(1))


def read_disk_in_guest(host: BhypeHost, name: str) -> int:
    """Boot-side proof: the guest itself reads the counter from its disk."""
    before = len(serial_log(host, name))
    deadline = time.monotonic() + BOOT_WAIT
    while True:
        type_line(host, name, "dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c 24; echo ' DISK-READ'")
        text = serial_log(host, name)[before:]
        found = re.search(r"COUNT (\d+) END[\s\x00]*DISK-READ", text)
        if found:
            return int(found.group(1))
        assert time.monotonic() < deadline, f"the guest did not read its disk:\n{text[-2000:]}"
        time.sleep(3)


class SerialWatch:
    """Keeps reading a VM's serial log file in a thread (the last text read stays in
    ``text`` after the file is gone, as when a moved VM's source directory is removed)."""

    def __init__(self, host: BhypeHost, name: str) -> None:
        self.path = Path(vm(host, name)["status"]["consoles"]["serial"]["log"])
        self.text = ""
        self._stop = False

    def _run(self) -> None:
        while not self._stop:
            try:
                self.text = self.path.read_text(errors="replace")
            except OSError:
                pass
            time.sleep(0.3)

    def __enter__(self) -> SerialWatch:
        import threading

        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = True
        self._thread.join()
