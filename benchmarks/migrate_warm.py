"""The warm-move part of ``bench_migrate``: up to three real QEMU guests (the tiny test guest, TCG) on
host ``a``, each with a sparse disk holding ``written`` MiB and a loop in the guest writing
1 MiB of random data per second to it; one is moved cold, one warm with rsync passes
(``dirty_tracking: false``), one warm with QEMU's dirty-block tracking (the default for a QEMU
VM on directory storage: passes copy only the blocks written since the previous one), all
with ``--keep-source`` so the stopped source and the registered target can be compared byte
for byte. The figure is each move's offline window (``offline_seconds``: the VM stopped here →
registered on the peer with every checksum verified), against cold in the same run, and each
move's total time. ``cases`` picks which of the three run (the cold one takes longest).

A guest's writer is started by typing at its serial shell (busybox ``dd``); the guest runs in
host ``a``'s network namespace as a child of its worker, the client (this script) in the root
namespace reading files and calling the API, the peer in namespace ``b``.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

MIB = 2**20
BOOT_WAIT = 600.0
READY = "BHYPE-GUEST-READY"


def writer(region_mib: int) -> str:
    """A busybox loop: 1 MiB of random data per second at a moving offset in the first
    ``region_mib`` MiB, each fsynced, reporting ``WROTE n``."""
    return (f"i=0; while :; do i=$((i+1)); dd if=/dev/urandom of=/dev/vda bs=1M count=1 "
            f"seek=$(( (i*37) % {region_mib} )) conv=fsync,notrunc 2>/dev/null && echo \"WROTE $i\"; "
            "sleep 1; done &")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


class Guest:
    """One VM on a host, seen through the API and its serial console files."""

    def __init__(self, host: Any, name: str) -> None:
        self.host, self.name = host, name

    def info(self) -> dict[str, Any]:
        return self.host.api().request("GET", f"/api/v1/vms/{self.name}")

    def serial(self) -> str:
        path = Path(self.info()["status"]["consoles"]["serial"]["log"])
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_for(self, pattern: str) -> None:
        deadline = time.monotonic() + BOOT_WAIT
        while not re.search(pattern, self.serial()):
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: no {pattern!r} on the serial console:\n{self.serial()[-1500:]}")
            time.sleep(1)

    def type_line(self, command: str) -> None:
        path = self.info()["status"]["consoles"]["serial"]["unix"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            sock.sendall(b"\r")
            time.sleep(2)
            sock.sendall(command.encode() + b"\r")
            time.sleep(1)

    def start_writer(self, region_mib: int) -> None:
        deadline = time.monotonic() + BOOT_WAIT
        while not re.search(r"WROTE 3\b", self.serial()):
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: the writer did not run:\n{self.serial()[-1500:]}")
            if "WROTE" not in self.serial():
                self.type_line(writer(region_mib))
            time.sleep(2)


CASES = {"cold": ("coldvm", "cold", True), "rsync": ("warmvm", "warm", False), "dirty": ("dirtyvm", "warm", True)}


def warm_case(a: Any, b: Any, wait: Any, fill: Any, gib: int, written: int,
              cases: tuple[str, ...] = ("cold", "rsync", "dirty")) -> list[dict[str, str]]:
    """Moves of running, writing guests (cold, warm by rsync, warm by dirty blocks); rows for
    the table."""
    api = a.api()
    size = gib * 1024 * MIB
    guests = {}
    for name in (CASES[case][0] for case in cases):
        boot = {"cmdline": f"console=ttyS0 console=tty0 bhype.hostname={name}"}
        spec = {"disks": [{"size": f"{gib}G"}], "boot": boot}
        wait(api, api.request("POST", "/api/v1/vms", {"name": name, "template": "tiny", "spec": spec}))
        fill(a.root / "ds" / "vms" / name / "disk0.img", size, written)
        wait(api, api.request("POST", f"/api/v1/vms/{name}/start"))
        guests[name] = Guest(a, name)
    region = min(written // MIB, 1024) or 64
    for guest in guests.values():
        guest.wait_for(READY)
        guest.start_writer(region)
    rows = []
    for case in cases:
        name, mode, dirty = CASES[case]
        load = os.getloadavg()[0]  # the machine is shared: say how loaded it was
        started = time.perf_counter()
        task = wait(api, api.request("POST", "/api/v1/migrate/moves",
                                     {"vm": name, "to": "b", "mode": mode, "keep_source": True,
                                      "dirty_tracking": dirty}))
        total = time.perf_counter() - started
        result = task["result"]
        source, target = (h.root / "ds" / "vms" / name / "disk0.img" for h in (a, b))
        if sha256(source) != sha256(target):
            raise SystemExit(f"{mode} move: the target's image differs from the stopped source's")
        passes = result.get("passes") or []
        what = {"cold": "cold move", "rsync": "warm move, rsync passes", "dirty": "warm move, dirty blocks"}[case]
        rows.append({"what": f"{what}, guest writing 1 MiB/s", "offline s": f"{result['offline_seconds']:.1f}",
                     "total s": f"{total:.1f}", "load 1m": f"{load:.1f}", "passes": str(len(passes)),
                     "last pass changed MiB": f"{passes[-1]['changed'] / MIB:.1f}" if passes else "-",
                     "last pass s": f"{passes[-1]['seconds']:.1f}" if passes else "-",
                     "offline steps s": " ".join(f"{k.split()[0]}={v:.1f}"
                                                for k, v in (result.get("offline_steps") or {}).items())})
    cold = float(rows[0]["offline s"]) if cases[0] == "cold" else 0.0
    for row in rows:
        row["offline vs cold"] = f"{float(row['offline s']) / cold:.2f}" if cold else "-"
    return rows
