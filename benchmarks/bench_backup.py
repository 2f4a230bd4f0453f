"""Backup throughput, incremental efficiency and restore time, against plain rsync by hand.

A VM with a 4 GiB disk image of which 1 GiB is written (random data) on a directory datastore;
the target is a real rsync daemon (its own process, password file) on a loopback port.

1. Full backup (``backup.run``, mode ``stop``: manifest checksums + rsync) vs the anchor: plain
   ``rsync -a --sparse disk0.img rsync://…`` by hand to the same daemon, same run. Ratio =
   bHype's time ÷ rsync's.
2. Incremental after changing 1 % of the disk (41 × 1 MiB at spread offsets): bytes rsync sent
   (``Total bytes sent``) ÷ bytes changed (goal ≤ 2), and the time.
3. Restore of that point as a new VM (every file fetched with rsync, every chunk checked
   against the manifest, written sparse) vs the anchor: plain ``rsync -a --sparse`` of the
   point's disk from the daemon by hand, same run.

Every byte is checked: the target's copies and the restored disk are compared with the source
by sha256. Run: ``./dev bench backup`` or ``.venv/bin/python benchmarks/bench_backup.py
[--size-gib 4] [--written-gib 1]``. Needs root (the rsync daemon runs as root).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from report import print_table

from bhype_backup.backup_run import run_backup
from bhype_backup.restore import restore
from bhype_backup.targets import add_target
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import TaskContext
from bhype_core.testing import make_settings
from bhype_core.testing.rsyncd import start_rsyncd
from bhype_core.vm.create import create_vm

MiB, GiB = 2**20, 2**30


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(8 * MiB):
            digest.update(block)
    return digest.hexdigest()


def context(runtime, kind: str) -> TaskContext:
    return TaskContext(runtime=runtime, task_id=f"bench-{kind}-{time.monotonic_ns()}", kind=kind, user="root")


def fill(path: Path, written: int, seed: int) -> None:
    """``written`` bytes of random data spread over the image in 64 MiB runs (the rest sparse)."""
    rng = random.Random(seed)
    size = path.stat().st_size
    step = size // (written // (64 * MiB))
    with path.open("r+b") as handle:
        for offset in range(0, size, step)[: written // (64 * MiB)]:
            handle.seek(offset)
            for _ in range(64):
                handle.write(rng.randbytes(MiB))


def change(path: Path, fraction: float, seed: int) -> int:
    """Overwrite ``fraction`` of the image in 1 MiB pieces at spread offsets; bytes changed."""
    rng = random.Random(seed)
    size = path.stat().st_size
    pieces = int(size * fraction) // MiB
    step = size // pieces
    with path.open("r+b") as handle:
        for index in range(pieces):
            handle.seek(index * step)
            handle.write(rng.randbytes(MiB))
    later = time.time() + 5
    os.utime(path, (later, later))
    return pieces * MiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=int, default=4)
    parser.add_argument("--written-gib", type=int, default=1)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bh-bench-backup-", dir="/var/tmp"))
    try:
        settings = make_settings(root / "data", queue={"backend": "sqlite"},
                                 vm={"datastores": {"default": {"path": str(root / "ds")}}})
        runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=True))
        upgrade(runtime)
        create_vm(context(runtime, "vm.create"), "bench", overrides={"disks": [{"size": f"{args.size_gib}G"}],
                                                                     "memory": "64M"}, owner="root")
        disk = root / "ds" / "vms" / "bench" / "disk0.img"
        fill(disk, args.written_gib * GiB, seed=1)
        module = root / "module"
        with start_rsyncd(root / "rsyncd", {"vms": module, "plain": root / "plain"}) as daemon:
            add_target(context(runtime, "backup.target_add"), "nas", daemon.url("vms"), password=daemon.password)
            password_file = root / "data" / "backup" / "secrets" / "nas" / "password"
            rows = []
            # Anchor: rsync by hand, the same file to the same daemon.
            started = time.perf_counter()
            subprocess.run(["rsync", "-a", "--sparse", f"--password-file={password_file}", str(disk),
                            daemon.url("plain") + "/"], check=True)
            plain = time.perf_counter() - started
            assert sha256(root / "plain" / "disk0.img") == sha256(disk)
            started = time.perf_counter()
            full = run_backup(context(runtime, "backup.run"), "bench", "nas", mode="stop")
            ours = time.perf_counter() - started
            assert sha256(module / full["path"] / "disks" / "disk0.img") == sha256(disk)
            size = disk.stat().st_size
            rows.append({"case": f"full backup, {args.size_gib} GiB image, {args.written_gib} GiB written",
                         "plain rsync s": f"{plain:.2f}", "bHype s": f"{ours:.2f}", "ratio": f"{ours / plain:.2f}",
                         "MiB/s (bHype)": f"{size / MiB / ours:.0f}", "sent MiB": f"{full['bytes_sent'] / MiB:.1f}"})
            changed = change(disk, 0.01, seed=2)
            started = time.perf_counter()
            incremental = run_backup(context(runtime, "backup.run"), "bench", "nas", mode="stop")
            took = time.perf_counter() - started
            assert sha256(module / incremental["path"] / "disks" / "disk0.img") == sha256(disk)
            started = time.perf_counter()
            subprocess.run(["rsync", "-a", "--sparse", "--inplace", f"--password-file={password_file}", str(disk),
                            daemon.url("plain") + "/"], check=True)
            plain_incremental = time.perf_counter() - started
            rows.append({"case": "incremental after 1 % changed", "plain rsync s": f"{plain_incremental:.2f}",
                         "bHype s": f"{took:.2f}", "ratio": f"{took / plain_incremental:.2f}",
                         "MiB/s (bHype)": f"{size / MiB / took:.0f}",
                         "sent MiB": f"{incremental['bytes_sent'] / MiB:.1f}"})
            (root / "fetched").mkdir()
            started = time.perf_counter()
            subprocess.run(["rsync", "-a", "--sparse", f"--password-file={password_file}",
                            daemon.url("vms") + f"/{incremental['path']}/disks/disk0.img", str(root / "fetched") + "/"],
                           check=True)
            plain_restore = time.perf_counter() - started
            assert sha256(root / "fetched" / "disk0.img") == sha256(disk)
            started = time.perf_counter()
            restore(context(runtime, "backup.restore"), incremental["point"], vm="bench", **{"as": "bench2"})
            restored = time.perf_counter() - started
            assert sha256(root / "ds" / "vms" / "bench2" / "disk0.img") == sha256(disk)
            rows.append({"case": "restore as a new VM (every chunk checked)", "plain rsync s": f"{plain_restore:.2f}",
                         "bHype s": f"{restored:.2f}", "ratio": f"{restored / plain_restore:.2f}",
                         "MiB/s (bHype)": f"{size / MiB / restored:.0f}", "sent MiB": ""})
        print_table("backup (rsync daemon target on loopback; anchor: plain rsync by hand)", rows)
        ratio = incremental["bytes_sent"] / changed
        print_table("incremental efficiency", [{"bytes changed": str(changed),
                                                "bytes sent": str(incremental["bytes_sent"]),
                                                "literal": str(incremental["literal_bytes"]),
                                                "sent / changed": f"{ratio:.3f}", "goal": "<= 2",
                                                "met": "yes" if ratio <= 2 else "NO"}])
        runtime.engine.dispose()
        return 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
