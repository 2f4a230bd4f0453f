"""The update plan (a pure function): VM order, what is left alone, services, updates, reboot,
boot environment, and the problems that refuse a run before anything changes."""

from __future__ import annotations

from datetime import UTC, datetime

from bhype_hostops.update.plan import build_plan, updates_from_check
from bhype_hostops.update.settings import UpdateSettings

NOW = datetime(2026, 12, 7, 14, 14, 0, tzinfo=UTC)
HOST = {"platform": "standin", "base_mode": "freebsd-update", "can_suspend": False,
        "boot_environments": [{"name": "default", "active_now": True, "active_reboot": True, "temporary": False,
                               "mountpoint": "/", "space": "2G", "created": "2026-01-05 10:00"}]}
KINDS = {"service.stop", "service.start", "hostops.check", "vm.stop", "vm.start"}
VMS = [
    {"name": "web", "running": True, "autostart": {"enabled": True, "order": 20, "delay": 5}},
    {"name": "db", "running": True, "autostart": {"enabled": True, "order": 10, "stop_timeout": 120}},
    {"name": "adhoc", "running": True, "autostart": None},
    {"name": "old", "running": False, "autostart": {"enabled": True, "order": 1}},
]


def test_running_vms_in_autostart_order_and_the_rest_left_alone() -> None:
    plan = build_plan(VMS, UpdateSettings(services=["rsyncd"]), updates_from_check(None), HOST, KINDS, NOW)
    assert plan["start_order"] == ["db", "web", "adhoc"]  # no autostart: order 100
    assert plan["stop_order"] == ["adhoc", "web", "db"]
    assert plan["left_alone"] == ["old"]
    assert [(vm["name"], vm["delay"], vm["stop_timeout"]) for vm in plan["vms"]] == [
        ("db", 0, 120), ("web", 5, None), ("adhoc", 0, None)]
    assert plan["services"] == ["rsyncd"] and plan["check_after"] is True
    assert plan["boot_environment"] == {"create": "bhype-update-20261207-141400", "booted": "default",
                                        "expected_after_reboot": "default"}
    assert plan["updates"]["known"] is False and "unknown" in plan["updates"]["reason"]
    assert plan["reboot"].startswith("only if base system updates get installed")
    assert plan["problems"] == []
    assert "cannot suspend here" in plan["vm_shutdown"]
    assert plan["vm_actions"] == {"db": "shutdown", "web": "shutdown", "adhoc": "shutdown"}


def test_vms_are_suspended_where_the_driver_can_unless_the_setting_says_no() -> None:
    host = {**HOST, "can_suspend": True}
    plan = build_plan(VMS, UpdateSettings(), updates_from_check(None), host, KINDS, NOW)
    assert plan["suspend_supported"] is True
    assert [vm["action"] for vm in plan["vms"]] == ["suspend", "suspend", "suspend"]
    assert plan["vm_actions"] == {"db": "suspend", "web": "suspend", "adhoc": "suspend"}
    assert plan["vm_shutdown"].startswith("suspend to disk") and "ACPI" in plan["vm_shutdown"]  # the fallback
    off = build_plan(VMS, UpdateSettings(vm_suspend=False), updates_from_check(None), host, KINDS, NOW)
    assert {vm["action"] for vm in off["vms"]} == {"shutdown"} and "vm_suspend is off" in off["vm_shutdown"]


def test_a_setting_overrides_each_vms_stop_timeout() -> None:
    plan = build_plan(VMS, UpdateSettings(vm_stop_timeout=30), updates_from_check(None), HOST, KINDS, NOW)
    assert {vm["stop_timeout"] for vm in plan["vms"]} == {30}


def test_updates_from_the_last_check_decide_the_reboot() -> None:
    check = {"id": "t1", "finished": "2026-12-07T13:00:00+00:00",
             "result": {"patches": {"base": ["14.3-RELEASE-p2"], "packages": [{"name": "curl"}]}}}
    plan = build_plan(VMS, UpdateSettings(), updates_from_check(check), HOST, KINDS, NOW)
    assert plan["updates"] == {"known": True, "source_task": "t1", "checked_at": "2026-12-07T13:00:00+00:00",
                               "base": ["14.3-RELEASE-p2"], "packages": [{"name": "curl"}]}
    assert plan["reboot"] == "yes"
    check["result"]["patches"]["base"] = []
    assert build_plan(VMS, UpdateSettings(), updates_from_check(check), HOST, KINDS, NOW)["reboot"] == "no"
    assert updates_from_check({"id": "t2", "result": {"vulnerabilities": []}})["known"] is False


def test_problems_refuse_the_run() -> None:
    no_services = build_plan(VMS, UpdateSettings(services=["rsyncd"]), updates_from_check(None), HOST,
                             {"vm.stop", "vm.start"}, NOW)
    assert no_services["problems"] == [
        "services rsyncd are to be stopped, but the task kinds service.stop, service.start are not registered "
        "(the hostops services part is not installed)"]
    assert no_services["check_after"] is False
    no_installer = build_plan(VMS, UpdateSettings(), updates_from_check(None),
                              {"platform": None, "error": "no update installer on this host"}, KINDS, NOW)
    assert no_installer["problems"] == ["no update installer on this host"]
    no_be = build_plan(VMS, UpdateSettings(), updates_from_check(None),
                       {"platform": "freebsd", "be_error": "bectl: not a ZFS boot"}, KINDS, NOW)
    assert no_be["problems"] == ["boot environments are not available: bectl: not a ZFS boot"]
    taken = dict(HOST, boot_environments=HOST["boot_environments"] + [
        {**HOST["boot_environments"][0], "name": "bhype-update-20261207-141400", "active_now": False,
         "active_reboot": False}])
    assert build_plan(VMS, UpdateSettings(), updates_from_check(None), taken, KINDS, NOW)["problems"] == [
        "boot environment bhype-update-20261207-141400 already exists"]
