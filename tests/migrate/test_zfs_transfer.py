"""A move's ZFS data path (``bhype_migrate.zfs_transfer``) on real OpenZFS in the test guest:
one pool, ``tank/a`` and ``tank/b`` standing for the two hosts' datastores (the guest is reached
over SSH the way the ZFS storage tests reach it). A VM's dataset tree (file system + zvol)
moved warm while a writer in the guest keeps changing 1 MiB a second: the incremental passes
send a small part of the full one, the copy has the same bytes and snapshot GUID, the move's
snapshots are gone from both ends afterwards. A cancelled pass and a refused one leave nothing
partial on the target and never touch a dataset that was there before."""

from __future__ import annotations

import time

import pytest

from bhype_core.errors import Conflict
from bhype_core.tasks import Cancelled
from bhype_core.testing.zfs_guest import guest_sha256, reap_senders
from bhype_core.transfer import ZfsEnd
from bhype_migrate.zfs_transfer import SNAPSHOT_PREFIX, ZfsPasses, converge

pytestmark = [pytest.mark.guest, pytest.mark.slow]
MIB = 2**20
# A receiver reading ~640 KB/s (busybox dd in a loop) that ends at the end of its input.
THROTTLE = ("{ while :; do dd bs=64k count=1 2>/dev/null >/tmp/chunk.$$; [ -s /tmp/chunk.$$ ] || break; "
            "cat /tmp/chunk.$$; sleep 0.1; done; rm -f /tmp/chunk.$$; } | ")


class Recorder:
    """The few task-context calls the data path makes (progress, log, cancel)."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.lines: list[str] = []
        self.progress_calls: list[float] = []
        self.cancel_after = cancel_after

    def progress(self, percent: float, message: str = "") -> None:
        self.progress_calls.append(percent)

    def log(self, message: str, level: str = "info") -> None:
        self.lines.append(message)

    def cancel_requested(self) -> bool:
        return self.cancel_after is not None and len(self.progress_calls) >= self.cancel_after

    def check_cancelled(self) -> None:
        if self.cancel_requested():
            raise Cancelled("cancelled")


@pytest.fixture(scope="module")
def pool(zfs_host):
    zfs_host.reset()
    runner = zfs_host.runner(600)
    runner.run(["zpool", "create", "-f", "-m", "/tank", "tank", zfs_host.disk_path(zfs_host.disks[0])])
    for dataset in ("tank/a", "tank/a/vms", "tank/b", "tank/b/vms"):
        runner.run(["zfs", "create", dataset])
    yield runner
    reap_senders(runner)
    runner.run(["zpool", "destroy", "-f", "tank"], check=False)
    runner.close()


def vm_tree(runner, name: str, written_mib: int = 16) -> str:
    """``tank/a/vms/NAME`` with an NVRAM file and a sparse 64 MiB zvol holding ``written_mib`` MiB."""
    dataset = f"tank/a/vms/{name}"
    runner.run(["zfs", "create", dataset])
    runner.run(["sh", "-c", f"echo nvram > /tank/a/vms/{name}/uefi-vars.fd"])
    runner.run(["zfs", "create", "-s", "-V", "64M", f"{dataset}/disk0"])
    runner.run(["udevadm", "settle"])
    runner.run(["test", "-b", f"/dev/zvol/{dataset}/disk0"])
    for index in range(written_mib // 4):
        runner.run(["dd", "if=/dev/urandom", f"of=/dev/zvol/{dataset}/disk0", "bs=1M", "count=4",
                    f"seek={8 + index * 4}", "conv=fsync,notrunc"])
    return dataset


def snapshots(runner, *datasets: str) -> list[str]:
    out = runner.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", *datasets], check=False).stdout
    return [line for line in out.split() if SNAPSHOT_PREFIX in line]



def test_warm_zfs_move_sends_small_increments_and_cleans_up(pool):
    source = ZfsEnd(pool, vm_tree(pool, "web", written_mib=40))
    target = ZfsEnd(pool, "tank/b/vms/web")
    data: dict = {}
    passes = ZfsPasses(Recorder(), source, target, data, "t1")
    planned = passes.estimate()
    assert planned >= 40 * MIB and snapshots(pool, "tank/a") == []  # the plan's snapshot is gone again
    # The "VM": a writer changing 1 MiB a second in the guest's zvol while the passes run.
    writer = ("i=0; while :; do i=$((i+1)); dd if=/dev/urandom of=/dev/zvol/tank/a/vms/web/disk0 bs=1M count=1 "
              "seek=$((i % 8)) conv=fsync,notrunc 2>/dev/null; sleep 1; done")
    pid = pool.run(["sh", "-c", f"({writer}) >/dev/null 2>&1 & echo $!"]).stdout.strip()
    try:
        time.sleep(2)
        converge(passes, running=True, max_passes=4, small=6 * MIB)
    finally:
        pool.run(["kill", pid], check=False)  # the VM stops
    time.sleep(1)
    passes.send("final copy (VM stopped)", 60, 80)
    assert passes.verify() == data["zfs_snapshots"][-1]
    sent = [entry["sent"] for entry in data["passes"]]
    assert data["passes"][0]["incremental"] is False and all(p["incremental"] for p in data["passes"][1:])
    # The writer rewrites the first 8 MiB of the disk; the full send carries 40+ MiB.
    assert sent[0] >= 40 * MIB and max(sent[1:]) <= 10 * MIB, sent  # increments ≪ the full send
    assert guest_sha256(pool, "/dev/zvol/tank/a/vms/web/disk0") == guest_sha256(pool, "/dev/zvol/tank/b/vms/web/disk0")
    passes.finish()
    assert snapshots(pool, "tank/a", "tank/b") == []
    # The copy is whole: file system, NVRAM file and zvol, not mounted until the peer registers it.
    assert pool.run(["zfs", "list", "-H", "-o", "name", "tank/b/vms/web/disk0"]).returncode == 0
    pool.run(["zfs", "mount", "tank/b/vms/web"])
    assert pool.run(["cat", "/tank/b/vms/web/uefi-vars.fd"]).stdout.strip() == "nvram"


def test_cancelled_move_leaves_nothing_on_the_target(pool):
    source = ZfsEnd(pool, vm_tree(pool, "slow", written_mib=40))
    # The peer reads ~640 KB/s (a throttled pipe), so the cancel lands while it receives.
    throttled = ZfsEnd(pool, "tank/b/vms/slow", wrap=lambda argv: argv if argv[1] != "receive" else [
        "sh", "-c", THROTTLE + " ".join(argv)])
    data: dict = {}
    passes = ZfsPasses(Recorder(cancel_after=2), source, throttled, data, "t2")
    with pytest.raises(Cancelled):
        passes.send("copy", 0, 80)
    reap_senders(pool, "zfs send", "zfs receive", "sh -c { while")  # the guest's side of the killed ssh
    passes.rollback()
    deadline = time.monotonic() + 60
    while True:  # a killed zfs receive may take a moment to let go of its partial state
        listing = pool.run(["zfs", "list", "-H", "-o", "name", "-t", "all", "-r", "tank/b/vms"]).stdout
        if "slow" not in listing and "%recv" not in listing:
            break
        assert time.monotonic() < deadline, listing
        time.sleep(1)
    assert snapshots(pool, "tank/a") == []


def test_a_name_taken_on_the_target_is_refused_and_left_alone(pool):
    source = ZfsEnd(pool, vm_tree(pool, "taken", written_mib=4))
    pool.run(["zfs", "create", "tank/b/vms/taken"])
    pool.run(["sh", "-c", "echo theirs > /tank/b/vms/taken/keep"])
    data: dict = {}
    passes = ZfsPasses(Recorder(), source, ZfsEnd(pool, "tank/b/vms/taken"), data, "t3")
    with pytest.raises(Conflict):  # refused before anything is sent
        passes.send("copy", 0, 80)
    passes.rollback()
    assert pool.run(["cat", "/tank/b/vms/taken/keep"]).stdout.strip() == "theirs"
    assert snapshots(pool, "tank/a", "tank/b") == []
