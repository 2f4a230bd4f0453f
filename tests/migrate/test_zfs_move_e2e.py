"""Whole ``vm move --transport zfs`` runs between two bHype hosts whose datastores are ZFS.

What is real: two bHype hosts, each with its own data directory, SQLite database, queue, API
process and worker process (:mod:`zfs_hosts`); the move goes through host a's API as a task
there, reaches host b through b's API with b's admin token (``peer add``), and b's side
(``migrate.receive``: GUID check, ``zfs mount``, register; ``migrate.discard``) runs as tasks of
b's worker. OpenZFS is real (the session's OpenZFS guest), and so is the data path: ``zfs send
-R`` in the guest through a's runner, into ``ssh -i <a's migrate key>`` with the host key a
pinned at pairing, into ``zfs receive -u`` in the guest.

What is shared: the one ZFS guest is both hosts' storage host — a's datastore is pool ``tank``
and b's is pool ``bpool`` (another disk of the guest), and b's "sshd" is the guest's dropbear.
Both hosts' runners drive the guest over SSH, so their hypervisor cannot run a VM there
(bHype refuses to start a VM when ``[runner]`` is remote): a move with ``start`` is the
failure-after-transfer case here, which must roll back. The moved VMs are never booted; the
data is proven by checksums of their zvols and of the NVRAM file in their file system.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import wait_task
from zfs_hosts import authorize, make_pools, zfs_hosts

from bhype_core.errors import NotFound

pytestmark = [pytest.mark.guest, pytest.mark.slow]
MIB = 2**20
MOVE_SNAPSHOT = "bhype-move-"


class World:
    """Hosts ``a`` and ``b`` (a paired with b as peer ``b``) and the guest they share."""

    def __init__(self, zfs_host: Any, a: Any, b: Any) -> None:
        self.guest, self.a, self.b = zfs_host, a, b

    def run(self, *argv: str, check: bool = True) -> Any:
        return self.guest.shared_runner.run(list(argv), check=check)

    def sha(self, path: str) -> str:
        self.run("udevadm", "settle", check=False)
        return self.run("sha256sum", path).stdout.split()[0]

    def exists(self, dataset: str) -> bool:
        return self.run("zfs", "list", "-H", "-o", "name", dataset, check=False).returncode == 0

    def snapshots(self, *datasets: str) -> list[str]:
        out = self.run("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", *datasets, check=False).stdout
        return out.split()

    def flaked(self, task: dict[str, Any]) -> bool:
        """Whether ``task`` failed because a host's runner could not reach the guest at all
        (ssh exit 255 within a fraction of a second: the guest's dropbear drops connections
        when it is busy). That is the test bed, not the move: such a move rolled back like any
        failed one and is tried again (at most twice; any other failure counts)."""
        message = str((task.get("error") or {}).get("message", ""))
        return task["state"] == "failed" and f"ssh connection failed ({self.guest.target})" in message

    def task(self, path: str, body: dict[str, Any], expect: str | None = "succeeded") -> dict[str, Any]:
        for _ in range(3):
            task = wait_task(self.a, self.a.api().request("POST", path, body), expect=None)
            if not self.flaked(task):
                break
            print(f"retried after the guest's SSH dropped a connection: {task['error']['message']}")
        if expect is not None:
            assert task["state"] == expect, task
        return task

    def move(self, expect: str | None = "succeeded", **body: Any) -> dict[str, Any]:
        return self.task("/api/v1/migrate/moves", body, expect)

    def vm(self, host: Any, name: str) -> dict[str, Any]:
        return host.api().request("GET", f"/api/v1/vms/{name}")

    def create(self, name: str, written_mib: int = 8) -> dict[str, Any]:
        """A stopped UEFI VM on a with a 32 MiB zvol holding ``written_mib`` MiB of random data."""
        body = {"name": name, "spec": {"boot": {"mode": "uefi"}, "disks": [{"size": "32M"}], "nics": []}}
        self.task("/api/v1/vms", body)
        device = f"/dev/zvol/tank/bhype/vms/{name}/disk0"
        self.run("udevadm", "settle")
        self.run("dd", "if=/dev/urandom", f"of={device}", "bs=1M", f"count={written_mib}", "seek=4", "conv=fsync")
        return self.vm(self.a, name)


@pytest.fixture(scope="module")
def world(zfs_host: Any) -> Any:
    make_pools(zfs_host)
    with zfs_hosts(zfs_host) as create:
        a, b = create("a"), create("b")
        # Both hosts' QEMU driver copies its UEFI vars template from this guest path.
        template = nvram_template_path(a)
        zfs_host.shared_runner.run(["mkdir", "-p", str(template.parent)])
        zfs_host.shared_runner.run(["dd", f"of={template}", "status=none"], input=bytes(range(256)) * 512)
        body = {"name": "b", "url": b.url, "token": b.admin_token, "ssh_host": zfs_host.host,
                "ssh_port": zfs_host.port}
        paired = wait_task(a, a.api().request("POST", "/api/v1/migrate/peers", body))["result"]
        authorize(zfs_host, paired["public_key"])
        yield World(zfs_host, a, b)
    for pool in ("tank", "bpool"):
        zfs_host.shared_runner.run(["zpool", "destroy", "-f", pool], check=False)


def nvram_template_path(host: Any) -> Any:
    from bhype_core.vm.firmware import nvram_template
    from bhype_core.vm.services import active_driver

    runtime = host.runtime()
    try:
        return nvram_template(active_driver(runtime))[0]
    finally:
        runtime.runner.close()
        runtime.engine.dispose()


def test_cold_zfs_move_registers_on_the_peer_and_removes_the_source(world: World) -> None:
    before = world.create("zm1")
    world.run("zfs", "snapshot", "-r", "tank/bhype/vms/zm1@mine")  # the VM's own snapshot travels along
    disk = world.sha("/dev/zvol/tank/bhype/vms/zm1/disk0")
    nvram = world.sha("/tank/bhype/vms/zm1/OVMF_VARS.fd")

    plan = world.move(vm="zm1", to="b", transport="zfs", dry_run=True)["result"]
    assert plan["problems"] == [] and plan["transport"] == "zfs", plan
    assert plan["zfs"]["source"] == "tank/bhype/vms/zm1" and plan["zfs"]["target"] == "bpool/bhype/vms/zm1"
    assert plan["bytes"] >= 8 * MIB
    assert [s for s in world.snapshots("tank/bhype") if MOVE_SNAPSHOT in s] == []  # the plan's is gone again

    result = world.move(vm="zm1", to="b", transport="zfs")["result"]
    assert result["transport"] == "zfs" and result["source"] == "removed" and result["bytes_sent"] >= 8 * MIB

    moved = world.vm(world.b, "zm1")
    assert moved["uuid"] == before["uuid"] and moved["datastore"] == "zfs" and moved["owner"] == before["owner"]
    assert world.run("zfs", "get", "-H", "-o", "value", "mounted", "bpool/bhype/vms/zm1").stdout.strip() == "yes"
    assert world.sha("/dev/zvol/bpool/bhype/vms/zm1/disk0") == disk
    assert world.sha("/bpool/bhype/vms/zm1/OVMF_VARS.fd") == nvram
    assert world.snapshots("bpool/bhype/vms/zm1") == ["bpool/bhype/vms/zm1@mine", "bpool/bhype/vms/zm1/disk0@mine"]
    # The source is gone: its record, its dataset tree; no move snapshot on either end.
    with pytest.raises(NotFound):
        world.vm(world.a, "zm1")
    assert not world.exists("tank/bhype/vms/zm1")
    assert [s for s in world.snapshots("tank", "bpool") if MOVE_SNAPSHOT in s] == []
    assert journal_states(world.a, "zm1")[0] == "done"


def move_snapshots(world: World) -> list[str]:
    return [s for s in world.snapshots("tank", "bpool") if MOVE_SNAPSHOT in s]


def journal_states(host: Any, name: str) -> list[str]:
    """The states of VM ``name``'s moves from ``host``, newest first."""
    return [m["state"] for m in host.api().request("GET", "/api/v1/migrate/moves")["moves"] if m["vm_name"] == name]


def test_keep_source_leaves_the_source_stopped_and_marked_moved(world: World) -> None:
    before = world.create("zm2", written_mib=4)
    disk = world.sha("/dev/zvol/tank/bhype/vms/zm2/disk0")
    result = world.move(vm="zm2", to="b", transport="zfs", keep_source=True)["result"]
    assert result["source"] == "kept, stopped, marked moved"
    assert world.vm(world.b, "zm2")["uuid"] == before["uuid"]
    assert world.vm(world.a, "zm2")["uuid"] == before["uuid"]  # still registered here
    assert world.sha("/dev/zvol/tank/bhype/vms/zm2/disk0") == disk == world.sha("/dev/zvol/bpool/bhype/vms/zm2/disk0")
    assert move_snapshots(world) == []
    assert journal_states(world.a, "zm2")[0] == "kept"


def test_a_name_taken_on_the_peer_rolls_back_and_leaves_theirs_alone(world: World) -> None:
    """b holds a dataset named like the VM that b's records do not know (so b's plan check,
    which asks b's records and mountpoints, passes): the first pass refuses before sending,
    and the rollback touches nothing of b's and leaves the VM whole here."""
    before = world.create("zm3", written_mib=4)
    disk = world.sha("/dev/zvol/tank/bhype/vms/zm3/disk0")
    world.run("zfs", "create", "bpool/bhype/vms/zm3")
    world.run("sh", "-c", "echo theirs > /bpool/bhype/vms/zm3/keep")

    task = world.move(expect="failed", vm="zm3", to="b", transport="zfs")
    assert "exists already" in task["error"]["message"], task["error"]
    assert world.run("cat", "/bpool/bhype/vms/zm3/keep").stdout.strip() == "theirs"
    assert not world.exists("bpool/bhype/vms/zm3/disk0")
    with pytest.raises(NotFound):
        world.vm(world.b, "zm3")
    assert world.vm(world.a, "zm3")["uuid"] == before["uuid"]
    assert world.sha("/dev/zvol/tank/bhype/vms/zm3/disk0") == disk
    assert move_snapshots(world) == []
    assert journal_states(world.a, "zm3")[0] == "rolled_back"
    world.run("zfs", "destroy", "-r", "bpool/bhype/vms/zm3")


def test_a_failure_after_the_transfer_destroys_the_copy_and_keeps_the_source(world: World) -> None:
    """``start``: b received, mounted and registered the VM, then b's start fails (its runner
    is remote, so its hypervisor would not run where the disks are). The move rolls back: b
    unregisters the VM, the copy is destroyed, the VM is here as it was."""
    before = world.create("zm4", written_mib=4)
    disk = world.sha("/dev/zvol/tank/bhype/vms/zm4/disk0")
    task = world.move(expect="failed", vm="zm4", to="b", transport="zfs", start=True)
    log = "\n".join(line["message"] for line in task["log"])
    assert "registered on b" in log and "rolling back the move" in log, log
    with pytest.raises(NotFound):
        world.vm(world.b, "zm4")
    assert not world.exists("bpool/bhype/vms/zm4")
    assert world.vm(world.a, "zm4")["uuid"] == before["uuid"]
    assert world.sha("/dev/zvol/tank/bhype/vms/zm4/disk0") == disk
    assert world.exists("tank/bhype/vms/zm4") and move_snapshots(world) == []
    assert journal_states(world.a, "zm4")[0] == "rolled_back"


def test_auto_takes_zfs_toward_a_group_host_that_reports_its_zfs_datastore(world: World) -> None:
    """Inside a group the destination's facts come from its registry row (no API request):
    b's worker registered its ZFS datastore's dataset and disk type, so ``auto`` from a's ZFS
    datastore picks zfs, as it does toward a peer (which answers ``/migrate/info``)."""
    from bhype_core.plugin_api import find_vm, group_hosts, local_host_name
    from bhype_migrate.destination import GroupHost
    from bhype_migrate.plan import choose_transport

    world.create("zm5", written_mib=4)
    b_runtime, a_runtime = world.b.runtime(), world.a.runtime()
    try:
        state = next(s for s in group_hosts(b_runtime) if s.host.name == local_host_name(b_runtime))
        assert state.host.capacity["datastores"]["zfs"] == {
            **state.host.capacity["datastores"]["zfs"], "backend": "zfs", "dataset": "bpool/bhype", "disk_type": "zvol"}
        facts = GroupHost(None, state, None, None, "root", 22).info()  # type: ignore[arg-type]
        assert facts["default_datastore"] == "zfs"
        problems: list[list[str]] = []
        row = find_vm(a_runtime, "zm5")
        transport, zfs = choose_transport(a_runtime, row, "auto", facts, problems)
        assert (transport, problems) == ("zfs", []) and zfs is not None
        assert zfs["source"] == "tank/bhype/vms/zm5" and zfs["bytes"] >= 4 * MIB
        # The same facts without the layout (an older host) make auto take rsync.
        old = {**facts, "datastores": [{"name": "zfs", "backend": "zfs"}]}
        assert choose_transport(a_runtime, row, "auto", old, [])[0] == "rsync"
    finally:
        for runtime in (a_runtime, b_runtime):
            runtime.runner.close()
            runtime.engine.dispose()
