"""rsync ``--info=progress2`` and ``--stats`` parsers against output recorded from real rsync
3.5.0 (tests/core/samples/transfer/; rsync(1) ``--info=progress2``, ``--stats``), the exit
values, and the argv builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from bhype_core.errors import ValidationErrors
from bhype_core.transfer import (
    RsyncExit,
    SshTransport,
    daemon_url,
    describe_exit,
    parse_rsync_progress,
    parse_rsync_stats,
    rsync_argv,
)

SAMPLES = Path(__file__).parent / "samples" / "transfer"


def progress_lines(name: str) -> list:
    text = (SAMPLES / name).read_text()
    return [found for line in text.replace("\r", "\n").splitlines() if (found := parse_rsync_progress(line))]


def test_progress_of_a_full_copy_grows_to_the_file_size():
    found = progress_lines("rsync-3.5.0-full-progress2-stats.txt")
    assert [p.bytes_done for p in found] == [3, 3, 22_446_083, 43_876_355, 50_000_003, 50_000_003]
    middle = found[2]
    assert middle.bytes_total == round(22_446_083 * 100 / 44)  # from the percentage
    assert middle.rate == pytest.approx(20.04 * 1024**2)  # progress.c: units of 1024
    assert middle.eta_seconds == 1
    assert middle.percent == pytest.approx(44, abs=0.5)
    last = found[-1]
    assert (last.bytes_total, last.eta_seconds, last.percent) == (50_000_003, 0.0, 100.0)
    assert found[0].bytes_total is None  # 0 %: the total is not known yet


def test_progress_without_thousands_separators():
    found = progress_lines("rsync-3.5.0-no-h-progress2-stats.txt")
    assert found[2].bytes_done == 32_440_323 and found[-1].bytes_done == 50_000_003


def test_progress_of_the_manual_example_and_other_lines():
    # rsync.1.md's own example, with ir-chk (incremental recursion still scanning)
    line = "      1,238,099 100%  146.38kB/s    0:00:08  (xfr#5, ir-chk=169/396)"
    found = parse_rsync_progress(line)
    assert found is not None and found.bytes_done == 1_238_099 and found.rate == pytest.approx(146.38 * 1024)
    for other in ["", "sending incremental file list", "disk0.img", "Total bytes sent: 35,522",
                  "rsync error: some files could not be transferred (code 23)"]:
        assert parse_rsync_progress(other) is None


def test_stats_of_a_delta_transfer():
    stats = parse_rsync_stats((SAMPLES / "rsync-3.5.0-delta-progress2-stats.txt").read_text())
    assert (stats.files, stats.files_transferred, stats.created_files) == (3, 1, 0)
    assert (stats.literal_bytes, stats.matched_bytes) == (7_064, 49_992_936)
    assert (stats.bytes_sent, stats.bytes_received, stats.total_size) == (35_522, 49_588, 50_000_003)
    assert stats.wire_bytes == 35_522 + 49_588


def test_stats_of_a_full_copy_and_without_separators():
    full = parse_rsync_stats((SAMPLES / "rsync-3.5.0-full-progress2-stats.txt").read_text())
    assert (full.literal_bytes, full.matched_bytes, full.bytes_sent) == (50_000_003, 0, 50_012_380)
    plain = parse_rsync_stats((SAMPLES / "rsync-3.5.0-no-h-progress2-stats.txt").read_text())
    assert plain.literal_bytes == 50_000_003


def test_no_stats_block_is_an_error():
    with pytest.raises(ValueError, match="no rsync --stats block"):
        parse_rsync_stats("sent 1 bytes  received 2 bytes\n")


def test_exit_values():
    assert RsyncExit(23) is RsyncExit.PARTIAL
    assert "password" in describe_exit(5)
    assert "full" in describe_exit(11)
    assert describe_exit(0) == "success" and describe_exit(99) == "exit status 99"
    assert describe_exit(-9) == "killed by signal 9"


def test_rsync_argv_for_a_posix_daemon_target():
    argv = rsync_argv(["/vm/a/disk0.img"], "rsync://bk@nas:8730/vms/a/2/", password_file="/var/db/bhype/s/nas",
                      link_dest=["../1"], io_timeout=60, connect_timeout=10)
    assert argv[:5] == ["rsync", "-a", "--no-whole-file", "--inplace", "--link-dest=../1"]
    assert "--password-file=/var/db/bhype/s/nas" in argv
    assert {"--info=progress2", "--stats", "--timeout=60", "--contimeout=10"} <= set(argv)
    assert argv[-2:] == ["/vm/a/disk0.img", "rsync://bk@nas:8730/vms/a/2/"]


def test_rsync_argv_for_a_windows_target_keeps_no_posix_metadata():
    argv = rsync_argv(["/src/"], "/mnt/win/", windows=True, copy_dest=["/mnt/win/prev"])
    assert "-a" not in argv and "-rlt" in argv
    assert {"--no-perms", "--no-owner", "--no-group", "--modify-window=1", "--copy-dest=/mnt/win/prev"} <= set(argv)


def test_rsync_argv_over_ssh_pins_the_host_key():
    ssh = SshTransport(key_file="/k/id", known_hosts="/k/known hosts", port=2222)
    argv = rsync_argv(["/src/"], "bk@host:/backups/", ssh=ssh)
    command = argv[argv.index("-e") + 1]
    assert command.startswith("ssh -i /k/id -p 2222 ")
    assert "StrictHostKeyChecking=yes" in command and "'UserKnownHostsFile=/k/known hosts'" in command


@pytest.mark.parametrize("bad", ["", "-rf", "a\0b", "x\ny"])
def test_rsync_argv_refuses_unusable_paths(bad):
    with pytest.raises(ValidationErrors):
        rsync_argv([bad], "/dst")
    with pytest.raises(ValidationErrors):
        rsync_argv(["/src"], bad)


def test_daemon_url():
    assert daemon_url("nas", "vms", "/a/b/", user="bk", port=8730) == "rsync://bk@nas:8730/vms/a/b"
    assert daemon_url("::1", "vms") == "rsync://[::1]/vms"
    with pytest.raises(ValidationErrors):
        daemon_url("nas", "")


def zfs_progress(name: str):
    from bhype_core.transfer import ZfsSendProgress

    tracker = ZfsSendProgress()
    found = [p for line in (SAMPLES / name).read_text().splitlines() if (p := tracker.feed(line))]
    return tracker, found


def test_zfs_send_progress_of_a_full_send():
    tracker, found = zfs_progress("openzfs-2.3.2-zfs-send-v-P-full.txt")
    assert tracker.bytes_total == 21_267_608  # the "size" line comes first
    assert found[0].bytes_done == 835_736 and found[0].rate == 0.0 and found[0].eta_seconds is None
    assert found[1].rate == 2_956_128 - 835_736  # one second apart
    assert found[1].eta_seconds == pytest.approx((21_267_608 - 2_956_128) / (2_956_128 - 835_736))
    assert all(p.bytes_total == 21_267_608 for p in found)
    assert [p.bytes_done for p in found] == sorted(p.bytes_done for p in found)


def test_zfs_send_progress_of_an_incremental_send_and_of_an_estimate():
    tracker, found = zfs_progress("openzfs-2.3.2-zfs-send-v-P-incremental.txt")
    assert tracker.bytes_total == 8_522_208 and found[-1].bytes_done <= 8_522_208
    tracker, found = zfs_progress("openzfs-2.3.2-zfs-send-nvP.txt")  # -n: estimate only
    assert tracker.bytes_total == 8_522_208 and found == []


def test_zfs_argv_builders():
    from bhype_core.transfer import zfs_receive_argv, zfs_resume_argv, zfs_send_argv

    assert zfs_send_argv("tank/vm/a@s2", base="@s1") == ["zfs", "send", "-v", "-P", "-c", "-i", "@s1", "tank/vm/a@s2"]
    assert zfs_send_argv("tank/a@s", raw=True)[4] == "-w"
    assert zfs_receive_argv("bk/a") == ["zfs", "receive", "-u", "-s", "bk/a"]
    assert zfs_receive_argv("bk/a", force=True, resumable=False) == ["zfs", "receive", "-u", "-F", "bk/a"]
    assert zfs_resume_argv("1-abc-def")[-2:] == ["-t", "1-abc-def"]
    for call in (lambda: zfs_send_argv("tank/a"), lambda: zfs_receive_argv("bk/a@x"), lambda: zfs_resume_argv("")):
        with pytest.raises(ValidationErrors):
            call()
