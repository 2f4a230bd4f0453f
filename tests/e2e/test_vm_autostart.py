"""Host boot and shutdown with three real guests: ``bhype vm autostart`` starts the autostart
VMs in order with their delays, ``bhype vm shutdown-all`` stops them in reverse order and forces
off the one that ignores ACPI once its own timeout passes. Same stack as test_vm_lifecycle.py:
the API in this process, a real worker process, QEMU under TCG, the tiny guest."""

from __future__ import annotations

import time
from typing import Any

import pytest
from test_vm_lifecycle import VMS, Host, serial_text, wait_for
from test_vm_lifecycle import host as host  # noqa: F401  (the fixture, re-exported for this module)

from bhype_core.commands.autostart import run_autostart, run_shutdown_all
from bhype_core.commands.vm_client import FINAL_TASK_STATES
from bhype_core.errors import BhypeError, TaskFailed
from bhype_core.testing.guest_image import READY_MARKER

pytestmark = [pytest.mark.guest, pytest.mark.slow]


class ClientApi:
    """The CLI's API client protocol over the test's in-process API."""

    def __init__(self, host: Host) -> None:
        self.client = host.client

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        params = {key: value for key, value in query.items() if value is not None}
        answer = self.client.request(method, path, json=body, params=params)
        if answer.status_code >= 400:
            raise BhypeError(f"{method} {path}: HTTP {answer.status_code} {answer.text}")
        return answer.json()

    def wait_task(self, task_id: str, timeout: float = 600.0, on_progress: Any = None, interval: float = 0.2) -> dict:
        deadline = time.monotonic() + timeout
        while (task := self.request("GET", f"/api/v1/tasks/{task_id}"))["state"] not in FINAL_TASK_STATES:
            assert time.monotonic() < deadline, f"task {task_id} still {task['state']}"
            time.sleep(interval)
        if task["state"] != "succeeded":
            raise TaskFailed(f"task {task['kind']} {task['state']}: {task.get('error')}", task_id=task_id)
        return task


def create(host: Host, name: str, autostart: dict[str, Any], *words: str) -> None:
    cmdline = " ".join(["console=ttyS0 console=tty0", f"bhype.hostname={name}", *words])
    spec = {"boot": {"cmdline": cmdline}, "autostart": autostart, "graphics": {"vnc": False}}
    answer = host.client.post(VMS, json={"name": name, "template": "tiny", "spec": spec})
    assert answer.status_code == 202, answer.text
    host.task(answer.json())


def test_autostart_in_order_with_delays_and_shutdown_all_in_reverse(host: Host) -> None:
    create(host, "third", {"enabled": True, "order": 30})
    create(host, "first", {"enabled": True, "order": 10, "delay": 2})
    create(host, "second", {"enabled": True, "order": 20, "stop_timeout": 5}, "bhype.ignore_acpi=1")
    create(host, "manual", {"enabled": False})
    api = ClientApi(host)
    lines: list[str] = []
    slept: list[float] = []

    started = run_autostart(api, echo=lines.append, sleep=lambda s: (slept.append(s), time.sleep(s)))
    assert all(o["outcome"] == "started" for o in started), lines
    assert [(o["vm"], o["outcome"]) for o in started] == [("first", "started"), ("second", "started"),
                                                          ("third", "started")]
    assert slept == [2]  # first's delay, before second was started
    assert host.vm("manual")["state"] == "stopped"
    for name in ("first", "second", "third"):
        vm = host.vm(name)
        assert vm["state"] == "running"
        wait_for(lambda vm=vm, name=name: f"{READY_MARKER} hostname={name}" in serial_text(vm), f"{name} ready")
    assert run_autostart(api, echo=lines.append)[0]["outcome"] == "already running"

    stopped = run_shutdown_all(api, timeout=90, echo=lines.append)
    assert [(o["vm"], o["outcome"]) for o in stopped] == [("third", "stopped"), ("second", "forced"),
                                                          ("first", "stopped")]
    assert "second: ACPI shutdown, forced off after 5 s" in lines
    assert "second: forced off: it ignored the ACPI shutdown" in lines
    for name in ("first", "second", "third"):
        assert host.vm(name)["state"] == "stopped"
    assert "BHYPE-GUEST-ACPI-POWEROFF" in serial_text(host.vm("first"))
    assert "BHYPE-GUEST-ACPI-POWEROFF" not in serial_text(host.vm("second"))
