"""VM start latency until QEMU answers on QMP (guest boot excluded), each beside the same argv by hand.

Run: ``./dev bench vm_start`` or ``.venv/bin/python benchmarks/bench_vm_start.py [-n N] [--api-n N]``
(Linux with qemu-system-x86_64; TCG). Two tables:

* the QEMU driver: ``QemuDriver.start()`` (supervisor launch: a Python interpreter, double fork,
  state files, status read-back) on an empty SeaBIOS machine, vs Popen + QMP of its argv;
* the API: ``POST /api/v1/vms/{name}/start`` on the in-process app (FastAPI TestClient, a real
  API token, the in-process worker ``bhype serve`` runs) until the start task recorded the VM
  ``running`` (once the driver saw QMP answer): the VM row's ``updated`` minus the POST's time,
  read by ``GET /api/v1/vms/{name}`` polled every 25 ms (also shown: when a poll saw it), with
  the start task's queue share (created -> picked up by a worker thread, from the task
  row), on the embedded default (SQLite database and queue) and on Redis + MariaDB
  (``--backends``; skipped with a note when either server does not answer). The VM is the tiny
  test guest by direct kernel boot (one NIC on user networking, VNC, serial); it is
  force-stopped through the API after each sample, then the same QEMU argv (from
  ``GET .../show-command``) runs by hand.

The supervisor is forked by the worker's pre-started launcher (``drivers/launcher.py``, issue
15); ``--exec`` measures the driver with the former exec'd supervisor beside it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import percentile, print_table, summary_ms

from bhype_core.drivers.qemu import QemuDriver
from bhype_core.drivers.qmp import QMPClient
from bhype_core.host.runner import LocalRunner
from bhype_core.spec import validate_spec

VMS = "/api/v1/vms"
WAIT = 240.0  # seconds; a loaded 2-core machine
# Seconds between status reads. The API figure is the VM row's ``updated`` (the moment the
# start task recorded "running") minus the POST's time, so the reads need not be frequent:
# reads every 5 ms (the former figure) took a core's share from the start they measured.
POLL = 0.025


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


def driver_case(root: Path, count: int, exec_too: bool) -> None:
    """``QemuDriver.start()`` vs its argv by hand, ``count`` samples each, interleaved (a
    loaded machine's swings hit both alike); with ``exec_too`` also the exec'd supervisor."""
    drivers = {"launcher": QemuDriver(LocalRunner(), run_dir=root / "run", accel="tcg")}
    if exec_too:
        drivers["exec"] = QemuDriver(LocalRunner(), run_dir=root / "run", accel="tcg", launcher=False)
    drivers["launcher"].warm_up()  # what the worker does at start-up
    # SeaBIOS without a boot device: QEMU runs, and nothing but QEMU itself is measured.
    spec = validate_spec({"name": "bench", "memory": "128M", "boot": "uefi-csm"})
    vm_dir = root / "bench"
    vm_dir.mkdir(parents=True)
    times: dict[str, list[float]] = {name: [] for name in drivers}
    hand_times = []
    some = drivers["launcher"]
    qemu = next(c.argv for c in some.plan(spec, vm_dir) if c.argv[0] == some.binary)
    for _ in range(count):
        for name, driver in drivers.items():
            started = time.perf_counter()
            driver.start(spec, vm_dir)
            times[name].append(time.perf_counter() - started)
            driver.force_stop(spec, vm_dir)
        hand_times.append(by_hand(qemu, vm_dir / "qmp.sock"))
    rows = [{"case": "QemuDriver.start() (launcher)", **summary_ms(times["launcher"])}]
    if exec_too:
        rows.append({"case": "QemuDriver.start() (exec'd supervisor)", **summary_ms(times["exec"])})
    rows += [{"case": "same argv by hand", **summary_ms(hand_times)},
             ratio_row("ratio driver/by hand", times["launcher"], hand_times)]
    if exec_too:
        rows.append(ratio_row("ratio exec'd/by hand", times["exec"], hand_times))
    print_table("QEMU driver start until QEMU answers on QMP (TCG, empty machine, guest boot excluded)", rows)


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
    """A timestamp as the API shows it (ISO 8601; UTC when it carries no offset)."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def qmp_socket(argv: list[str]) -> Path:
    """The first ``-qmp unix:PATH,...`` of a QEMU argv (the supervisor's monitor)."""
    value = argv[argv.index("-qmp") + 1]
    return Path(value.removeprefix("unix:").split(",", 1)[0])


def backend_sections(name: str, cleanup: list[Callable[[], Any]]) -> dict[str, dict[str, Any]] | None:
    """Settings sections for ``sqlite`` (the embedded default) or ``redis`` (Redis queue,
    MariaDB database); None (with a note) when the servers do not answer."""
    if name == "sqlite":
        return {"queue": {"backend": "sqlite"}}
    from bhype_core.testing.database import MariaDBDatabases, mariadb_server_url
    from bhype_core.testing.queue import delete_keys, redis_server_url

    prefix = f"bhype_bench_{secrets.token_hex(4)}"
    try:
        databases = MariaDBDatabases(mariadb_server_url())
        url = databases.create()
        delete_keys(redis_server_url(), prefix)
    except Exception as exc:  # noqa: BLE001 - a benchmark note, not a failure
        print(f"\nAPI case on Redis + MariaDB skipped: {type(exc).__name__}: {exc}")
        return None
    cleanup += [databases.drop_all, lambda: delete_keys(redis_server_url(), prefix)]
    return {"queue": {"backend": "redis", "name": prefix},
            "core": {"database_url": url, "redis_url": redis_server_url()}}


def api_case(root: Path, count: int, backend: str = "sqlite") -> None:
    """``count`` API start/force-stop cycles on ``backend``, each followed by the same argv by hand."""
    cleanup: list[Callable[[], Any]] = []
    try:
        sections = backend_sections(backend, cleanup)
        if sections is not None:
            _api_case(root, count, backend, sections)
    finally:
        for step in reversed(cleanup):
            step()


def _api_case(root: Path, count: int, backend: str, sections: dict[str, dict[str, Any]]) -> None:
    from fastapi.testclient import TestClient

    from bhype_core.api.app import create_app
    from bhype_core.builtins import drivers, models, storage, tasks, vm_tasks
    from bhype_core.db.migrate import upgrade
    from bhype_core.plugins import make_plugin_manager
    from bhype_core.runtime import build_runtime
    from bhype_core.tasks.worker import start_in_process_worker
    from bhype_core.testing import make_settings
    from bhype_core.testing.api_auth import token_headers

    plugins = [
        ("core_models", models),
        ("core_storage", storage),
        ("core_drivers", drivers),
        ("core_tasks", tasks),
        ("core_vms", vm_tasks),
    ]
    settings = make_settings(
        root / "data",
        qemu={"accel": "tcg"},
        vm={"datastores": {"default": {"path": str(root / "ds")}}},
        **sections,
    )
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    app = create_app(runtime=runtime)
    api_times, seen_times, hand_times, queue_times = [], [], [], []
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
                    posted = datetime.now(UTC)
                    started = time.perf_counter()
                    accepted = api.post(f"{VMS}/{name}/start")
                    vm = wait_for(lambda: (v := api.get(f"{VMS}/{name}"))["state"] == "running" and v,
                                  "the VM running", step=POLL)
                    seen_times.append(time.perf_counter() - started)
                    api_times.append((stamp(vm["updated"]) - posted).total_seconds())
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
    where = {"sqlite": "SQLite database and queue", "redis": "Redis queue, MariaDB database"}[backend]
    print_table(
        f"API start until QEMU answers on QMP ({where}; TestClient + in-process worker, TCG, tiny guest)",
        [
            {"case": "POST /vms/{name}/start -> recorded running", **summary_ms(api_times)},
            {"case": "  of which task created -> picked up", **summary_ms(queue_times)},
            {"case": f"  seen by GET polled every {POLL * 1000:g} ms", **summary_ms(seen_times)},
            {"case": "same argv by hand", **summary_ms(hand_times)},
            ratio_row("ratio API/by hand", api_times, hand_times),
        ],
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="driver samples per case (default 20)")
    parser.add_argument("--api-n", type=int, default=10, help="API start/force-stop cycles (default 10)")
    parser.add_argument("--backends", default="sqlite,redis", help="API case: comma-separated sqlite, redis")
    parser.add_argument("--exec", action="store_true", help="driver case: also the exec'd supervisor")
    args = parser.parse_args(argv)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if shutil.which("qemu-system-x86_64") is None:
        print("bench_vm_start: needs qemu-system-x86_64", file=sys.stderr)
        return 2
    # Short paths: the VMs' unix sockets must fit sun_path (108 bytes, unix(7)).
    root = Path(tempfile.mkdtemp(prefix="bhype-bench-", dir="/tmp"))
    try:
        if args.n > 0:
            driver_case(root / "driver", args.n, args.exec)
        for backend in [b.strip() for b in args.backends.split(",") if b.strip()] if args.api_n > 0 else []:
            api_case(root / f"api-{backend}", args.api_n, backend)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"\nload average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
