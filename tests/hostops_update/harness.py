"""The end-to-end stack of the update tests: the API in the test process (as a real admin
account), a real worker process (:mod:`service_worker`: every installed plugin, the test
services in place of the hostops half), QEMU guests under TCG, and the stand-in tools."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.config import load_settings
from bhype_core.db.migrate import upgrade
from bhype_core.runtime import build_runtime
from bhype_core.testing.api_auth import act_as
from bhype_core.testing.guest_image import GuestImage
from bhype_core.testing.queue import WorkerProcess
from bhype_hostops.update import standin

HERE = Path(__file__).resolve().parent
UPDATE = "/api/v1/hostops/update"
WAIT = 600.0  # seconds; TCG guests on a loaded 2-core machine: a ceiling, not a timing assertion


def config_toml(root: Path, admins: str, update_extra: str = "") -> str:
    return f"""\
[core]
data_dir = "{root / 'data'}"
disabled_plugins = ["hostops"]

[auth]
admin_groups = ["{admins}"]

[queue]
backend = "sqlite"

[tasks]
poll_interval = 0.2
sweep_interval = 1.0

[qemu]
accel = "tcg"

[vm]
templates_dir = "{root / 'templates'}"
stop_timeout = 60

[vm.datastores.default]
path = "{root / 'ds'}"

[hostops_update]
platform = "standin"
standin_dir = "{root / 'standin'}"
services = ["rsyncd"]
vm_stop_timeout = 30
reboot_wait = 300
{update_extra}"""


class ServiceWorker(WorkerProcess):
    """:class:`WorkerProcess` running :mod:`service_worker` instead of the stock worker."""

    def start(self) -> ServiceWorker:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "service_worker.py"), "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=self.env)
        return self


class UpdateHost:
    """The API client (as a real admin), the worker processes, the stand-in's state."""

    def __init__(self, root: Path, client: TestClient, config: Path, runtime: Any = None) -> None:
        self.runtime = runtime
        self.root = root
        self.client = client
        self.config = config
        self.workers: list[ServiceWorker] = []
        self.service_log = root / "services.jsonl"

    def start_worker(self) -> ServiceWorker:
        worker = ServiceWorker(self.config, self.root / f"worker{len(self.workers) + 1}.log",
                               env={"BHYPE_TEST_SERVICE_LOG": str(self.service_log)})
        self.workers.append(worker.start().wait_ready(timeout=120))
        return worker

    def standin(self, change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """The stand-in tools' state, after applying ``change`` to it."""
        state = standin.load(self.root / "standin")
        if change is not None:
            change(state)
            standin.save(self.root / "standin", state)
        return state

    def task(self, task_id: str, *, expect: str | None = "succeeded") -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while (task := self.client.get(f"/api/v1/tasks/{task_id}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"task {task['kind']} still {task['state']}:\n{self.logs()}"
            time.sleep(0.3)
        if expect is not None:
            assert task["state"] == expect, f"{task}\n{self.logs()}"
        return task

    def post(self, path: str, body: Any = None, status: int = 202) -> dict[str, Any]:
        answer = self.client.post(path, json=body)
        assert answer.status_code == status, answer.text
        return answer.json()

    def create(self, name: str, autostart: dict[str, Any]) -> None:
        cmdline = f"console=ttyS0 console=tty0 bhype.hostname={name}"
        spec = {"boot": {"cmdline": cmdline}, "autostart": autostart, "graphics": {"vnc": False}}
        self.task(self.post("/api/v1/vms", {"name": name, "template": "tiny", "spec": spec})["task_id"])

    def vm_state(self, name: str) -> str:
        return self.client.get(f"/api/v1/vms/{name}").json()["state"]

    def vm_dir(self, name: str) -> Path:
        """The VM's private directory (its serial log, saved state …)."""
        from bhype_core.vm.services import open_datastore

        return open_datastore(self.runtime).vm_dir(name)

    def serial(self, name: str) -> str:
        """What the VM's current QEMU logged of its serial port (each QEMU starts the log anew)."""
        try:
            return (self.vm_dir(name) / "serial.log").read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serial(self, name: str, pattern: str) -> re.Match[str]:
        found: list[re.Match[str]] = []
        self.wait_for(lambda: found.append(m) or True if (m := re.search(pattern, self.serial(name))) else False,
                      f"{pattern!r} on the serial port of {name}")
        return found[0]

    def type_serial(self, name: str, text: str) -> None:
        """Type ``text`` into the VM's serial console (its shell reads it)."""
        path = self.client.get(f"/api/v1/vms/{name}").json()["status"]["consoles"]["serial"]["unix"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            sock.sendall(text.encode())
            time.sleep(2)  # QEMU drops what the guest's UART has not taken when the connection closes

    def plan(self) -> dict[str, Any]:
        return self.task(self.post(f"{UPDATE}/plan")["task_id"])["result"]

    def run(self, run_id: int | None = None) -> dict[str, Any]:
        return self.client.get(f"{UPDATE}/runs/{run_id}" if run_id else f"{UPDATE}/runs").json()

    def services(self) -> list[dict[str, Any]]:
        if not self.service_log.exists():
            return []
        return [json.loads(line) for line in self.service_log.read_text().splitlines()]

    def started_vms(self, since: str) -> list[str]:
        """Names of the VMs ``vm.start`` sub-tasks started after task ``since`` was created, oldest first."""
        tasks = self.client.get("/api/v1/tasks", params={"kind": "vm.start", "limit": 100}).json()["tasks"]
        ours = [t for t in tasks if t["parent_id"] == since and t["state"] == "succeeded"]
        return [t["arguments"]["name"] for t in sorted(ours, key=lambda t: t["created"])]

    def wait_worker_gone(self, worker: ServiceWorker) -> int:
        deadline = time.monotonic() + WAIT
        while worker.process.poll() is None:
            assert time.monotonic() < deadline, f"the worker was not stopped by the reboot:\n{self.logs()}"
            time.sleep(0.2)
        return worker.process.returncode

    def wait_for(self, check: Callable[[], Any], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{self.logs()}"
            time.sleep(0.3)

    def logs(self) -> str:
        return "\n".join(w.log_text()[-4000:] for w in self.workers)


@contextmanager
def update_host(tiny_guest: GuestImage, roles: Any, update_extra: str = "") -> Iterator[UpdateHost]:
    """The stack, torn down (VMs powered off, workers stopped, files removed) afterwards.
    ``update_extra``: more ``[hostops_update]`` lines (``vm_suspend = false``)."""
    root = Path(tempfile.mkdtemp(prefix="bh-upd-", dir="/tmp"))  # unix socket paths stay short
    (root / "templates").mkdir()
    (root / "templates" / "tiny.toml").write_text(tiny_guest.template_toml())
    config = root / "bhype.toml"
    config.write_text(config_toml(root, roles.admins.name, update_extra))
    runtime = build_runtime(load_settings(config, environ={}))
    upgrade(runtime)
    app = create_app(runtime=runtime)
    admin = roles.admin()
    act_as(app, admin.name, "admin")
    with TestClient(app) as client:
        host = UpdateHost(root, client, config, runtime)
        host.start_worker()
        try:
            yield host
        finally:
            _power_off(client, runtime)
            for worker in host.workers:
                if worker.process and worker.process.poll() is None:
                    worker.stop()
            runtime.engine.dispose()
            shutil.rmtree(root, ignore_errors=True)


def _power_off(client: TestClient, runtime: Any) -> None:
    """Whatever a failed test left running is powered off (by its supervisor, via the driver)."""
    from bhype_core.drivers.select import select_driver
    from bhype_core.spec import validate_spec
    from bhype_core.vm.services import open_datastore

    driver = select_driver(runtime)
    for vm in client.get("/api/v1/vms").json()["vms"]:
        detail = client.get(f"/api/v1/vms/{vm['name']}").json()
        try:
            driver.force_stop(validate_spec(detail["spec"]), open_datastore(runtime).vm_dir(vm["name"]))
        except Exception:  # noqa: BLE001 - best effort cleanup
            pass
