"""The host update workflow end to end on Linux: real QEMU guests under TCG, a real worker
process, the stand-in installer and reboot (:mod:`bhype_hostops.update.standin`: the documented
tools' output; the reboot kills the worker mid-workflow, the test starts a new one as rc.d
would). Proves exactly the VMs that ran come back, in autostart order, and nothing else starts;
a host back on another boot environment stops the run; a failed step resumes; a stopped run's
VMs come back without updating."""

from __future__ import annotations

import re

import pytest

from bhype_core.testing.guest_image import READY_MARKER

from .harness import UPDATE, update_host

TICKS = re.compile(r"TICK (\d+) ([0-9a-f-]{36})")
LOOP = ('i=0; while :; do i=$((i+1)); echo "TICK $i $(cat /proc/sys/kernel/random/boot_id)"; '
        "sleep 1; done &\n")

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def _pending(state: dict) -> None:
    state["pending"]["base"] = ["14.3-RELEASE-p2"]
    state["pending"]["packages"] = [{"name": "curl", "from": "8.4.0", "to": "8.6.0"}]


def test_update_with_reboot_brings_back_exactly_the_running_vms_in_order(tiny_guest, bhype_roles) -> None:
    # The ACPI shutdown path (suspend off); the suspend path is the next test.
    with update_host(tiny_guest, bhype_roles, "vm_suspend = false\n") as host:
        host.standin(_pending)
        host.create("beta", {"enabled": True, "order": 20})
        host.create("alpha", {"enabled": False, "order": 10, "delay": 30})  # ran by hand: still brought back
        host.create("gamma", {"enabled": True, "order": 5})  # stopped: stays stopped
        for name in ("beta", "alpha"):
            host.task(host.post(f"/api/v1/vms/{name}/start")["task_id"])

        plan = host.plan()
        assert plan["problems"] == []
        assert plan["stop_order"] == ["beta", "alpha"]
        assert plan["start_order"] == ["alpha", "beta"]
        assert plan["left_alone"] == ["gamma"]
        assert plan["services"] == ["rsyncd"]
        assert plan["boot_environment"]["booted"] == "default"
        assert plan["boot_environment"]["expected_after_reboot"] == "default"
        assert plan["suspend_supported"] is True and plan["vm_actions"] == {"beta": "shutdown", "alpha": "shutdown"}
        assert host.post(f"{UPDATE}/run", {"confirm": False}, status=422)

        first = host.workers[0]
        task_id = host.post(f"{UPDATE}/run", {"confirm": True})["task_id"]
        host.wait_worker_gone(first)  # the stand-in reboot: the worker is killed mid-workflow
        state = host.standin()
        assert state["log"][-1] == "reboot" and state["pending"] == {"base": [], "packages": []}
        run = host.run()[0]
        assert (run["state"], run["step"]) == ("running", "reboot")
        assert [s["step"] for s in run["steps"]] == ["boot_environment", "stop_vms", "stop_services", "install"]
        for name in ("alpha", "beta", "gamma"):
            assert host.vm_state(name) == "stopped"

        second = host.start_worker()  # the host is back: bHype starts, the worker resumes the run
        # Killed again while it waits alpha's autostart delay before beta: the next worker goes on
        # with beta and never starts alpha a second time.
        host.wait_for(lambda: host.run(run["id"])["data"].get("vms_started") == ["alpha"], "alpha back")
        second.process.kill()
        host.wait_worker_gone(second)
        assert host.vm_state("beta") == "stopped"
        host.start_worker()
        task = host.task(task_id)
        run = host.run(run["id"])
        assert run["state"] == "done", run
        assert [s["step"] for s in run["steps"]] == [
            "boot_environment", "stop_vms", "stop_services", "install", "reboot",
            "verify_boot_environment", "start_vms", "start_services", "check"]
        assert run["data"]["vms_started"] == ["alpha", "beta"]
        assert host.started_vms(task_id) == ["alpha", "beta"]
        assert (host.vm_state("alpha"), host.vm_state("beta"), host.vm_state("gamma")) == (
            "running", "running", "stopped")
        assert [(e["action"], e["name"]) for e in host.services()] == [
            ("stop", "rsyncd"), ("start", "rsyncd"), ("check", None)]
        assert run["data"]["be_created"] in [be["name"] for be in host.standin()["environments"]]
        messages = [line["message"] for line in task["log"]]
        assert "base: Installing updates... done." in messages
        assert "packages: [1/1] Upgrading curl from 8.4.0 to 8.6.0..." in messages
        assert any("resuming host update run" in m for m in messages)


def test_suspended_vms_are_resumed_after_the_reboot_and_a_failed_suspend_shuts_down(tiny_guest, bhype_roles) -> None:
    """``keep`` counts on its serial port; it is suspended, the worker is killed by the reboot,
    and after it ``keep`` is resumed: the count goes on in the same boot, init never runs again.
    ``stuck``'s state file cannot be written (a directory is in the way): its suspend fails, it is
    shut down by ACPI instead and boots afresh after the reboot."""
    with update_host(tiny_guest, bhype_roles) as host:
        host.standin(_pending)
        host.create("keep", {"enabled": True, "order": 10})
        host.create("stuck", {"enabled": True, "order": 20})
        for name in ("keep", "stuck"):
            host.task(host.post(f"/api/v1/vms/{name}/start")["task_id"])
            host.wait_serial(name, READY_MARKER)

        def counting() -> bool:
            if not TICKS.search(host.serial("keep")):
                host.type_serial("keep", LOOP)  # a shell still starting swallows what is typed
            return len(TICKS.findall(host.serial("keep"))) >= 3

        host.wait_for(counting, "keep's counter")
        (host.vm_dir("stuck") / "saved-state").mkdir()
        plan = host.plan()
        assert plan["suspend_supported"] is True and plan["vm_actions"] == {"keep": "suspend", "stuck": "suspend"}
        assert plan["stop_order"] == ["stuck", "keep"]

        first = host.workers[0]
        task_id = host.post(f"{UPDATE}/run", {"confirm": True})["task_id"]
        host.wait_worker_gone(first)  # the stand-in reboot
        before = [(int(n), boot) for n, boot in TICKS.findall(host.serial("keep"))]
        run = host.run()[0]
        assert run["data"]["vms_stopped"] == {"stuck": "stopped", "keep": "suspended"}
        keep = host.client.get("/api/v1/vms/keep").json()
        assert keep["state"] == "stopped" and keep["status"]["suspended"]["size"] > 0
        assert (host.vm_dir("keep") / "saved-state").is_file()

        host.start_worker()
        task = host.task(task_id)
        run = host.run(run["id"])
        assert run["state"] == "done", run
        assert run["data"]["vms_started"] == ["keep", "stuck"] and run["data"]["vms_resumed"] == ["keep"]
        assert (host.vm_state("keep"), host.vm_state("stuck")) == ("running", "running")
        last, boot_id = before[-1]
        host.wait_serial("keep", rf"TICK {last + 2} ")
        after = [(int(n), boot) for n, boot in TICKS.findall(host.serial("keep"))]
        assert after[0][0] in (last, last + 1) and {boot for _, boot in after} == {boot_id}, (before[-2:], after[:2])
        assert READY_MARKER not in host.serial("keep")  # resumed: init never ran again
        host.wait_serial("stuck", READY_MARKER)  # booted afresh
        assert not (host.vm_dir("keep") / "saved-state").exists()
        messages = [line["message"] for line in task["log"]]
        assert any("VM stuck: suspend failed" in m and "is in the way" in m and "shutting it down instead" in m
                   for m in messages), messages
        assert any("keep resumed from disk" in m for m in messages)


def test_other_boot_environment_stops_then_vms_come_back_without_updating(tiny_guest, bhype_roles) -> None:
    with update_host(tiny_guest, bhype_roles) as host:
        host.standin(_pending)
        host.create("solo", {"enabled": True})
        host.task(host.post("/api/v1/vms/solo/start")["task_id"])
        first = host.workers[0]
        task_id = host.post(f"{UPDATE}/run", {"confirm": True})["task_id"]
        host.wait_worker_gone(first)
        # The admin picked the pre-update boot environment in the loader menu.
        be = host.run()[0]["data"]["be_created"]
        host.standin(lambda state: state.update(booted=be))
        host.start_worker()
        task = host.task(task_id, expect="failed")
        run = host.run()[0]
        assert (run["state"], run["step"]) == ("failed", "verify_boot_environment")
        assert f"booted boot environment '{be}', but 'default' was expected" in run["error"]
        assert "bring the VMs back without updating" in task["error"]["message"]
        assert host.vm_state("solo") == "stopped"

        host.task(host.post(f"{UPDATE}/runs/{run['id']}/abort")["task_id"])
        run = host.run(run["id"])
        assert run["state"] == "brought_back"
        assert [(s["step"], s["state"]) for s in run["steps"][-4:]] == [
            ("verify_boot_environment", "skipped"), ("start_vms", "done"), ("start_services", "done"),
            ("check", "done")]
        assert host.vm_state("solo") == "running"


def test_failed_install_stops_then_resumes(tiny_guest, bhype_roles) -> None:
    with update_host(tiny_guest, bhype_roles) as host:
        host.standin(lambda state: (state["pending"]["packages"].append(
            {"name": "curl", "from": "8.4.0", "to": "8.6.0"}), state["fail"].update(pkg="pkg: repository unreachable")))
        host.create("solo", {"enabled": True})
        host.task(host.post("/api/v1/vms/solo/start")["task_id"])
        failed = host.task(host.post(f"{UPDATE}/run", {"confirm": True})["task_id"], expect="failed")
        run = host.run()[0]
        assert (run["state"], run["step"]) == ("failed", "install")
        assert "pkg: repository unreachable" in run["error"] and "Resume it" in failed["error"]["message"]
        assert host.vm_state("solo") == "stopped"
        second = host.post(f"{UPDATE}/run", {"confirm": True})["task_id"]  # refused by its task: one open run
        refused = host.task(second, expect="failed")
        assert f"host update run {run['id']} is failed" in refused["error"]["message"]

        host.standin(lambda state: state["fail"].clear())
        host.task(host.post(f"{UPDATE}/runs/{run['id']}/resume")["task_id"])
        run = host.run(run["id"])
        assert run["state"] == "done", run
        assert [(s["step"], s["state"]) for s in run["steps"] if s["step"] == "install"] == [
            ("install", "failed"), ("install", "done")]
        assert run["data"]["reboot_needed"] is False and "rebooted" not in run["data"]
        assert host.vm_state("solo") == "running"
        assert host.standin()["pending"]["packages"] == []
