"""Restore drill: time to the sign of life, against booting the same restored image by hand.

A VM of the tiny test guest (direct kernel boot, a 256 MiB disk with 64 MiB written) is backed
up to a local target. Then, per round:

* **bHype**: ``backup.drill`` of that point (serial text ``BHYPE-GUEST-READY``): restore as a
  temporary VM (every chunk checked), cut off the network, start it under the supervisor, read
  its serial console until the text appears, destroy it. Figures from the drill's result:
  ``sign_of_life_seconds`` (start request → text seen) and ``total_seconds``.
* **anchor**: the point restored as a VM once, then the very QEMU command line the driver
  would run for it (``plan()``), started by hand, timed until the same text is in its serial
  log, killed.

Ratio = bHype's start-to-sign-of-life ÷ the anchor's boot. Every byte checked: the restored
image is compared with the source disk by sha256. Run: ``./dev bench drill [--rounds 3]``.
Needs root and the tiny test guest (built into ``~/.cache/bhype-test`` on first use).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from report import print_table

from bhype_core.api.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.drivers.base import Attachments
from bhype_core.drivers.select import select_driver
from bhype_core.plugin_api import find_vm
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.spec import validate_spec
from bhype_core.tasks import service, store
from bhype_core.testing import make_settings
from bhype_core.testing.guest_image import READY_MARKER
from bhype_core.testing.tasks import run_queued

MiB = 2**20
TIMEOUT = 600


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def run(runtime, kind: str, arguments: dict) -> dict:
    task = service.submit(runtime, Principal("root", "admin"), kind, arguments)
    run_queued(runtime)
    done = store.get_task(runtime.engine, task.id)
    if done.state != "succeeded":
        raise RuntimeError(f"{kind}: {done.state}: {done.error}")
    return done.result


def boot_by_hand(argv: list[str], log: Path) -> float:
    """Start ``argv`` (the driver's own QEMU command line), time until the ready text is in
    ``log``; kill it."""
    log.unlink(missing_ok=True)
    started = time.perf_counter()
    qemu = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while READY_MARKER not in (log.read_text(errors="replace") if log.exists() else ""):
            if qemu.poll() is not None or time.perf_counter() - started > TIMEOUT:
                raise RuntimeError(f"the guest did not boot by hand (exit {qemu.returncode})")
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        qemu.kill()
        qemu.wait()


def main() -> int:
    from bhype_testimages.tiny_image import tiny_guest_image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    guest = tiny_guest_image()
    root = Path(tempfile.mkdtemp(prefix="bh-bd-", dir="/tmp"))  # short unix socket paths
    try:
        (root / "templates").mkdir()
        (root / "templates" / "tiny.toml").write_text(guest.template_toml())
        # root (group root) is the benchmark's admin: the worker reads a task owner's role from
        # their groups.
        settings = make_settings(root / "data", queue={"backend": "sqlite"}, qemu={"accel": "tcg"},
                                 auth={"admin_groups": ["root"]},
                                 vm={"datastores": {"default": {"path": str(root / "ds")}},
                                     "templates_dir": str(root / "templates")})
        runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=True))
        upgrade(runtime)
        (root / "bk").mkdir()
        run(runtime, "backup.target_add", {"name": "usb", "destination": str(root / "bk")})
        run(runtime, "vm.create", {"name": "src", "template": "tiny",
                                   "overrides": {"disks": [{"size": "256M"}], "nics": []}})
        disk = root / "ds" / "vms" / "src" / "disk0.img"
        with disk.open("r+b") as handle:
            handle.write(random.Random(1).randbytes(64 * MiB))
        point = run(runtime, "backup.run", {"vm": "src", "target": "usb", "mode": "stop", "job": None})["point"]

        # The anchor's image: the same point restored once, every byte compared.
        run(runtime, "backup.restore", {"point": point, "vm": "src", "as": "byhand"})
        restored = root / "ds" / "vms" / "byhand" / "disk0.img"
        assert sha256(restored) == sha256(disk), "the restored image differs from the source"
        row = find_vm(runtime, "byhand")
        vm_dir = root / "ds" / "vms" / "byhand"
        driver = select_driver(runtime)
        plan = driver.plan(validate_spec(row.spec), vm_dir, Attachments(disk_paths=[str(restored)]))
        argv = next(c.argv for c in plan if Path(c.argv[0]).name.startswith("qemu-system"))
        for command in plan:  # set-up steps (socket directory, NVRAM copy); not the supervisor
            if Path(command.argv[0]).name in ("mkdir", "cp"):
                subprocess.run(command.argv, check=True)

        drills, totals, hands = [], [], []
        for _ in range(args.rounds):
            result = run(runtime, "backup.drill", {"point": point, "text": READY_MARKER, "timeout": TIMEOUT})
            [drilled] = result["drills"]
            assert drilled["state"] == "ok", drilled
            drills.append(drilled["sign_of_life_seconds"])
            totals.append(drilled["total_seconds"])
            hands.append(boot_by_hand(argv, vm_dir / "serial.log"))
        mine, anchor = statistics.median(drills), statistics.median(hands)
        print_table(f"restore drill, tiny guest under TCG, 256 MiB disk (64 MiB written); median of {args.rounds}; "
                    f"load average {os.getloadavg()[0]:.1f}", [
                        {"case": "start → serial sign of life", "by hand (same QEMU argv) s": f"{anchor:.2f}",
                         "bHype drill s": f"{mine:.2f}", "ratio": f"{mine / anchor:.2f}"},
                        {"case": "whole drill (restore, isolate, start, sign, destroy)",
                         "by hand (same QEMU argv) s": "", "bHype drill s": f"{statistics.median(totals):.2f}",
                         "ratio": ""}])
        print(f"rounds: drill {drills}, by hand {[round(h, 2) for h in hands]}, whole drill {totals}")
        runtime.engine.dispose()
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
