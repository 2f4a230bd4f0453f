"""Dataset replication in passes and the block-aware zvol copy (``bhype_core.transfer``): argv
and the ``zfs send -nvP`` parser on recorded output, then real OpenZFS in the test guest (one
pool, two datasets standing for two hosts' datastores): a full pass, an incremental pass that
sends only the change, equal GUIDs and contents, a refused pass and a cancelled one leaving no
partial dataset, and a zvol snapshot copied into a sparse image with the same bytes."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from bhype_core.errors import BhypeError, Conflict, ValidationErrors
from bhype_core.tasks import Cancelled
from bhype_core.testing.zfs_guest import guest_sha256, reap_senders
from bhype_core.transfer import (
    TransferFailed,
    ZfsEnd,
    destroy_snapshot,
    destroy_tree,
    estimate,
    parse_send_size,
    replica_receive_argv,
    replica_send_argv,
    same_snapshot,
    send_pass,
    take_snapshot,
    zvol_to_image,
)
from bhype_core.transfer.zfs_replica import exists
from bhype_core.transfer.zvol_copy import clone_name, write_argv

FIXTURES = Path(__file__).parent / "fixtures"
MIB = 2**20
# A receiver reading ~640 KB/s (busybox dd in a loop) that ends at the end of its input, so a
# cancelled sender closes it and zfs receive sees a truncated stream.
THROTTLE = ("{ while :; do dd bs=64k count=1 2>/dev/null >/tmp/chunk.$$; [ -s /tmp/chunk.$$ ] || break; "
            "cat /tmp/chunk.$$; sleep 0.1; done; rm -f /tmp/chunk.$$; } | ")


def test_replica_argv_follow_the_man_pages():
    assert replica_send_argv("tank/vms/web@m1") == ["zfs", "send", "-R", "-c", "-v", "-P", "tank/vms/web@m1"]
    assert replica_send_argv("tank/vms/web@m2", "@m1", estimate=True) == [
        "zfs", "send", "-R", "-c", "-v", "-P", "-n", "-i", "@m1", "tank/vms/web@m2"]
    assert replica_receive_argv("tank/in/web", incremental=False) == ["zfs", "receive", "-u", "tank/in/web"]
    assert replica_receive_argv("tank/in/web", incremental=True) == ["zfs", "receive", "-u", "-F", "tank/in/web"]
    for bad in (lambda: replica_send_argv("-x@y"), lambda: replica_send_argv("tank/web"),
                lambda: replica_send_argv("tank/web@b", "b"), lambda: replica_receive_argv("t@x", incremental=False),
                lambda: ZfsEnd(None, "-rf"), lambda: ZfsEnd(None, "tank/x").snapshot("a/b")):
        with pytest.raises(ValidationErrors):
            bad()
    assert clone_name("tank/bhype/vms/web/disk0@m1").startswith("tank/bhype-copy-")
    assert write_argv("/data/disk0.img") == ["dd", "of=/data/disk0.img", "bs=1048576", "conv=sparse"]
    with pytest.raises(ValidationErrors):
        write_argv("relative.img")


def test_send_size_parser_reads_recorded_dry_runs():
    # OpenZFS 2.3.2 (the test guest), `zfs send -R -c -v -P -n [-i @m1] tank/a/web@mN`.
    full = (FIXTURES / "zfs_send_nvP_replica_full.txt").read_text()
    delta = (FIXTURES / "zfs_send_nvP_replica_incremental.txt").read_text()
    assert parse_send_size(full) > 16 * MIB
    assert 0 < parse_send_size(delta) < 4 * MIB
    with pytest.raises(BhypeError, match="no 'size' line"):
        parse_send_size("full\ttank/a@x\t123\n")


# ------------------------------------------------------------------------------------------
# Real OpenZFS (the test guest over SSH).

@pytest.fixture(scope="module")
def pool(zfs_host):
    """Pool ``tank`` on the guest's first disk: ``tank/a`` and ``tank/b`` stand for two hosts'
    datastores, ``tank/img`` (no compression: holes show) for a directory datastore."""
    zfs_host.reset()
    runner = zfs_host.runner(600)
    run = runner.run
    run(["zpool", "create", "-f", "-m", "/tank", "tank", zfs_host.disk_path(zfs_host.disks[0])])
    for dataset in ("tank/a", "tank/b", "tank/img"):
        run(["zfs", "create", "-o", "compression=off", dataset])
    run(["zfs", "create", "tank/a/web"])
    run(["zfs", "create", "-s", "-V", "64M", "tank/a/web/disk0"])
    run(["udevadm", "settle"])
    run(["test", "-b", "/dev/zvol/tank/a/web/disk0"])
    for seek in (0, 20, 40, 60):  # 16 MiB written, spread over the 64 MiB disk
        run(["dd", "if=/dev/urandom", "of=/dev/zvol/tank/a/web/disk0", "bs=1M", "count=4", f"seek={seek}",
             "conv=fsync,notrunc"])
    run(["sh", "-c", "echo nvram > /tank/a/web/uefi-vars.fd"])
    yield runner
    reap_senders(runner)
    run(["zpool", "destroy", "-f", "tank"], check=False)
    runner.close()



def gone(end: ZfsEnd, timeout: float = 60) -> bool:
    """Whether ``end``'s dataset is absent, with no partial receive state (``%recv``) anywhere in
    its parent (a killed ``zfs receive`` may take a moment to let go)."""
    deadline = time.monotonic() + timeout
    parent = end.dataset.rsplit("/", 1)[0]
    while True:
        listing = end.run(["zfs", "list", "-H", "-o", "name", "-t", "all", "-r", parent]).stdout
        if end.dataset not in listing.split() and "%recv" not in listing:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(1)


def test_full_then_incremental_passes_send_only_the_change(pool):
    source, target = ZfsEnd(pool, "tank/a/web"), ZfsEnd(pool, "tank/b/web")
    take_snapshot(source, "m1")
    full_estimate = estimate(source, "m1")
    full = send_pass(source, target, "m1")
    assert full.bytes_sent >= 16 * MIB and full_estimate >= 16 * MIB
    # The VM keeps writing: 1 MiB changes; the next pass carries about that.
    pool.run(["dd", "if=/dev/urandom", "of=/dev/zvol/tank/a/web/disk0", "bs=1M", "count=1", "seek=30",
              "conv=fsync,notrunc"])
    take_snapshot(source, "m2")
    delta_estimate = estimate(source, "m2", base="m1")
    delta = send_pass(source, target, "m2", base="m1")
    assert MIB <= delta.bytes_sent < full.bytes_sent / 8, (delta, full)
    assert delta_estimate < full_estimate / 8
    assert same_snapshot(source, target, "m2") and not same_snapshot(source, ZfsEnd(pool, "tank/b/none"), "m2")
    assert guest_sha256(pool, "/dev/zvol/tank/a/web/disk0") == guest_sha256(pool, "/dev/zvol/tank/b/web/disk0")
    # The received file system is not mounted (-u): nothing on the receiving host touches it.
    assert pool.run(["zfs", "get", "-H", "-o", "value", "mounted", "tank/b/web"]).stdout.strip() == "no"

    # An incremental whose base the target lacks: refused by the receiver, the copy untouched.
    take_snapshot(source, "m3")
    with pytest.raises(TransferFailed):
        send_pass(source, target, "m3", base="m0-missing")
    with pytest.raises(Conflict, match="nothing was sent"):  # a full pass onto an existing dataset
        send_pass(source, target, "m3")
    assert same_snapshot(source, target, "m2")

    # Clean-up after success: the move's snapshots go on both ends; a rollback removes the copy.
    for name in ("m1", "m2", "m3"):
        destroy_snapshot(source, name)
        destroy_snapshot(target, name)
    assert destroy_snapshot(source, "m1") is False
    left = pool.run(["zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-r", "tank/a", "tank/b"]).stdout
    assert left.strip() == ""
    assert destroy_tree(target) is True and not exists(target) and destroy_tree(target) is False


def test_cancelled_pass_leaves_no_partial_dataset(pool):
    source = ZfsEnd(pool, "tank/a/web")
    take_snapshot(source, "c1")
    # A receiver throttled to ~640 KB/s (busybox dd in a loop), so the send is cancelled part-way
    # while zfs receive holds a partial stream.
    slow = ZfsEnd(pool, "tank/b/slow", wrap=lambda argv: argv if argv[1] != "receive" else [
        "sh", "-c", THROTTLE + " ".join(argv)])
    progress: list = []
    with pytest.raises(Cancelled):
        send_pass(source, slow, "c1", on_progress=progress.append, cancel=lambda: len(progress) >= 2)
    reap_senders(pool, "zfs send", "zfs receive", "sh -c { while")  # the guest's side of the killed ssh
    # Never a partial dataset: either nothing, or (the whole stream was already produced into
    # the pipes and ssh buffers when the cancel came) the complete snapshot.
    target = ZfsEnd(pool, "tank/b/slow")
    if not gone(target, timeout=30):
        assert same_snapshot(source, target, "c1"), "a partial receive stayed on the target"
        listing = pool.run(["zfs", "list", "-H", "-o", "name", "-t", "all", "-r", "tank/b"]).stdout
        assert "%recv" not in listing
        destroy_tree(target)
    destroy_snapshot(source, "c1")


def test_zvol_snapshot_becomes_a_sparse_image_with_the_same_bytes(pool, tmp_path):
    # ZFS (the guest) → a directory on another host (this machine, GNU dd): the zvol's blocks
    # stream through the runner's pipe; the image here is sparse and has the same bytes.
    from bhype_core.host.runner import LocalRunner

    source = ZfsEnd(pool, "tank/a/web")
    take_snapshot(source, "i1")
    local = LocalRunner(default_timeout=600)
    image = tmp_path / "disk0.img"
    copy = zvol_to_image(pool, "tank/a/web/disk0@i1", str(image), 64 * MIB, to=local,
                         settle=[["udevadm", "settle"]])
    assert copy.size == 64 * MIB == image.stat().st_size
    assert copy.allocated < 32 * MIB and image.stat().st_blocks * 512 < 32 * MIB, copy  # zero blocks skipped
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    assert digest == guest_sha256(pool, "/dev/zvol/tank/a/web/disk0")
    clones = pool.run(["zfs", "list", "-H", "-o", "name", "-r", "tank"]).stdout
    assert "bhype-copy-" not in clones  # the temporary clone is gone
    # No such directory where the image goes: a clear error before anything is read.
    with pytest.raises(ValidationErrors, match="is not a directory"):
        zvol_to_image(pool, "tank/a/web/disk0@i1", str(tmp_path / "missing" / "disk0.img"), 64 * MIB, to=local,
                      settle=[["udevadm", "settle"]])
    assert "bhype-copy-" not in pool.run(["zfs", "list", "-H", "-o", "name", "-r", "tank"]).stdout
    destroy_snapshot(source, "i1")


pytestmark_guest = [pytest.mark.guest, pytest.mark.slow]
for _test in (test_full_then_incremental_passes_send_only_the_change, test_cancelled_pass_leaves_no_partial_dataset,
              test_zvol_snapshot_becomes_a_sparse_image_with_the_same_bytes):
    for _mark in pytestmark_guest:
        _mark(_test)
