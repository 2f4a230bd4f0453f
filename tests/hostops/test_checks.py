"""``hostops.check``: the FreeBSD checks through the real runner against recorded tool outputs,
findings stored with their raw output, deduplicated over runs, resolved when gone, announced
through ``bhype_notify`` as ``hostops.vulnerability`` / ``hostops.patches``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bhype_core.plugin_api import event_kinds, hookimpl
from bhype_hostops import findings_store
from bhype_hostops.models import HostopsFinding

from . import freebsd_tools as tools
from .tasks import run_task


class Heard:
    """A notifier plugin that keeps every event (what SNMP, mail and the web UI receive)."""

    def __init__(self) -> None:
        self.events = []

    @hookimpl
    def bhype_notify(self, event, runtime):
        self.events.append(event)

    def take(self):
        events, self.events = self.events, []
        return sorted((e.kind, e.data.get("package")) for e in events)


@pytest.fixture
def checked(hostops_runtime, register_plugin, tmp_path):
    heard = register_plugin(Heard(), "heard")
    bin_dir = tmp_path / "freebsd-bin"
    runtime = hostops_runtime(check_platform="freebsd", **tools.install(bin_dir))
    return runtime, bin_dir, heard


def check(runtime):
    task = run_task(runtime, "hostops.check", {})
    assert task.state == "succeeded", task.error
    return task


def test_three_runs_pop_once_then_on_change_and_close_when_resolved(checked):
    runtime, bin_dir, heard = checked
    assert {"hostops.vulnerability", "hostops.patches"} <= {kind.name for kind in event_kinds(runtime)}

    tools.scenario(bin_dir, tools.classic((1, "@audit_several.json", ""), fetch="@fu_fetch_updates.txt", ready=True,
                                          upgrade="@pkg_upgrade_pending.txt", base="@audit_base_userland.json"))
    first = check(runtime)
    assert heard.take() == [("hostops.patches", "FreeBSD"), ("hostops.patches", "packages"),
                            ("hostops.vulnerability", "FreeBSD"), ("hostops.vulnerability", "curl"),
                            ("hostops.vulnerability", "python311")]
    assert first.result["checks"] == {"base-mode": "ok", "pkg-audit": "ok", "base-audit": "ok",
                                      "freebsd-update": "ok", "pkg-upgrade": "ok"}
    found = {f["key"]: f for f in findings_store.list_findings(runtime)}
    assert set(found) == {"vuln:curl", "vuln:python311", "vuln:FreeBSD", "patch:base", "patch:packages"}
    curl = found["vuln:curl"]
    assert curl["data"]["cves"] == ["CVE-2024-00000"] and "$ " in curl["raw_output"]
    assert '"curl"' in curl["raw_output"]  # the check's raw output is stored with the finding
    assert found["patch:base"]["version"] == "14.1-RELEASE-p5"
    assert found["patch:packages"]["data"]["count"] == 3
    # What the update workflow's plan reads: the pending base and package updates.
    assert first.result["patches"]["base"] == [{"name": "FreeBSD", "new": "14.1-RELEASE-p5", "files": 4}]
    assert [p["name"] for p in first.result["patches"]["packages"]] == ["curl", "python311", "sudo"]
    fetches = [c for c in tools.calls(bin_dir) if c["argv"].startswith("freebsd-update --not-running-from-cron")]
    assert fetches and all(c["pager"] == "cat" for c in fetches)  # the file list is not paged

    second = check(runtime)  # the same answers: nothing pops again
    assert heard.take() == [] and second.result["opened"] == 0 and second.result["resolved"] == 0

    # Third run: curl gained an issue (pops again), python311 and the base issues were fixed.
    tools.scenario(bin_dir, tools.classic((1, "@audit_curl_changed.json", ""), upgrade="@pkg_upgrade_pending.txt"))
    third = check(runtime)
    assert heard.take() == [("hostops.vulnerability", "curl")]
    assert third.result["resolved"] == 3  # python311, the base system's vulnerability, the base update
    still = {f["key"] for f in findings_store.list_findings(runtime)}
    assert still == {"vuln:curl", "patch:packages"}
    gone = {f["key"] for f in findings_store.list_findings(runtime, "resolved")}
    assert gone == {"vuln:python311", "vuln:FreeBSD", "patch:base"}


def test_the_event_carries_package_version_cves_description_and_vuxml_link(checked):
    runtime, bin_dir, heard = checked
    tools.scenario(bin_dir, tools.classic((1, "@audit_several.json", "")))
    task = check(runtime)
    event = next(e for e in heard.events if e.data["package"] == "curl")
    assert event.kind == "hostops.vulnerability" and event.severity == "error" and event.user is None
    assert event.data["version"] == "8.9.0" and event.data["cves"] == ["CVE-2024-00000"]
    assert event.data["description"] == "curl -- example topic text"
    assert event.data["url"] == "https://vuxml.FreeBSD.org/freebsd/0123abcd-0000-11ef-0000-000000000000.html"
    assert event.data["task_id"] == task.id
    assert "curl 8.9.0 is vulnerable" in event.message


def test_a_failed_check_resolves_nothing_and_keeps_its_output(checked):
    runtime, bin_dir, heard = checked
    tools.scenario(bin_dir, tools.classic((1, "@audit_several.json", "")))
    check(runtime)
    heard.take()
    for broken in ((1, "", "@audit_error.stderr"), (1, "@audit_malformed.json", "")):
        tools.scenario(bin_dir, tools.classic(broken))
        task = check(runtime)
        assert task.result["checks"]["pkg-audit"] == "error" and task.result["resolved"] == 0
        assert heard.take() == []
        assert {f["key"] for f in findings_store.list_findings(runtime)} == {"vuln:curl", "vuln:python311"}
        run = findings_store.last_run(runtime)
        audit = next(c for c in run["checks"] if c["name"] == "pkg-audit")
        assert audit["status"] == "error" and "$ " in audit["raw_output"]


def test_a_dismissal_is_time_limited_and_a_change_breaks_it(checked):
    runtime, bin_dir, heard = checked
    tools.scenario(bin_dir, tools.classic((1, "@audit_several.json", "")))
    check(runtime)
    heard.take()
    curl = next(f for f in findings_store.list_findings(runtime) if f["key"] == "vuln:curl")
    findings_store.dismiss(runtime, curl["id"], 7, "admin")
    check(runtime)
    assert heard.take() == []  # dismissed and unchanged
    from bhype_core.plugin_api import session
    with session(runtime, write=True) as db:  # the week is over
        row = db.get(HostopsFinding, curl["id"])
        row.dismissed_until = datetime.now(UTC) - timedelta(minutes=1)
        db.add(row)
    check(runtime)
    assert heard.take() == [("hostops.vulnerability", "curl")]
    findings_store.dismiss(runtime, curl["id"], 7, "admin")
    tools.scenario(bin_dir, tools.classic((1, "@audit_curl_changed.json", "")))
    check(runtime)
    assert ("hostops.vulnerability", "curl") in heard.take()  # changed: it pops although dismissed


def test_pkgbase_host_uses_the_base_repository_not_freebsd_update(checked):
    runtime, bin_dir, heard = checked
    tools.scenario(bin_dir, {
        "pkg which /usr/bin/uname": (0, "@pkg_which_pkgbase.txt", ""),
        "pkg audit -F -Rjson": (0, "@audit_none.json", ""),
        "pkg upgrade -n -r FreeBSD-base": (0, "@pkg_upgrade_pkgbase_base.txt", ""),
        "pkg upgrade -n": (0, "@pkg_upgrade_pkgbase_all.txt", ""),
    })
    task = check(runtime)
    assert task.result["checks"] == {"base-mode": "ok", "pkg-audit": "ok", "base-audit": "skipped",
                                     "freebsd-update": "skipped", "pkgbase": "ok", "pkg-upgrade": "ok"}
    assert not any(c["argv"].startswith("freebsd-update") for c in tools.calls(bin_dir))
    found = {f["key"]: f for f in findings_store.list_findings(runtime)}
    assert [u["name"] for u in found["patch:base"]["data"]["upgrades"]] == ["FreeBSD-kernel-generic", "FreeBSD-runtime"]
    assert [u["name"] for u in found["patch:packages"]["data"]["upgrades"]] == ["curl"]
    assert [p["name"] for p in task.result["patches"]["base"]] == ["FreeBSD-kernel-generic", "FreeBSD-runtime"]
    assert sorted(heard.take()) == [("hostops.patches", "FreeBSD-base"), ("hostops.patches", "packages")]


def test_freebsd_update_refusing_without_a_tty_is_an_error_not_a_clean_bill(checked):
    runtime, bin_dir, heard = checked
    answers = tools.classic((0, "@audit_none.json", ""))
    answers["freebsd-update --not-running-from-cron fetch"] = (1, "@fu_fetch_no_tty.txt", "")
    tools.scenario(bin_dir, answers)
    task = check(runtime)
    assert task.result["checks"]["freebsd-update"] == "error"
    assert "patches" not in task.result  # unknown, not "none pending"
    assert "without a terminal" in " ".join(task.result["errors"])


def test_on_linux_nothing_is_pretended(hostops_runtime):
    runtime = hostops_runtime()  # check_platform auto on this Linux host
    task = run_task(runtime, "hostops.check", {})
    assert task.state == "succeeded"
    assert set(task.result["checks"].values()) == {"skipped"} and task.result["findings"] == 0
    assert "patches" not in task.result
    assert "not a FreeBSD host" in task.log_text
