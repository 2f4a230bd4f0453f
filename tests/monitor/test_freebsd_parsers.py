"""The FreeBSD readings against recorded samples (samples/README.md names each format's source):
ZFS ARC through sysctl(8), pools through zpool-list(8), and the driver stats the sampler uses on
bhyve (bhyvectl(8) ``--get-stats``, rctl(8) ``-u``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bhype_core.drivers.stats_parsers import parse_bhyvectl_stats, parse_rctl_usage
from bhype_monitor.zfs_sample import arcstats_argv, parse_arcstats, parse_zpool_list, zpool_list_argv

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_arcstats() -> None:
    assert arcstats_argv()[0] == "sysctl" and "kstat.zfs.misc.arcstats.size" in arcstats_argv()
    arc = parse_arcstats(sample("freebsd_arcstats.txt"))
    assert arc == {"size": 4294967296, "c": 5368709120, "c_min": 536870912, "c_max": 12884901888,
                   "hits": 912233810, "misses": 1204455}
    # Lines of other OIDs and garbage are ignored, not guessed at.
    assert parse_arcstats("vfs.zfs.arc.max: 0\nkstat.zfs.misc.arcstats.size: lots\n") == {}


def test_zpool_list() -> None:
    assert zpool_list_argv() == ["zpool", "list", "-Hp", "-o", "name,size,alloc,free,frag,cap,health"]
    tank, backup = parse_zpool_list(sample("freebsd_zpool_list.txt"))
    assert tank == {"name": "tank", "size": 3985729650688, "alloc": 1245233561600, "free": 2740496089088,
                    "frag": 12, "cap": 31, "health": "ONLINE"}
    assert (backup["frag"], backup["cap"], backup["health"]) == (None, 95, "DEGRADED")
    with pytest.raises(ValueError, match="7 TAB-separated fields"):
        parse_zpool_list("tank 100 50 50 1 50 ONLINE\n")  # spaces: not -H output


def test_bhyvectl_and_rctl_samples() -> None:
    counters = parse_bhyvectl_stats(sample("freebsd_bhyvectl_stats.txt"))
    assert counters["total number of vm exits"] == 58823301 and counters["Resident memory"] == 3221225472
    usage = parse_rctl_usage(sample("freebsd_rctl_usage.txt"))
    assert (usage["cputime"], usage["memoryuse"], usage["writebps"], usage["pcpu"]) == (1523, 2149416960, 524288, 37)
