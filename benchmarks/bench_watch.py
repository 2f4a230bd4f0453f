"""The ``vm.state-files`` watcher's tick with 1,000 VMs: what the worker pays every 2 s to notice
a crash within seconds (one database query plus one ``stat`` per VM), and a tick that finds one
changed state file and refreshes that VM through the driver.

Run: ``./dev bench watch`` or ``.venv/bin/python benchmarks/bench_watch.py [-n N] [--vms V]``.
The state files are written as a supervisor writes them (``write_json``, atomically); no
hypervisor runs, so the refreshed VM reads as one whose supervisor is gone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench_vm_list import PLUGINS, populate
from report import print_table, summary_ms

from bhype_core.db.migrate import upgrade
from bhype_core.drivers.state import VMFiles, write_json
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_core.vm.services import open_datastore
from bhype_core.vm.watch import StateFileWatch


def state_files(runtime, vms: int) -> list[Path]:
    store = open_datastore(runtime, "default")
    paths = []
    for index in range(vms):
        vm_dir = store.vm_dir(f"vm{index:04d}")
        vm_dir.mkdir(parents=True, exist_ok=True)
        path = VMFiles(vm_dir).state
        write_json(path, {"state": "stopped", "supervisor_pid": None, "hypervisor_pid": None, "history": []})
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50, help="ticks per case (default 50)")
    parser.add_argument("--vms", type=int, default=1000, help="VM records (default 1000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
        runtime = build_runtime(make_settings(Path(directory)),
                                make_plugin_manager(load_entrypoints=False, plugins=PLUGINS))
        upgrade(runtime)
        populate(runtime, args.vms)
        paths = state_files(runtime, args.vms)
        watch = StateFileWatch(runtime)
        watch()  # the first look
        quiet, one_changed = [], []
        for index in range(args.n):
            started = time.perf_counter()
            assert watch() == []
            quiet.append(time.perf_counter() - started)
            write_json(paths[index], {"state": "stopped", "detail": f"powered off {index}", "history": []})
            started = time.perf_counter()
            assert watch() == [f"vm{index:04d}"]
            one_changed.append(time.perf_counter() - started)
        runtime.engine.dispose()
    print_table(f"vm.state-files watcher tick, {args.vms} VMs (SQLite)", [
        {"tick": "nothing changed", **summary_ms(quiet)},
        {"tick": "one state file changed (that VM refreshed)", **summary_ms(one_changed)},
    ])
    return 0


if __name__ == "__main__":
    sys.exit(main())
