"""The monitor's cost: one sampler pass over 200 running stand-in VMs (real idle processes found
through the QEMU driver's own status, each with a real tap in a network namespace), CPU per tick
and as % of one core at the default 10 s, against the anchor of psutil reading the same
processes and taps by hand; the database growth per VM per day; a 30-day series query's p50/p99.

Run: ``./dev bench monitor`` or ``.venv/bin/python benchmarks/bench_monitor.py [--vms N] [-n TICKS]``.
The sampler and the anchor each run in their own process (the load: the stand-ins, started by
this one). Needs root for the taps (``ip tuntap``); without it the VMs have no taps.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "monitor"))  # the stand-in kit the tests use

from report import percentile, print_table, summary_ms  # noqa: E402

from bhype_core.builtins import drivers, models, network, storage, tasks, vm_tasks  # noqa: E402
from bhype_core.db.migrate import upgrade  # noqa: E402
from bhype_core.plugins import make_plugin_manager  # noqa: E402
from bhype_core.runtime import build_runtime  # noqa: E402
from bhype_core.testing import make_settings  # noqa: E402

INTERVAL = 10.0  # the default sample interval: the goal is under 1 % of one core at it


def make_runtime(root: Path, **monitor):
    import bhype_monitor.plugin

    core = {"data_dir": str(root / "data"), "platform": "linux"}
    vm = {"datastores": {"default": {"path": str(root / "ds")}}}
    settings = make_settings(root / "data", core=core, vm=vm, monitor=monitor)
    plugins = [("core_models", models), ("core_storage", storage), ("core_drivers", drivers), ("core_tasks", tasks),
               ("core_vms", vm_tasks), ("core_network", network), ("monitor", bhype_monitor.plugin)]
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    return runtime


# -- the processes under test (each in its own process) --------------------------------------

def run_sampler(root: Path, ticks: int) -> dict:
    """The system under test: the real Monitor over the stand-ins, ``ticks`` passes."""
    from bhype_monitor.sampler import Monitor

    monitor = Monitor(make_runtime(root))
    monitor.tick()  # the first pass discovers every VM (driver status, taps): paid once
    time.sleep(0.5)
    cpu, wall = [], []
    for _ in range(ticks):
        c0, w0 = time.process_time(), time.perf_counter()
        snapshot = monitor.tick()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        time.sleep(0.2)
    running = sum(1 for vm in snapshot["vms"].values() if vm["metrics"].get("cpu_percent") is not None)
    nics = sum(len(vm.get("nics", {})) for vm in snapshot["vms"].values())
    return {"cpu": cpu, "wall": wall, "running": running, "nics": nics}


def run_anchor(pids: list[int], ticks: int) -> dict:
    """The anchor: psutil by hand over the same processes (CPU, memory, I/O each) and one read of
    their namespace's interface counters per pass; no database, no API."""
    import psutil

    procs = [psutil.Process(pid) for pid in pids]
    cpu, wall = [], []
    for _ in range(ticks):
        c0, w0 = time.process_time(), time.perf_counter()
        values = []
        for proc in procs:
            with proc.oneshot():
                values.append((proc.cpu_times(), proc.memory_info(), proc.io_counters()))
        with open(f"/proc/{pids[0]}/net/dev") as handle:
            handle.read()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
        time.sleep(0.2)
    assert len(values) == len(pids)
    return {"cpu": cpu, "wall": wall, "running": len(values), "nics": 0}


def child(mode: str, arg: str, ticks: int) -> dict:
    out = subprocess.run([sys.executable, __file__, f"--{mode}", arg, "-n", str(ticks)], check=True,
                         capture_output=True, text=True, cwd=HERE).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- the load: stand-in VMs with taps ---------------------------------------------------------

def make_taps(ns: str, names: list[str]) -> bool:
    if os.geteuid() != 0:
        return False
    subprocess.run(["ip", "netns", "add", ns], check=True)
    batch = "".join(f"tuntap add dev {name} mode tap\nlink set {name} up\n" for name in names)
    subprocess.run(["ip", "-n", ns, "-batch", "-"], input=batch, text=True, check=True)
    return True


def start_load(runtime, vms: int, ns: str):
    from standins import start_standin

    from bhype_core.network.models import linux_tap_name
    from bhype_core.spec import validate_spec

    names = [f"b{index:03d}" for index in range(vms)]
    uuids = [validate_spec({"name": name, "boot": "grub"}).uuid for name in names]
    taps = [linux_tap_name(str(uuid), 0) for uuid in uuids]
    with_taps = make_taps(ns, taps)
    prefix = ["ip", "netns", "exec", ns] if with_taps else []
    standins = []
    for name, uuid, tap in zip(names, uuids, taps, strict=True):
        argv = [*prefix, "sh", "-c", "sleep 1000000; :"]
        standins.append(start_standin(runtime, name, "bench", uuid=str(uuid), argv=argv,
                                      taps=[tap] if with_taps else None))
    return standins, with_taps


# -- history size and query -------------------------------------------------------------------

def history_growth(root: Path, vms: int, metrics: dict) -> tuple[float, dict[int, float]]:
    """Bytes per VM for one simulated day at 10 s (frozen clock), and bytes per row per tier."""
    from sqlalchemy import text

    from bhype_monitor.history import History, tiers

    runtime = make_runtime(root)
    start = 1_800_000_000 // 86400 * 86400
    clock = [float(start)]
    history = History(runtime.engine, tiers(10, 365), lambda: clock[0])
    for tick in range(8640 + 1):
        clock[0] = start + 10 * tick
        history.record({f"vm:{index}": metrics for index in range(vms)})
    with runtime.engine.connect() as connection:
        total = connection.execute(text("SELECT SUM(pgsize) FROM dbstat WHERE name LIKE '%monitor_sample%'")).scalar()
        per_tier = {}
        for tier in range(4):
            count = connection.execute(text(f"SELECT COUNT(*) FROM monitor_sample WHERE tier={tier}")).scalar()
            size = connection.execute(text(
                f"SELECT SUM(LENGTH(data)) + COUNT(*) * 40 FROM monitor_sample WHERE tier={tier}")).scalar()
            per_tier[tier] = (size or 0) / count if count else 0.0
    runtime.engine.dispose()
    return total / vms, per_tier


def query_30_days(root: Path, metrics: dict, runs: int) -> list[float]:
    """One VM with 30 days of history in every tier as roll-ups leave it; ``series`` over 30 days."""
    from sqlalchemy import insert

    from bhype_monitor.history import TABLE, History, aggregate, tiers

    runtime = make_runtime(root)
    now = 1_800_000_000
    levels = tiers(10, 365)
    raw = json.dumps(metrics, separators=(",", ":"))
    _, triple = aggregate([(1, raw)])
    rolled = json.dumps(triple, separators=(",", ":"))
    with runtime.engine.begin() as connection:
        for tier, level in enumerate(levels):
            first = max(now - min(level.keep, 30 * 86400), 0) // level.step * level.step
            rows = [{"series": "vm:q", "tier": tier, "ts": ts, "n": 1, "data": raw if tier == 0 else rolled}
                    for ts in range(first, now, level.step)]
            connection.execute(insert(TABLE), rows)
    history = History(runtime.engine, levels, lambda: float(now))
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        body = history.series("vm:q", now - 30 * 86400, now)
        times.append(time.perf_counter() - t0)
    assert body["metrics"]["cpu_percent"]["avg"][-2] is not None
    runtime.engine.dispose()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument("-n", "--ticks", type=int, default=20)
    parser.add_argument("--sampler", help=argparse.SUPPRESS)
    parser.add_argument("--anchor", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sampler:
        print(json.dumps(run_sampler(Path(args.sampler), args.ticks)))
        return 0
    if args.anchor:
        print(json.dumps(run_anchor([int(p) for p in args.anchor.split(",")], args.ticks)))
        return 0

    root = Path(tempfile.mkdtemp(prefix="bhm-bench-", dir="/tmp"))
    ns = f"bhm{secrets.token_hex(3)}"
    standins, with_taps = [], False
    try:
        runtime = make_runtime(root)
        standins, with_taps = start_load(runtime, args.vms, ns)
        runtime.engine.dispose()
        time.sleep(1.0)
        sampler = child("sampler", str(root), args.ticks)
        anchor = child("anchor", ",".join(str(s.process.pid) for s in standins), args.ticks)
        assert sampler["running"] == args.vms, f"the sampler measured {sampler['running']} of {args.vms} VMs"
        assert not with_taps or sampler["nics"] == args.vms, f"{sampler['nics']} taps of {args.vms} read"
        rows = []
        for name, found in (("sampler (DB + live + thresholds)", sampler), ("anchor: psutil by hand", anchor)):
            cpu = found["cpu"]
            rows.append({"what": name, "VMs": str(args.vms), "taps": "yes" if with_taps else "no",
                         **{k.replace("ms", "CPU ms"): v for k, v in summary_ms(cpu).items()},
                         "% core @10s": f"{100 * percentile(cpu, 50) / INTERVAL:.3f}",
                         "wall p50 ms": f"{percentile(found['wall'], 50) * 1000:.2f}"})
        ratio = percentile(sampler["cpu"], 50) / max(percentile(anchor["cpu"], 50), 1e-9)
        rows.append({"what": "ratio sampler/anchor (p50 CPU)", "VMs": "", "taps": "", "n": "",
                     "p50 CPU ms": f"{ratio:.2f}x"})
        print_table(f"Sampler cost per tick, {args.vms} stand-in VMs (CPU time of the sampling process)", rows)
    finally:
        from standins import stop_all

        stop_all(standins)
        if with_taps:
            subprocess.run(["ip", "netns", "delete", ns], check=False)

    metrics = {"cpu_seconds": 12345.67, "mem_rss": 2147483648, "mem_percent": 50.12, "uptime": 864000,
               "cpu_percent": 37.5, "disk_read_bps": 1048576.0, "disk_write_bps": 524288.5,
               "disk_read_iops": 120.2, "disk_write_iops": 80.7, "net0_rx_bps": 12500.3, "net0_tx_bps": 8800.1,
               "net_rx_bps": 12500.3, "net_tx_bps": 8800.1}
    try:
        per_vm_day, per_row = history_growth(root / "growth", 5, metrics)
        query = query_30_days(root / "query", metrics, 200)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    rows_year = {0: 8640, 1: 10080, 2: 4464, 3: 8760}
    year = sum(rows_year[t] * per_row[t] for t in rows_year)
    print_table("History size (SQLite, 13 VM metrics per sample, 10 s)", [
        {"what": "DB growth per VM, first day (pages incl. index)", "value": f"{per_vm_day / 1024:.0f} KiB"},
        *({"what": f"tier {t}: bytes per row (data + ~40 B row/key)", "value": f"{per_row[t]:.0f}"} for t in range(4)),
        {"what": "steady state per VM (all tiers full: 31,944 rows)", "value": f"{year / 2**20:.1f} MiB"},
    ])
    print_table("Series query: one VM, 30 days (auto step), 200 runs",
                [{"what": "History.series", **summary_ms(query)}])
    return 0


if __name__ == "__main__":
    sys.exit(main())
