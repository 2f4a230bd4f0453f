"""What VM records cost at rest: the ``vm.state-files`` watcher's tick (every 2 s: one query plus
one ``stat`` per VM that is not stopped), a tick that finds one changed state file and refreshes
that VM, and the minutely ``vm.reconcile`` pass (``--running`` VMs asked about through the
driver each pass; the stopped ones read one slice per pass), with the share of one core they add
up to at their intervals.

Run: ``./dev bench watch`` or ``.venv/bin/python benchmarks/bench_watch.py [-n N] [--vms V]
[--running R]``. The state files are written as a supervisor writes them (``write_json``,
atomically). At rest, each running VM has a live process with a supervisor's command line
recorded in its state file, so the driver finds it running and nothing changes; the worst case
has no such process, so each "running" row is found stopped and rewritten every pass (set
running again before each pass, untimed).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_vm_list import PLUGINS, populate
from report import print_table, summary_ms
from sqlalchemy import update

from bhype_core.db.migrate import upgrade
from bhype_core.drivers.state import VMFiles, supervisor_markers, write_json
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_core.vm.models import VM
from bhype_core.vm.reconcile import refresh_states
from bhype_core.vm.services import open_datastore
from bhype_core.vm.watch import StateFileWatch

WATCH_INTERVAL = 2.0
RECONCILE_INTERVAL = 60.0


def state_files(runtime, vms: int) -> list[Path]:
    store = open_datastore(runtime, "default")
    paths = []
    for index in range(vms):
        vm_dir = store.vm_dir(f"vm{index:05d}")
        vm_dir.mkdir(parents=True, exist_ok=True)
        path = VMFiles(vm_dir).state
        write_json(path, {"state": "stopped", "supervisor_pid": None, "hypervisor_pid": None, "history": []})
        paths.append(path)
    return paths


@contextlib.contextmanager
def live_supervisors(paths: list[Path]):
    """A live process per state file whose command line carries a supervisor's markers (module
    name and VM directory), recorded as the VM's supervisor, so the driver finds each VM running
    exactly as it would a real one (a shell blocked reading a pipe: ~1 MB each)."""
    processes = []
    try:
        for path in paths:
            process = subprocess.Popen(["sh", "-c", "read line", *supervisor_markers(path.parent)],
                                       stdin=subprocess.PIPE)
            processes.append(process)
            write_json(path, {"state": "running", "supervisor_pid": process.pid, "hypervisor_pid": None,
                              "history": []})
        yield processes
    finally:
        for process in processes:
            process.kill()
            process.wait()


def set_running(runtime, running: int) -> None:
    """The first ``running`` records say running, the others stopped."""
    with runtime.engine.begin() as connection:
        connection.execute(update(VM).values(state="stopped"))
        connection.execute(update(VM).where(VM.name < f"vm{running:05d}").values(state="running", state_detail=""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="ticks per case (default 20)")
    parser.add_argument("--passes", type=int, default=10,
                        help="reconcile passes (default 10: each slice of the stopped VMs once)")
    parser.add_argument("--vms", type=int, default=10000, help="VM records (default 10000)")
    parser.add_argument("--running", type=int, default=200, help="of them running (default 200)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
        runtime = build_runtime(make_settings(Path(directory)),
                                make_plugin_manager(load_entrypoints=False, plugins=PLUGINS))
        upgrade(runtime)
        populate(runtime, args.vms)
        paths = state_files(runtime, args.vms)
        set_running(runtime, args.running)
        watch = StateFileWatch(runtime)
        watch()  # the first look
        quiet, one_changed = [], []
        for index in range(args.n):
            started = time.perf_counter()
            assert watch() == []
            quiet.append(time.perf_counter() - started)
            write_json(paths[index], {"state": "stopped", "detail": f"powered off {index}", "history": []})
            started = time.perf_counter()
            assert watch() == [f"vm{index:05d}"]
            one_changed.append(time.perf_counter() - started)
        passes = []
        refresh_states(runtime, lambda *a, **k: None, spread=True)  # the first pass after start: every VM once
        for _ in range(args.passes):
            set_running(runtime, args.running)
            started = time.process_time()
            refresh_states(runtime, lambda *a, **k: None, spread=True)  # as the minutely job runs it
            passes.append(time.process_time() - started)
        with live_supervisors(paths[:args.running]):
            set_running(runtime, args.running)
            refresh_states(runtime, lambda *a, **k: None, spread=True)  # settles: nothing to change after it
            steady = []
            for _ in range(args.passes):
                started = time.process_time()
                result = refresh_states(runtime, lambda *a, **k: None, spread=True)
                steady.append(time.process_time() - started)
                assert result["changed"] == {}, result["changed"]
        runtime.engine.dispose()
    tick, pass_ = summary_ms(quiet), summary_ms(steady)
    share = (float(tick["p50 ms"]) / 1000 / WATCH_INTERVAL + float(pass_["p50 ms"]) / 1000 / RECONCILE_INTERVAL) * 100
    print_table(f"at rest: {args.vms} VM records, {args.running} running (SQLite)", [
        {"what": "watcher tick, nothing changed (wall)", **tick},
        {"what": "watcher tick, one state file changed (that VM refreshed, wall)", **summary_ms(one_changed)},
        {"what": f"reconcile pass at rest ({args.running} live supervisors asked, the rest quiet; CPU)", **pass_},
        {"what": f"reconcile pass, all {args.running} found stopped and rewritten (worst case; CPU)",
         **summary_ms(passes)},
    ])
    print(f"\nshare of one core at rest: {share:.2f}% (a tick every {WATCH_INTERVAL:g} s, a pass every "
          f"{RECONCILE_INTERVAL:g} s); the minutely pass is a spike of {float(pass_['p99 ms']) / 10:.1f}% of a "
          "core over one second (p99)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
