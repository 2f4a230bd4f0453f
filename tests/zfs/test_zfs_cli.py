"""``bhype zfs …`` against the real API (uvicorn on loopback, real API tokens, an in-process
worker) whose tasks run on real OpenZFS in the test guest: init shows the plan's commands and
runs them only when confirmed, admin-only routes refuse operators in one line, snapshots of a
VM, holds and destroy refusals, status and schedules as JSON."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest

from bhype_core import cli
from bhype_core.testing.api_server import served_cli
from bhype_core.testing.roles import role_account
from bhype_core.vm.create import create_vm

from .helpers import task_context

pytestmark = [pytest.mark.guest, pytest.mark.slow]


@pytest.fixture
def server(guest_runtime, tmp_path, monkeypatch, local_user) -> Iterator[dict]:
    """The API and a worker for a guest runtime; a CLI configuration; tokens for an admin (a
    real account: the worker reads the role from its groups; its token is ``tokens["root"]``)
    and operators ``alice`` and ``bob`` (``$BHYPE_TOKEN`` starts as the admin's)."""
    runtime = guest_runtime(queue={"backend": "sqlite"})
    admin = role_account(local_user, runtime).name
    users = ((admin, "admin"), ("alice", "operator"), ("bob", "operator"))
    with served_cli(runtime, tmp_path, monkeypatch, users, as_user=admin) as server:
        server["tokens"]["root"] = server["tokens"][admin]
        yield server


@pytest.fixture
def bhype(server, capsys, monkeypatch):
    """``bhype(*args, user="root")`` → (exit status, stdout, stderr) of one CLI run, stdin no terminal."""

    def run(*args: str, user: str = "root") -> tuple[int, str, str]:
        monkeypatch.setenv("BHYPE_TOKEN", server["tokens"][user])
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        status = cli.main(["--config", str(server["config"]), *args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def pools(host) -> list[str]:
    return host.shared_runner.run(["zpool", "list", "-H", "-o", "name"]).stdout.split()


def task_kinds(bhype) -> list[str]:
    """The kinds of every task users submitted so far (not the periodic jobs' @system runs)."""
    status, out, _ = bhype("task", "list", "--json")
    assert status == 0
    return sorted(task["kind"] for task in json.loads(out) if task["owner"] != "@system")


def test_init_prints_the_plan_and_runs_it_only_when_confirmed(fresh_zfs_host, bhype):
    host = fresh_zfs_host
    device = host.disk_path(host.disks[3])
    status, out, err = bhype("zfs", "init", "cli", device, "--layout", "single", "--dry-run")
    assert status == 0, err
    assert f"  zpool create -o ashift=12 -O compression=lz4 -O atime=off cli {device}    # create single pool" in out
    assert "  zfs create -o recordsize=1M cli/bhype/isos    # create cli/bhype/isos" in out
    assert pools(host) == []

    status, out, err = bhype("zfs", "init", "cli", device, "--layout", "single")  # stdin is no terminal
    assert status == 1 and "zpool create" in out
    assert err == "bhype: error: --yes: confirm initialising a pool with --yes when not on a terminal; nothing ran\n"
    assert pools(host) == [] and task_kinds(bhype) == ["zfs.plan_init", "zfs.plan_init"]

    status, out, err = bhype("zfs", "init", "cli", device, "--layout", "single", "--yes")
    assert status == 0, err
    assert "create single pool cli from 1 disk(s): zpool create -o ashift=12" in err  # the task's log, live
    assert out.endswith('[vm.datastores.zfs]\nbackend = "zfs"\ndataset = "cli/bhype"\nmountpoint = "/cli/bhype"\n')
    assert "pool cli is ready" in err and "[vm.datastores.zfs]" not in err  # the snippet once, on stdout
    shown_mark = next(word for word in out.split() if word.startswith("org.bhype:initialised="))
    marked = host.shared_runner.run(["zfs", "get", "-H", "-o", "value", "org.bhype:initialised", "cli/bhype"])
    assert shown_mark == f"org.bhype:initialised={marked.stdout.strip()}"  # what ran is what was shown
    assert pools(host) == ["cli"]
    assert "zfs.init_pool" in task_kinds(bhype)

    status, _, err = bhype("zfs", "init", "cli", device, "--layout", "single", "--yes")  # refused when planned
    assert (status, err) == (1, "bhype: error: task zfs.plan_init failed: pool 'cli' already exists; "
                                "adopt it instead of creating it\n")


def test_operators_may_not_touch_pools(bhype):
    status, out, err = bhype("zfs", "init", "cli", "/dev/vdz", "--layout", "single", "--yes", user="alice")
    assert (status, out, err) == (1, "", "bhype: error: only admins may do this; 'alice' is operator\n")
    status, out, err = bhype("zfs", "import-vms", "--list", user="alice")
    assert (status, err) == (1, "bhype: error: only admins may do this; 'alice' is operator\n")
    assert task_kinds(bhype) == []


def test_status_as_last_probed_and_refreshed(tank, bhype):
    status, out, err = bhype("zfs", "status", "--refresh", "--json")
    assert status == 0, err
    report = json.loads(out)
    assert report["probed"] is True and report["tools"]["found"] is True
    assert (report["pool"], report["pool_status"]["health"]) == ("tank", "ONLINE")
    assert err.startswith("probed: OpenZFS ")  # the zfs.probe task's log line
    status, out, _ = bhype("zfs", "status", user="alice")
    assert out.splitlines()[2].startswith("pool      tank: ONLINE, ")


def test_snapshots_of_a_vm_holds_and_destroy(tank, server, bhype):
    create_vm(task_context(server["runtime"], "vm.create", "alice"), "clisnap",
              overrides={"boot": {"mode": "bhyveload"}, "disks": [{"size": "8M"}, {"size": "8M"}]})
    status, out, err = bhype("zfs", "snapshot", "clisnap", "first", user="alice")
    assert (status, out) == (0, "snapshot first of clisnap (3 datasets)\n"), err
    assert "snapshot tank/bhype/vms/clisnap@first of 3 dataset(s)" in err

    status, out, _ = bhype("zfs", "snapshots", "clisnap", "--json", user="alice")
    [listed] = json.loads(out)
    assert (listed["name"], listed["holds"]) == ("first", 0)
    assert listed["datasets"] == ["tank/bhype/vms/clisnap", "tank/bhype/vms/clisnap/disk0",
                                  "tank/bhype/vms/clisnap/disk1"]
    status, out, _ = bhype("zfs", "snapshots", "clisnap", user="alice")
    assert out.splitlines()[0].split() == ["NAME", "CREATED", "USED", "REFERENCED", "HOLDS"]
    assert out.splitlines()[1].split()[0] == "first"

    status, _, err = bhype("zfs", "snapshots", "clisnap", user="bob")  # not bob's VM
    assert (status, err) == (1, "bhype: error: no VM named 'clisnap'\n")

    assert bhype("zfs", "hold", "clisnap", "first", "keep", user="alice")[1] == \
        "held clisnap@first (keep); its holds now: keep\n"
    status, _, err = bhype("zfs", "destroy-snapshot", "clisnap", "first", "--yes", user="alice")
    assert status == 1 and err.startswith("bhype: error: task zfs.destroy_snapshot failed: cannot destroy snapshot ")
    assert err.endswith("are held (zfs-hold(8)), e.g. for a backup: release the hold first\n")
    assert len(err.splitlines()) == 1  # the task's own "failed: ..." log line is not repeated
    assert bhype("zfs", "release", "clisnap", "first", "keep", user="alice")[0] == 0
    status, out, err = bhype("zfs", "destroy-snapshot", "clisnap", "first", "--yes", user="alice")
    assert (status, out) == (0, "destroyed clisnap@first (3 datasets)\n"), err
    assert json.loads(bhype("zfs", "snapshots", "clisnap", "--json", user="alice")[1]) == []


def test_schedules_create_list_delete(bhype):
    status, _, err = bhype("zfs", "schedules", "create", "nightly", "--dataset", "tank/bhype/vms", "--daily", "7",
                           "--weekly", "4", "--disabled")
    assert status == 0, err
    status, out, _ = bhype("zfs", "schedules", "list", "--json")
    [schedule] = json.loads(out)
    assert (schedule["name"], schedule["dataset"], schedule["daily"], schedule["enabled"]) == (
        "nightly", "tank/bhype/vms", 7, False)
    assert bhype("zfs", "schedules", "list")[1].splitlines()[1].split() == [
        "nightly", "-", "tank/bhype/vms", "daily=7", "weekly=4", "no"]
    status, _, err = bhype("zfs", "schedules", "list", user="alice")
    assert (status, err) == (1, "bhype: error: only admins may do this; 'alice' is operator\n")
    assert bhype("zfs", "schedules", "delete", "nightly")[0] == 0
    assert bhype("zfs", "schedules", "list")[1] == "no schedules\n"
