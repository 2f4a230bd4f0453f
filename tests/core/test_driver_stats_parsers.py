"""Statistics parsers (issue 12) against recorded samples (bhyvectl, rctl: reference
freebsd-host.md 3.3 and 4.4), this process's own proc(5) files and a QMP answer's shape."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import pytest

from bhype_core.drivers.capabilities import DiskStats
from bhype_core.drivers.stats_parsers import (
    bhyvectl_stats_argv,
    parse_bhyvectl_stats,
    parse_blockstats,
    parse_proc,
    parse_rctl_usage,
    rctl_usage_argv,
)
from bhype_core.host.runner import LocalRunner

SAMPLES = Path(__file__).parent / "samples"


def test_bhyvectl_stats_split_on_the_last_tab_with_either_header() -> None:
    text = (SAMPLES / "bhyvectl-get-stats.txt").read_text()
    counters = parse_bhyvectl_stats(text)
    assert counters["vcpu total runtime"] == 912233810571 and counters["Resident memory"] == 3221225472
    assert len(counters) == 8  # the header line is no counter
    older = text.replace("vcpu0 stats:", "vcpu0")  # older releases print the bare header
    assert parse_bhyvectl_stats(older) == counters


def test_bhyvectl_stats_argv_refuses_option_like_names() -> None:
    assert bhyvectl_stats_argv("/usr/sbin/bhyvectl", "bhype-web1", 1) == [
        "/usr/sbin/bhyvectl", "--vm=bhype-web1", "--get-stats", "--cpu=1"]
    with pytest.raises(ValueError):
        bhyvectl_stats_argv("/usr/sbin/bhyvectl", "--destroy")


def test_rctl_usage_by_key() -> None:
    usage = parse_rctl_usage((SAMPLES / "rctl-usage.txt").read_text())
    assert (usage["cputime"], usage["memoryuse"], usage["writeiops"]) == (1523, 2149416960, 40)
    assert rctl_usage_argv("/usr/bin/rctl", 4242) == ["/usr/bin/rctl", "-u", "process:4242"]
    assert parse_rctl_usage("rctl: RACCT/RCTL present, but disabled\n") == {}


def read_own_proc() -> str:
    return LocalRunner().run(["cat", f"/proc/{os.getpid()}/stat", f"/proc/{os.getpid()}/status"]).stdout


def test_proc_of_this_process_matches_getrusage_and_sees_memory_grow() -> None:
    """Read this very process's proc(5) files through the runner: CPU time lies between what
    getrusage(2) said just before and just after, and touching 64 MiB more shows in the RSS."""
    ticks = os.sysconf("SC_CLK_TCK")
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu, rss = parse_proc(read_own_proc(), ticks)
    after = resource.getrusage(resource.RUSAGE_SELF)
    tick = 1 / ticks
    assert cpu is not None and before.ru_utime + before.ru_stime - 2 * tick <= cpu
    assert cpu <= after.ru_utime + after.ru_stime + 2 * tick
    block = bytearray(64 * 2**20)
    for offset in range(0, len(block), 4096):
        block[offset] = 1  # touch every page so the kernel backs it
    _, grown = parse_proc(read_own_proc(), ticks)
    assert rss is not None and grown is not None and grown - rss >= 60 * 2**20
    del block


def test_proc_command_names_with_parentheses_and_spaces() -> None:
    stat = "42 (qemu (x) y) S " + " ".join(str(n) for n in range(4, 53))
    cpu, rss = parse_proc(stat + "\nName:\tqemu\nVmRSS:\t  2048 kB\n", 100)
    assert cpu == (14 + 15) / 100 and rss == 2048 * 1024


def test_blockstats_by_device_skipping_anonymous_nodes() -> None:
    answer = [
        {"device": "disk0", "stats": {"rd_bytes": 512, "wr_bytes": 0, "rd_operations": 1, "wr_operations": 0}},
        {"device": "", "node-name": "#block123", "stats": {"rd_bytes": 9}},
    ]
    assert parse_blockstats(answer) == {"disk0": DiskStats(512, 0, 1, 0)}
