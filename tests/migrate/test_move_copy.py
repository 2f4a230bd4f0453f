"""A copy (``keep_source`` + ``as``) gets a new UUID and MACs on the peer; the kept source
stays stopped and marked moved (its start is refused), so the VM never runs twice. Also the
CLI (``bhype peer list``, ``bhype move --dry-run``) against a real API."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import wait_task
from guest_kit import vm
from test_move_faults import filled_vm, hosts, image, sha  # noqa: F401  (fixture)

pytestmark = [pytest.mark.slow, pytest.mark.sshd]


def test_copy_gets_a_new_identity_and_the_kept_source_is_not_started(hosts: Any) -> None:
    a, b, _ = hosts
    digest = filled_vm(a, "tpl", 16)
    source = vm(a, "tpl")
    body = {"vm": "tpl", "to": "b", "keep_source": True, "as": "tpl2"}
    result = wait_task(a, a.api().request("POST", "/api/v1/migrate/moves", body))["result"]
    assert result["source"].startswith("kept")
    copy = vm(b, "tpl2")
    assert copy["uuid"] != source["uuid"]
    assert [n["mac"] for n in copy["spec"]["nics"]] != [n["mac"] for n in source["spec"]["nics"]]
    assert sha(image(b, "tpl2")) == digest == sha(image(a, "tpl"))
    refused = wait_task(a, a.api().request("POST", "/api/v1/vms/tpl/start"), expect="failed")
    assert "was moved to peer b" in refused["error"]["message"]
    # A move needs the same name: "as" without keep_source is refused before queuing.
    from bhype_core.errors import ValidationErrors

    with pytest.raises(ValidationErrors):
        a.api().request("POST", "/api/v1/migrate/moves", {"vm": "tpl", "to": "b", "as": "x"})


def test_dry_run_lists_what_is_missing_on_the_target(hosts: Any) -> None:
    a, b, _ = hosts
    filled_vm(a, "net", 8)
    # A VM of the same name on b, and a NIC on a switch b does not have.
    filled_vm(b, "net", 8)
    plan = wait_task(a, a.api().request("POST", "/api/v1/migrate/moves",
                                        {"vm": "net", "to": "b", "dry_run": True}))["result"]
    assert any(path == "target.name" for path, _ in plan["problems"]), plan["problems"]
    assert plan["bytes_allocated"] >= 8 * 2**20 and plan["estimated_offline_seconds"] >= 0
    assert "backup jobs and backup points" in plan["not_moved"]
    assert plan["transport"] == "rsync" and plan["zfs"] is None  # auto: directory storage on both ends
    # --transport zfs between directory datastores: refused at plan time, with the reason.
    zfs = wait_task(a, a.api().request("POST", "/api/v1/migrate/moves",
                                       {"vm": "net", "to": "b", "dry_run": True, "transport": "zfs"}))["result"]
    assert any(path == "transport" and "needs a ZFS datastore here" in why for path, why in zfs["problems"]), zfs
    refused = wait_task(a, a.api().request("POST", "/api/v1/migrate/moves", {"vm": "net", "to": "b"}), expect="failed")
    assert "exists on this host already" in refused["error"]["message"]


def test_cli_peer_list_and_vm_move_dry_run(hosts: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    a, b, _ = hosts
    filled_vm(a, "cli", 8)
    bhype = str(Path(sys.executable).with_name("bhype"))

    def cli(*words: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", a.netns, bhype, "--config", str(a.config), *words,
                               "--url", a.url, "--token", a.admin_token], capture_output=True, text=True, timeout=300)

    listed = cli("peer", "list")
    assert listed.returncode == 0, listed.stderr
    assert "b" in listed.stdout and b.url in listed.stdout and b.admin_token not in listed.stdout
    plan = cli("vm", "move", "cli", "--to", "b", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "move cli to b (cold, rsync)" in plan.stdout and "not moved:" in plan.stdout
    assert vm(a, "cli")["name"] == "cli"  # a dry run changes nothing
