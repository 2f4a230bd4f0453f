"""send_receive on real OpenZFS (the ZFS test guest over SSH): a full then an incremental
``zfs send -v -P | zfs receive`` with progress, a cancelled send leaves a resumable receive."""

from __future__ import annotations

import pytest

from bhype_core.tasks import Cancelled
from bhype_core.transfer import TransferFailed, send_receive, zfs_receive_argv, zfs_resume_argv, zfs_send_argv

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def test_full_incremental_and_cancelled_sends(fresh_zfs_host):
    host = fresh_zfs_host
    runner = host.runner(600)
    run = runner.run
    run(["zpool", "create", "-f", "tank", host.disk_path(host.disks[0])])
    run(["zfs", "create", "tank/src"])
    run(["zfs", "create", "-V", "32M", "tank/src/disk0"])
    run(["udevadm", "settle"])
    run(["test", "-b", "/dev/zvol/tank/src/disk0"])
    run(["dd", "if=/dev/urandom", "of=/dev/zvol/tank/src/disk0", "bs=1M", "count=12", "conv=fsync"])
    run(["zfs", "snapshot", "-r", "tank/src@s1"])
    seen: list = []
    full = send_receive(runner, zfs_send_argv("tank/src/disk0@s1"), zfs_receive_argv("tank/bk"),
                        on_progress=seen.append)
    assert full.estimated and full.bytes_sent == full.estimated >= 12 * 2**20
    assert seen and all(p.bytes_total == full.estimated for p in seen)
    run(["dd", "if=/dev/urandom", "of=/dev/zvol/tank/src/disk0", "bs=1M", "count=1", "seek=20", "conv=fsync"])
    run(["zfs", "snapshot", "tank/src/disk0@s2"])
    delta = send_receive(runner, zfs_send_argv("tank/src/disk0@s2", base="@s1"), zfs_receive_argv("tank/bk"))
    assert 2**20 <= delta.bytes_sent < 4 * 2**20
    digests = [run(["sha256sum", f"/dev/zvol/{name}"]).stdout.split()[0] for name in ("tank/src/disk0", "tank/bk")]
    run(["udevadm", "settle"])
    assert digests[0] == digests[1]
    # An incremental stream for a receiver without its base: a clear failure from the receiving side.
    with pytest.raises(TransferFailed, match="zfs send") as caught:
        send_receive(runner, zfs_send_argv("tank/src/disk0@s2", base="@s1"), zfs_receive_argv("tank/none"))
    assert "does not exist" in caught.value.stderr
    # Cancel part way through (a slow receiver): both sides stop, a resume token remains.
    run(["zfs", "create", "-V", "64M", "tank/src/big"])
    run(["udevadm", "settle"])  # else dd may write a plain file where the zvol node appears later
    run(["test", "-b", "/dev/zvol/tank/src/big"])
    run(["dd", "if=/dev/urandom", "of=/dev/zvol/tank/src/big", "bs=1M", "count=48", "conv=fsync"])
    run(["zfs", "snapshot", "tank/src/big@s1"])
    # The receiver holds the stream for 20 s before reading it, so the sender (blocked on a full
    # pipe) cannot finish first however loaded the machine is; zfs send -P still prints its
    # once-a-second progress while blocked, and the first line cancels.
    slow = ["sh", "-c", "dd bs=16k 2>/dev/null | (sleep 20; zfs receive -u -s tank/big)"]
    progress: list = []
    with pytest.raises(Cancelled):
        send_receive(runner, zfs_send_argv("tank/src/big@s1"), slow, on_progress=progress.append,
                     cancel=lambda: len(progress) >= 1)
    token = run(["zfs", "get", "-H", "-o", "value", "receive_resume_token", "tank/big"], check=False).stdout.strip()
    if token and token != "-":  # the receive got far enough to leave a resumable state
        send_receive(runner, zfs_resume_argv(token), zfs_receive_argv("tank/big"))
    runner.close()
