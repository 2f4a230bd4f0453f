"""Cost at rest (issue 15): CPU and RSS of ``bhype serve`` (with its in-process worker: the
embedded default) doing nothing, with 0 and 10,000 VM records of which 200 run, against a bare
uvicorn app and a bare huey consumer idling beside it (the anchors, same run, same window).

The 200 "running" VMs are stand-in processes whose command lines carry the supervisor's
markers and the instance name (the hypervisor's), named by their state files as a supervisor
writes them (as both supervisor and hypervisor), so the driver reads them as running and the
monitor measures each as a VM. CPU is sampled from ``/proc/PID/stat`` every second; the window covers two minutely
``vm.reconcile`` runs (each a Task row: its cost counts). Linux only.

Run: ``./dev bench rest`` or ``.venv/bin/python benchmarks/bench_rest.py [--window S] [--vms V]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_api import answers, start, stop, toml_table
from bench_vm_list import populate, rss_mb
from report import print_table
from sqlalchemy import update

from bhype_core.config import load_settings
from bhype_core.db.migrate import upgrade
from bhype_core.drivers.state import SUPERVISOR_MODULE, VMFiles, write_json
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.spec import instance_name
from bhype_core.testing.ports import free_port
from bhype_core.vm.models import VM
from bhype_core.vm.services import open_datastore

HERE = Path(__file__).resolve().parent
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def sample(pids: dict[str, int], window: float) -> dict[str, tuple[float, float]]:
    """Per process: (mean % of a core over the window, highest 1-second %)."""
    last = {name: cpu_seconds(pid) for name, pid in pids.items()}
    first, peak = dict(last), dict.fromkeys(pids, 0.0)
    began = time.monotonic()
    while time.monotonic() - began < window:
        time.sleep(1.0)
        for name, pid in pids.items():
            now = cpu_seconds(pid)
            peak[name] = max(peak[name], (now - last[name]) * 100)
            last[name] = now
    spent = time.monotonic() - began
    return {name: ((last[name] - first[name]) / spent * 100, peak[name]) for name in pids}


def stand_ins(runtime, count: int) -> list[subprocess.Popen]:
    """``count`` VMs made "running": a stand-in supervisor process each, and its state file."""
    store = open_datastore(runtime, "default")
    processes = []
    with runtime.engine.begin() as connection:
        for index in range(count):
            name = f"vm{index:05d}"
            vm_dir = store.create_vm_dir(name)
            # Its own session (process group), so stopping it ends its ``sleep`` too; no
            # inherited stdout, so an orphan could never hold the caller's pipe open.
            # One process plays both: its command line carries the supervisor's markers and the
            # instance name (the hypervisor's), so the monitor measures it as a VM each tick.
            process = subprocess.Popen(["sh", "-c", "sleep 100000; :", SUPERVISOR_MODULE, str(vm_dir),
                                        instance_name(name)],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL, start_new_session=True)
            processes.append(process)
            write_json(VMFiles(vm_dir).state, {"state": "running", "supervisor_pid": process.pid,
                                               "hypervisor_pid": process.pid, "detail": "", "restarts": 0})
            connection.execute(update(VM).where(VM.name == name).values(state="running"))
        connection.execute(update(VM).where(VM.name >= f"vm{count:05d}").values(state="stopped"))
    return processes


def start_up_done(database: Path, limit: float = 600.0) -> None:
    """Wait until tasks have run and none is queued or running (the jobs a worker submits at start), at most
    ``limit`` seconds: under load a fixed settle time let the start-up pass into the window."""
    import sqlite3

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        connection = sqlite3.connect(database, timeout=30)
        try:
            busy, done = connection.execute(
                "SELECT sum(state IN ('queued', 'running')), sum(state NOT IN ('queued', 'running')) FROM core_task"
            ).fetchone()
        except sqlite3.OperationalError:  # the table is not there yet
            busy, done = 1, 0
        finally:
            connection.close()
        if not busy and done:  # the worker submitted its start-up jobs and they all ended
            return
        time.sleep(2.0)


def measure(directory: Path, vms: int, running: int, window: float, settle: float,
            profile: Path | None = None) -> list[dict[str, str]]:
    work = directory / f"vms{vms}"
    work.mkdir()
    port, anchor_port = free_port(), free_port()
    config = work / "bhype.toml"
    config.write_text(toml_table("core", {"data_dir": str(work / "data"), "log_level": "warning"})
                      + toml_table("api", {"host": "127.0.0.1", "port": port})
                      + toml_table("vm", {"default_datastore": "default"})
                      + f'[vm.datastores.default]\npath = "{work / "ds"}"\n')
    runtime = build_runtime(load_settings(config), make_plugin_manager())
    upgrade(runtime)
    processes = []
    if vms:
        populate(runtime, vms)
        processes = stand_ins(runtime, running)
    runtime.engine.dispose()
    bhype = str(Path(sys.executable).with_name("bhype"))
    command = [bhype, "--config", str(config), "serve"]
    if profile is not None:  # where its CPU goes, sampled over the same window (cpu_sampler.py)
        profile.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, str(HERE / "cpu_sampler.py"), str(profile / f"serve-{vms}.txt"),
                   "--delay", str(settle), "--", *command[1:]]
    server = start(command, work / "serve.log",
                   lambda: answers(f"http://127.0.0.1:{port}/api/v1/health"), "bhype serve")
    anchor_db = f"sqlite:///{work / 'data' / 'bhype.sqlite3'}"
    anchor_api = start([sys.executable, str(HERE / "anchor_vm_list.py"), anchor_db, str(anchor_port)],
                       work / "anchor.log", lambda: answers(f"http://127.0.0.1:{anchor_port}/vms?limit=1"), "anchor")
    with open(work / "huey.log", "wb") as log:
        anchor_huey = subprocess.Popen([sys.executable, str(HERE / "anchor_huey.py"), "consume",
                                        f"sqlite:{work / 'anchor-huey.sqlite3'}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        start_up_done(work / "data" / "bhype.sqlite3")  # the run-at-start jobs (the first reconcile
        time.sleep(settle)  # validates every spec once): not what "at rest" means
        pids = {"bhype serve + worker": server.pid, "bare uvicorn": anchor_api.pid, "bare huey": anchor_huey.pid}
        cpu = sample(pids, window)
        rows = [{"VM records": str(vms), "running": str(running if vms else 0), "process": name,
                 "CPU % of a core": f"{cpu[name][0]:.2f}", "peak 1 s %": f"{cpu[name][1]:.1f}",
                 "RSS MB": f"{rss_mb(pid):.0f}"} for name, pid in pids.items()]
    finally:
        stop(server)
        stop(anchor_api)
        stop(anchor_huey)
        for process in processes:
            os.killpg(process.pid, signal.SIGKILL)  # the stand-in and its sleep
            process.wait()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=float, default=130.0, help="seconds sampled (default 130: two reconciles)")
    parser.add_argument("--settle", type=float, default=60.0,
                        help="seconds after the start-up tasks ended before sampling")
    parser.add_argument("--vms", type=int, default=10000, help="VM records (default 10000)")
    parser.add_argument("--running", type=int, default=200, help="of which running (default 200)")
    parser.add_argument("--only", type=int, default=None, help="measure only this many VM records (e.g. 0)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="also write where serve's CPU goes (cpu_sampler.py) to DIR/serve-<records>.txt")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("bench_rest: reads /proc (Linux only)", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
        for vms in (0, args.vms) if args.only is None else (args.only,):
            rows += measure(Path(directory), vms, args.running, args.window, args.settle, args.profile)
    print_table(f"at rest over {args.window:g} s: CPU (mean, peak second) and RSS; anchors idle alongside", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
