"""Pure parsers for what the disk probe reads: ZFS labels, partition tables, mounts and swap.

Formats: zdb(8) ``-l`` (``name: 'tank'`` / ``state: N`` lines of the first label); Linux
udevadm(8) ``info --query=property`` (``KEY=value``), proc(5) ``/proc/partitions``,
``/proc/mounts`` (octal escapes such as ``\\040``) and ``/proc/swaps``; FreeBSD gpart(8)
``show -p`` (header ``=> start size geom scheme (human)``, one row per partition named by
provider), mount(8) ``-p`` (fstab(5) columns) and swapctl(8) ``-l``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# zdb -l prints the pool state as a number (sys/fs/zfs.h pool_state_t).
POOL_STATES = {0: "active", 1: "exported", 2: "destroyed", 3: "spare", 4: "l2cache", 5: "uninitialized", 6: "unavail"}


@dataclass(frozen=True)
class ZfsLabel:
    """The first readable ZFS label on a device: which pool it belongs to and its state."""

    pool: str
    state: str
    pool_guid: str = ""
    hostname: str = ""


def parse_zdb_label(text: str) -> ZfsLabel | None:
    """Parse ``zdb -l <device>``: ``None`` when no label unpacked (zdb then exits 2).

    Spare and cache devices carry a label without a pool name; they are reported with an
    empty ``pool``.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^\s{4}(name|state|pool_guid|hostname):\s*'?(.*?)'?\s*$", line)
        if match and match.group(1) not in values:
            values[match.group(1)] = match.group(2)
    if "state" not in values and "name" not in values:
        return None
    state = values.get("state", "")
    named = POOL_STATES.get(int(state), state) if state.isdigit() else state
    return ZfsLabel(values.get("name", ""), named, values.get("pool_guid", ""), values.get("hostname", ""))


def parse_udev_properties(text: str) -> dict[str, str]:
    """``udevadm info --query=property``: one ``KEY=value`` per line."""
    result = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key:
            result[key.strip()] = value.strip()
    return result


def parse_proc_partitions(text: str) -> list[str]:
    """Kernel names of every block device and partition in ``/proc/partitions``."""
    names = []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 4 and words[0].isdigit():
            names.append(words[3])
    return names


def linux_partitions(kernel_name: str, names: list[str]) -> list[str]:
    """The partitions of disk ``kernel_name`` among ``/proc/partitions`` names: the kernel
    appends the number (``vda`` → ``vda1``), after a ``p`` when the disk name ends in a digit
    (``nvme0n1`` → ``nvme0n1p1``, so ``nvme0n10`` is another disk)."""
    separator = "p" if kernel_name[-1:].isdigit() else ""
    pattern = re.compile(re.escape(kernel_name) + separator + r"\d+")
    return [name for name in names if name != kernel_name and pattern.fullmatch(name)]


def _unescape(field: str) -> str:
    # proc(5)/getmntent(3): space, tab, newline and backslash are written as octal escapes.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mount_list(text: str) -> list[tuple[str, str]]:
    """``(device, mountpoint)`` pairs from ``/proc/mounts`` (Linux) or ``mount -p`` (FreeBSD):
    both print fstab(5) columns, device first."""
    mounts = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and not line.lstrip().startswith("#"):
            mounts.append((_unescape(words[0]), _unescape(words[1])))
    return mounts


def parse_swap_list(text: str) -> list[str]:
    """Swap devices from ``/proc/swaps`` or ``swapctl -l`` (first column, header skipped)."""
    devices = []
    for line in text.splitlines():
        words = line.split()
        if words and words[0].startswith("/"):
            devices.append(_unescape(words[0]))
    return devices


@dataclass(frozen=True)
class GpartTable:
    """``gpart show -p <disk>``: the scheme (GPT, MBR, BSD) and the partitions' providers/types."""

    scheme: str
    partitions: list[tuple[str, str]]


def parse_gpart_show(text: str) -> GpartTable | None:
    """Parse ``gpart show -p <geom>`` (gpart(8)); ``None`` for empty output.

    The header is ``=>  start  size  geom  scheme  (human)``; partition rows are
    ``start  size  provider  type  (human)``; free space rows say ``- free -``.
    """
    scheme = ""
    partitions = []
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "=>" and len(words) >= 5:
            scheme = words[4]
            continue
        if len(words) >= 4 and words[0].isdigit() and words[2] != "-":
            partitions.append((words[2], words[3]))
    if not scheme:
        return None
    return GpartTable(scheme, partitions)
