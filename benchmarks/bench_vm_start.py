"""VM start latency until QEMU answers on QMP (guest boot excluded), each beside the same argv by hand.

Run: ``./dev bench vm_start`` or ``.venv/bin/python benchmarks/bench_vm_start.py [-n N] [--api-n N]``
(Linux with qemu-system-x86_64; TCG). Two tables:

* the QEMU driver: ``QemuDriver.start()`` (supervisor launch: a Python interpreter, double fork,
  state files, status read-back) on an empty SeaBIOS machine, vs Popen + QMP of its argv;
* the API: ``POST /api/v1/vms/{name}/start`` on the in-process app (FastAPI TestClient, a real
  API token, SQLite database and queue, the in-process worker ``bhype serve`` runs on the
  embedded queue) until ``GET /api/v1/vms/{name}`` says ``running`` (the start task records that
  once the driver saw QMP answer), polled every 5 ms, with the start task's queue share
  (created -> picked up by a worker thread, from the task row). The VM is the tiny test guest
  by direct kernel boot (one NIC on user networking, VNC, serial); it is force-stopped through
  the API after each sample, then the same QEMU argv (from ``GET .../show-command``) runs by hand.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from report import percentile, print_table, summary_ms

from bhype_core.drivers.qemu import QemuDriver
from bhype_core.drivers.qmp import QMPClient
from bhype_core.host.runner import LocalRunner
from bhype_core.spec import validate_spec

VMS = "/api/v1/vms"
WAIT = 240.0  # seconds; a loaded 2-core machine
POLL = 0.005  # seconds between status reads: the resolution of the API figure


def by_hand(argv: list[str], qmp: Path) -> float:
    """Spawn ``argv``, wait for QMP, then quit it; the seconds until QMP answered."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with QMPClient(qmp, timeout=30).connect(timeout=30) as client:
        elapsed = time.perf_counter() - started
        client.execute("quit")
    proc.wait(timeout=30)
    return elapsed


def ratio_row(case: str, numerator: list[float], denominator: list[float]) -> dict[str, str]:
    ratio = percentile(numerator, 50) / percentile(denominator, 50)
    tail = percentile(numerator, 99) / percentile(denominator, 99)
    return {"case": case, "n": "", "p50 ms": f"{ratio:.2f}x", "p99 ms": f"{tail:.2f}x", "mean ms": ""}


def driver_case(root: Path, count: int) -> None:
    """``QemuDriver.start()`` vs its argv by hand, ``count`` samples each."""
    driver = QemuDriver(LocalRunner(), run_dir=root / "run", accel="tcg")
    # SeaBIOS without a boot device: QEMU runs, and nothing but QEMU itself is measured.
    spec = validate_spec({"name": "bench", "memory": "128M", "boot": "uefi-csm"})
    vm_dir = root / "bench"
    vm_dir.mkdir(parents=True)
    driver_times, hand_times = [], []
    for _ in range(count):
        started = time.perf_counter()
        driver.start(spec, vm_dir)
        driver_times.append(time.perf_counter() - started)
        driver.force_stop(spec, vm_dir)
    qemu = next(c.argv for c in driver.plan(spec, vm_dir) if c.argv[0] == driver.binary)
    for _ in range(count):
        hand_times.append(by_hand(qemu, vm_dir / "qmp.sock"))
    print_table(
        "QEMU driver start until QEMU answers on QMP (TCG, empty machine, guest boot excluded)",
        [
            {"case": "QemuDriver.start()", **summary_ms(driver_times)},
            {"case": "same argv by hand", **summary_ms(hand_times)},
            ratio_row("ratio driver/by hand", driver_times, hand_times),
        ],
    )


# -- through the API -----------------------------------------------------------------------------


def wait_for(check: Callable[[], Any], what: str, step: float = 0.05) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(step)


class Api:
    """The in-process app (as admin ``root`` with a real token) and helpers for tasks and VMs."""

    def __init__(self, client: Any, headers: dict[str, str]) -> None:
        self.client = client
        self.headers = headers

    def post(self, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.client.post(path, headers=self.headers, **kwargs)
        if response.status_code != 202:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response.json()

    def get(self, path: str) -> dict[str, Any]:
        response = self.client.get(path, headers=self.headers)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text}")
        return response.json()

    def task(self, accepted: dict[str, Any]) -> dict[str, Any]:
        """Wait for the task to end; raise unless it succeeded."""
        path = f"/api/v1/tasks/{accepted['task_id']}"
        task = wait_for(lambda: (t := self.get(path))["state"] not in ("queued", "running") and t, "a task")
        if task["state"] != "succeeded":
            raise RuntimeError(f"task {task['kind']} {task['state']}: {task.get('error') or task}")
        return task

    def state(self, name: str) -> str:
        return self.get(f"{VMS}/{name}")["state"]


def tiny_spec() -> dict[str, Any]:
    """The tiny test guest by direct kernel boot, shaped like the e2e tests' template."""
    from bhype_testimages.tiny_image import tiny_guest_image

    guest = tiny_guest_image()
    return {
        "cpus": 1,
        "memory": "256M",
        "disks": [],
        "nics": [{}],
        "graphics": {"vnc": True},
        "boot": {"mode": "grub", "kernel": str(guest.kernel), "initrd": str(guest.initrd), "cmdline": guest.cmdline},
    }


def stamp(text: str) -> datetime:
    """A task timestamp as the API shows it (ISO 8601)."""
    return datetime.fromisoformat(text)


def qmp_socket(argv: list[str]) -> Path:
    """The first ``-qmp unix:PATH,...`` of a QEMU argv (the supervisor's monitor)."""
    value = argv[argv.index("-qmp") + 1]
    return Path(value.removeprefix("unix:").split(",", 1)[0])


def api_case(root: Path, count: int) -> None:
    """``count`` API start/force-stop cycles, each followed by the same argv by hand."""
    from fastapi.testclient import TestClient

    from bhype_core.api.app import create_app
    from bhype_core.builtins import drivers, models, storage, tasks, vm_tasks
    from bhype_core.db.migrate import upgrade
    from bhype_core.plugins import make_plugin_manager
    from bhype_core.runtime import build_runtime
    from bhype_core.testing import make_settings
    from bhype_core.testing.api_auth import token_headers
    from bhype_core.worker import start_in_process_worker

    plugins = [
        ("core_models", models),
        ("core_storage", storage),
        ("core_drivers", drivers),
        ("core_tasks", tasks),
        ("core_vms", vm_tasks),
    ]
    settings = make_settings(
        root / "data",
        queue={"backend": "sqlite"},
        qemu={"accel": "tcg"},
        vm={"datastores": {"default": {"path": str(root / "ds")}}},
    )
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    app = create_app(runtime=runtime)
    api_times, hand_times, queue_times = [], [], []
    worker = start_in_process_worker(runtime)
    name = "bench-api"
    try:
        with TestClient(app) as client:
            api = Api(client, token_headers(app, "root", "admin"))
            api.task(api.post(VMS, json={"name": name, "spec": tiny_spec()}))
            plan = api.get(f"{VMS}/{name}/show-command")
            qemu = next(c["argv"] for c in plan["commands"] if Path(c["argv"][0]).name.startswith("qemu-system"))
            try:
                for _ in range(count):
                    started = time.perf_counter()
                    accepted = api.post(f"{VMS}/{name}/start")
                    wait_for(lambda: api.state(name) == "running", "the VM running", step=POLL)
                    api_times.append(time.perf_counter() - started)
                    task = api.task(accepted)
                    queue_times.append((stamp(task["picked_up"]) - stamp(task["created"])).total_seconds())
                    api.task(api.post(f"{VMS}/{name}/force-stop"))
                    hand_times.append(by_hand(qemu, qmp_socket(qemu)))
            finally:
                if api.state(name) not in ("stopped", "crashed"):
                    api.task(api.post(f"{VMS}/{name}/force-stop"))
    finally:
        worker.stop(timeout=60)
        runtime.engine.dispose()
    print_table(
        "API start until QEMU answers on QMP (TestClient + in-process worker, TCG, tiny guest, boot excluded)",
        [
            {"case": "POST /vms/{name}/start -> running", **summary_ms(api_times)},
            {"case": "  of which task created -> picked up", **summary_ms(queue_times)},
            {"case": "same argv by hand", **summary_ms(hand_times)},
            ratio_row("ratio API/by hand", api_times, hand_times),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="driver samples per case (default 20)")
    parser.add_argument("--api-n", type=int, default=10, help="API start/force-stop cycles (default 10)")
    args = parser.parse_args(argv)
    if shutil.which("qemu-system-x86_64") is None:
        print("bench_vm_start: needs qemu-system-x86_64", file=sys.stderr)
        return 2
    # Short paths: the VMs' unix sockets must fit sun_path (108 bytes, unix(7)).
    root = Path(tempfile.mkdtemp(prefix="bhype-bench-", dir="/tmp"))
    try:
        if args.n > 0:
            driver_case(root / "driver", args.n)
        if args.api_n > 0:
            api_case(root / "api", args.api_n)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
