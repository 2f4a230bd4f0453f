"""Parsers of the tools' output the update workflow reads, each citing its man page."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from bhype_core.plugin_api import BhypeError


@dataclass(frozen=True)
class BootEnvironment:
    """One line of ``bectl list -H`` (bectl(8), sbin/bectl/bectl_list.c)."""

    name: str
    active_now: bool  # "N": the running system booted from it
    active_reboot: bool  # "R": the loader boots it next
    temporary: bool  # "T": next boot only (bectl activate -t)
    mountpoint: str
    space: str
    created: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_bectl_list(text: str) -> list[BootEnvironment]:
    """``bectl list -H``: fields separated by one TAB, no padding, no header: name, active
    flags (any of ``N``, ``R``, ``T`` or ``-``), mountpoint, space, created (``%Y-%m-%d
    %H:%M``, which holds a space). bectl(8); next-features.md "bectl".

    :raises BhypeError: a line without the five fields (not ``bectl list -H`` output).
    """
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) != 5 or not fields[0]:
            raise BhypeError(f"bectl list -H, line {number}: expected 5 TAB-separated fields, got {line!r}")
        name, active, mountpoint, space, created = fields
        if active != "-" and not set(active) <= set("NRT"):
            raise BhypeError(f"bectl list -H, line {number}: unknown active flags {active!r}")
        found.append(BootEnvironment(name, "N" in active, "R" in active, "T" in active, mountpoint, space, created))
    return found


def booted(environments: list[BootEnvironment]) -> BootEnvironment | None:
    """The boot environment the running system booted from (flag ``N``)."""
    return next((be for be in environments if be.active_now), None)


def next_boot(environments: list[BootEnvironment]) -> BootEnvironment | None:
    """The one the loader boots next: a temporary activation (``T``) wins over ``R``."""
    return next((be for be in environments if be.temporary), None) or next(
        (be for be in environments if be.active_reboot), None)


_BOOTTIME = re.compile(r"\{\s*sec\s*=\s*(\d+),\s*usec\s*=\s*(\d+)\s*\}")


def parse_boottime(text: str) -> str:
    """``sysctl -n kern.boottime`` (sysctl(8); a ``struct timeval`` printed as ``{ sec = N,
    usec = M } <date>``) as ``N.M``: an identity of this boot.

    :raises BhypeError: no ``{ sec = …, usec = … }`` in ``text``.
    """
    match = _BOOTTIME.search(text)
    if not match:
        raise BhypeError(f"sysctl kern.boottime: unexpected output {text.strip()[:200]!r}")
    return f"{match.group(1)}.{match.group(2)}"


def nothing_to_install(output: str) -> bool:
    """Whether an installer said it had nothing to do: freebsd-update(8) ``install`` prints
    ``No updates are available to install.``; pkg-upgrade(8) ``Your packages are up to date.``"""
    return "No updates are available to install." in output or "Your packages are up to date." in output
