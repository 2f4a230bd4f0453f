"""ZFS ARC and pool readings on FreeBSD: argv builders and pure parsers (recorded samples in
``tests/monitor/samples/``), run through the worker's runner once per tick for all pools.

* ``sysctl kstat.zfs.misc.arcstats.size …``: sysctl(8) prints ``name: value`` per OID asked;
  OpenZFS maps each kstat to ``kstat.<module>.<class>.<name>.<stat>`` (spl_kstat.c), the ARC's
  in ``module/zfs/arc.c`` ``arc_stats`` (reference next-features.md 6).
* ``zpool list -Hp -o name,size,alloc,free,frag,cap,health``: zpool-list(8); ``-H`` one TAB
  between fields, ``-p`` exact numbers (``cap`` as ``31``, ``frag`` as ``12`` or ``-``)
  (reference freebsd-host.md 6.1, 6.2).
"""

from __future__ import annotations

from typing import Any

ARC_STATS = ("size", "c", "c_min", "c_max", "hits", "misses")
ARC_PREFIX = "kstat.zfs.misc.arcstats."
POOL_FIELDS = ("name", "size", "alloc", "free", "frag", "cap", "health")
# zpool(8) health values; anything but ONLINE is a pool that needs someone.
HEALTHY = "ONLINE"


def arcstats_argv() -> list[str]:
    """sysctl(8) of the ARC counters bHype keeps (one command for all of them)."""
    return ["sysctl", *(ARC_PREFIX + name for name in ARC_STATS)]


def parse_arcstats(text: str) -> dict[str, int]:
    """``kstat.zfs.misc.arcstats.size: 123`` lines → ``{"size": 123, …}``; other lines (an
    OID this kernel lacks is reported on stderr, not here) are skipped."""
    found: dict[str, int] = {}
    for line in text.splitlines():
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not name.startswith(ARC_PREFIX):
            continue
        try:
            found[name[len(ARC_PREFIX):]] = int(value.strip())
        except ValueError:
            continue
    return found


def zpool_list_argv() -> list[str]:
    """zpool-list(8) with exact numbers and no header, the columns :func:`parse_zpool_list` reads."""
    return ["zpool", "list", "-Hp", "-o", ",".join(POOL_FIELDS)]


def _number(value: str) -> int | None:
    return None if value in ("-", "") else int(value.rstrip("%"))


def parse_zpool_list(text: str) -> list[dict[str, Any]]:
    """One dict per pool: ``name``, ``size``/``alloc``/``free`` (bytes), ``frag``/``cap``
    (percent, ``None`` for ``-``) and ``health``.

    :raises ValueError: a line without the seven TAB-separated fields.
    """
    pools = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(POOL_FIELDS):
            raise ValueError(f"zpool list: expected {len(POOL_FIELDS)} TAB-separated fields, got {line!r}")
        name, size, alloc, free, frag, cap, health = fields
        pools.append({"name": name, "size": _number(size), "alloc": _number(alloc), "free": _number(free),
                      "frag": _number(frag), "cap": _number(cap), "health": health.strip()})
    return pools


def read_zfs(runner: Any, timeout: float) -> dict[str, Any]:
    """ARC and pools through ``runner`` (two commands per tick for the whole host); a host
    without ZFS gives empty answers, not an error."""
    arc = runner.run(arcstats_argv(), timeout=timeout, check=False)
    pools = runner.run(zpool_list_argv(), timeout=timeout, check=False)
    return {
        # sysctl exits 1 when one OID is unknown but still prints the others.
        "arc": parse_arcstats(arc.stdout or ""),
        "pools": parse_zpool_list(pools.stdout or "") if pools.returncode == 0 else [],
    }
