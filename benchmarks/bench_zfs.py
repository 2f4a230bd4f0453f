"""ZFS timings on real OpenZFS (the ZFS test guest under TCG, over SSH): VM clones of a 1 GiB and a
20 GiB sparse zvol (a linked clone must not grow with size), a snapshot of a VM with 4 disks,
and pruning 1,000 snapshots (the pure decision, and destroying them on the pool).

Run: ``./dev bench zfs`` or ``.venv/bin/python benchmarks/bench_zfs.py [-n N] [--groups G]``.
Boots its own guest (the image is cached after the first build). Every figure includes the
SSH round trips of the runner (~0.1 s per command), as bHype pays them on a remote host. Full
copies also report how much this process's peak memory grew (the stream must not pass through it).
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import UTC, datetime, timedelta

from report import print_table, summary_ms

from bhype_core.testing.qemu_guest import short_workdir
from bhype_core.testing.zfs_guest import boot_zfs_host
from bhype_testimages.zfs_image import zfs_guest_image
from bhype_zfs import argv, clones, snapshots
from bhype_zfs.argv import Tools
from bhype_zfs.retention import Candidate, Policy, prune, snapshot_name
from bhype_zfs.storage import ZfsDatastoreOptions, ZfsStorage
from bhype_zfs.tool import ZfsHost

GIB = 2**30
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def timed(action, count: int) -> list[float]:
    """Durations of ``count`` calls of ``action(i)``."""
    samples = []
    for index in range(count):
        started = time.perf_counter()
        action(index)
        samples.append(time.perf_counter() - started)
    return samples


def clone_rows(store: ZfsStorage, host: ZfsHost, count: int) -> list[dict[str, str]]:
    rows = []
    for size in (1, 20):
        vm = f"c{size}g"
        store.create_vm_dir(vm)
        volume = store.create_volume(vm, "disk0", size * GIB)
        # Some real data, the same amount in both: only the size differs.
        host.run(["dd", "if=/dev/urandom", f"of={volume.path}", "bs=1M", "count=32", "conv=fsync"])
        source = store.vm_dataset(vm)
        rows.append({"case": f"linked clone, {size} GiB sparse zvol (new snapshot)", **summary_ms(timed(
            lambda i, s=source, v=vm: clones.clone_tree(host, s, f"{store.vms_dataset}/{v}-l{i}"), count))})
        snapshots.take(host, source, "golden")
        rows.append({"case": f"linked clone, {size} GiB sparse zvol (existing snapshot)", **summary_ms(timed(
            lambda i, s=source, v=vm: clones.clone_tree(host, s, f"{store.vms_dataset}/{v}-e{i}", snapshot="golden"),
            count))})
    rows.append({"case": "full copy (send | receive), 1 GiB zvol, 32 MiB written", **summary_ms(timed(
        lambda i: clones.clone_tree(host, store.vm_dataset("c1g"), f"{store.vms_dataset}/c1g-f{i}", mode="full"),
        max(1, count // 2)))})
    return rows


def copy_rows(store: ZfsStorage, host: ZfsHost) -> list[dict[str, str]]:
    """Full copies stream through an OS pipe on the host: this process's peak memory must not
    grow with the amount copied (it grew by the stream size when the stream passed through it)."""
    rows = []
    for mib in (16, 128):
        vm = f"copy{mib}"
        store.create_vm_dir(vm)
        volume = store.create_volume(vm, "disk0", GIB)
        host.run(["dd", "if=/dev/urandom", f"of={volume.path}", "bs=1M", f"count={mib}", "conv=fsync"], timeout=600)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        clones.clone_tree(host, store.vm_dataset(vm), f"{store.vms_dataset}/{vm}-full", mode="full")
        seconds = time.perf_counter() - started
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        rows.append({"case": f"full copy, {mib} MiB of random data", "seconds": f"{seconds:.1f}",
                     "MiB/s": f"{mib / seconds:.1f}", "peak RSS growth (KiB)": str(grown)})
        for name in (f"{vm}-full", vm):  # the test pool is small: give the space back
            store.remove_vm_dir(name)
    return rows


def snapshot_rows(store: ZfsStorage, host: ZfsHost, count: int) -> list[dict[str, str]]:
    store.create_vm_dir("four")
    for index in range(4):
        store.create_volume("four", f"disk{index}", 4 * GIB)
    dataset = store.vm_dataset("four")
    raw = timed(lambda i: host.run(argv.snapshot(host.tools, [f"{dataset}@raw{i}"], recursive=True)), count)
    full = timed(lambda i: snapshots.take(host, dataset, f"s{i}"), count)
    return [
        {"case": "zfs snapshot -r, VM with 4 disks (one command)", **summary_ms(raw)},
        {"case": "zfs.snapshot task body, 4 disks (snapshot + listing)", **summary_ms(full)},
    ]


def prune_rows(store: ZfsStorage, host: ZfsHost, groups: int, count: int) -> list[dict[str, str]]:
    policy = Policy(hourly=24)
    now = T0 + timedelta(hours=1000)
    pure = [Candidate(snapshot_name("hourly", T0 + timedelta(hours=h)), T0 + timedelta(hours=h), held=h % 97 == 0)
            for h in range(1000)]
    decide = timed(lambda i: prune(pure, policy, now), count)
    rows = [{"case": "prune() decision, 1,000 snapshots", **summary_ms(decide)}]
    # On the pool: a VM with 4 disks and `groups` recursive hourly snapshots (5 datasets each).
    store.create_vm_dir("aged")
    for index in range(4):
        store.create_volume("aged", f"disk{index}", GIB)
    dataset = store.vm_dataset("aged")
    started = time.perf_counter()
    names = [snapshot_name("hourly", now - timedelta(hours=h)) for h in range(groups)]
    for name in names:
        host.run(argv.snapshot(host.tools, [f"{dataset}@{name}"], recursive=True))
    setup = time.perf_counter() - started
    started = time.perf_counter()
    groups_listed = snapshots.list_snapshots(host, dataset)
    listed = time.perf_counter() - started
    candidates = [Candidate(g.name, g.created) for g in groups_listed]
    doomed = prune([Candidate(n, now - timedelta(hours=h)) for h, n in enumerate(names)], policy, now)
    started = time.perf_counter()
    for start in range(0, len(doomed), 100):
        host.run(argv.destroy_snapshots(host.tools, dataset, doomed[start:start + 100], recursive=True))
    destroyed = time.perf_counter() - started
    left = len(snapshots.list_snapshots(host, dataset))
    total = groups * 5
    rows += [
        {"case": f"list {total} snapshots ({groups} recursive x 5 datasets)", "n": "1",
         "p50 ms": f"{listed * 1000:.0f}", "p99 ms": "", "mean ms": ""},
        {"case": f"destroy {len(doomed) * 5} of them (batches of 100 names, -r)", "n": "1",
         "p50 ms": f"{destroyed * 1000:.0f}", "p99 ms": "", "mean ms": ""},
        {"case": f"(setup: {groups} snapshots one by one; {left} groups left, {len(candidates)} listed)", "n": "1",
         "p50 ms": f"{setup * 1000:.0f}", "p99 ms": "", "mean ms": ""},
    ]
    return rows


def main(argv_: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5, help="samples per case (default 5)")
    parser.add_argument("--groups", type=int, default=200,
                        help="recursive snapshots of a 4-disk VM to prune (x5 datasets; default 200 = 1,000)")
    args = parser.parse_args(argv_)
    if not sys.platform.startswith("linux"):
        print("bench_zfs: needs Linux with QEMU (the ZFS test guest)", file=sys.stderr)
        return 2
    image = zfs_guest_image()
    with short_workdir("bhype-bench-zfs-") as workdir:
        guest = boot_zfs_host(image, workdir)
        try:
            runner = guest.shared_runner
            disks = [guest.disk_path(serial) for serial in guest.disks[:2]]
            runner.run(["zpool", "create", "-m", "/tank", "-O", "compression=lz4", "tank", "mirror", *disks])
            for dataset in ("tank/bhype", "tank/bhype/vms"):
                runner.run(["zfs", "create", dataset])
            host = ZfsHost(runner, Tools(platform="linux"), 600)
            store = ZfsStorage(host, "tank/bhype", ZfsDatastoreOptions(name="bench"))
            # Full copies first, while the small test pool still has room for 2 x 128 MiB.
            print_table("full copies (zfs send | zfs receive through a pipe on the host)", copy_rows(store, host))
            print_table("clones (must not grow with disk size)", clone_rows(store, host, args.n))
            print_table("snapshots", snapshot_rows(store, host, args.n * 2))
            print_table("pruning", prune_rows(store, host, args.groups, args.n * 4))
        finally:
            guest.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
