"""VM start latency: QEMU driver ``start()`` until the hypervisor runs, vs the same argv by hand.

Run: ``./dev bench vm_start`` or ``.venv/bin/python benchmarks/bench_vm_start.py [-n N]``
(Linux with qemu-system-x86_64). Both sides stop at the same point, QEMU answering on QMP
(guest boot excluded): the driver's figure adds the supervisor launch (a Python interpreter,
double fork), the state files and the status read-back; the hand-run side is Popen + QMP.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import percentile, print_table, summary_ms

from bhype_core.drivers.qemu import QemuDriver
from bhype_core.drivers.qmp import QMPClient
from bhype_core.host.runner import LocalRunner
from bhype_core.spec import validate_spec


def by_hand(argv: list[str], qmp: Path) -> float:
    """Spawn ``argv``, wait for QMP, then quit it; the seconds until QMP answered."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with QMPClient(qmp, timeout=30).connect(timeout=30) as client:
        elapsed = time.perf_counter() - started
        client.execute("quit")
    proc.wait(timeout=30)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="samples per case (default 20)")
    args = parser.parse_args(argv)
    if shutil.which("qemu-system-x86_64") is None:
        print("bench_vm_start: needs qemu-system-x86_64", file=sys.stderr)
        return 2
    root = Path(tempfile.mkdtemp(prefix="bhype-bench-", dir="/tmp"))
    try:
        driver = QemuDriver(LocalRunner(), run_dir=root / "run", accel="tcg")
        # SeaBIOS without a boot device: QEMU runs, and nothing but QEMU itself is measured.
        spec = validate_spec({"name": "bench", "memory": "128M", "boot": "uefi-csm"})
        vm_dir = root / "bench"
        vm_dir.mkdir()
        driver_times, hand_times = [], []
        for _ in range(args.n):
            started = time.perf_counter()
            driver.start(spec, vm_dir)
            driver_times.append(time.perf_counter() - started)
            driver.force_stop(spec, vm_dir)
        qemu = next(c.argv for c in driver.plan(spec, vm_dir) if c.argv[0] == driver.binary)
        for _ in range(args.n):
            hand_times.append(by_hand(qemu, vm_dir / "qmp.sock"))
        ratio = percentile(driver_times, 50) / percentile(hand_times, 50)
        print_table(
            "VM start until QEMU answers on QMP (TCG, guest boot excluded)",
            [
                {"case": "QemuDriver.start()", **summary_ms(driver_times)},
                {"case": "same argv by hand", **summary_ms(hand_times)},
                {"case": "ratio of p50s", "n": "", "p50 ms": f"{ratio:.2f}x", "p99 ms": "", "mean ms": ""},
            ],
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
