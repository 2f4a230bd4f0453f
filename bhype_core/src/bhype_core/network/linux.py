"""Linux argv builders and output parsers for switches: iproute2 ip-link(8) bridges, tuntap
(ip-tuntap(8)) and 802.1Q vlan links; the same operations as :mod:`.freebsd`.

Pure functions: nothing runs here. bHype marks its interfaces with an ``alias`` (Linux's
interface description) of the same text as the FreeBSD ``descr``.
"""

from __future__ import annotations

import json
from typing import Any

IP = "ip"
SYSCTL = "sysctl"

Argv = list[str]


def list_interfaces() -> Argv:
    """``ip -j link show``: every link as JSON (name, master, flags)."""
    return [IP, "-j", "link", "show"]


def _links(stdout: str) -> list[dict[str, Any]]:
    data = json.loads(stdout or "[]")
    return [link for link in data if isinstance(link, dict) and "ifname" in link]


def parse_interfaces(stdout: str) -> set[str]:
    """Link names from ``ip -j link show``."""
    return {link["ifname"] for link in _links(stdout)}


def show(interface: str) -> Argv:
    """``ip -j -d link show master <if>``: the links enslaved to a bridge, as JSON."""
    return [IP, "-j", "-d", "link", "show", "master", interface]


def parse_members(stdout: str) -> list[str]:
    """Member names from :func:`show` output."""
    return [link["ifname"] for link in _links(stdout)]


def link(interface: str) -> Argv:
    """``ip -j link show dev <if>``: the link itself as JSON (ip-link(8)), with its live MTU."""
    return [IP, "-j", "link", "show", "dev", interface]


def parse_mtu(stdout: str) -> int | None:
    """The ``mtu`` of the first link in :func:`link` output, if present."""
    for entry in _links(stdout):
        mtu = entry.get("mtu")
        return mtu if isinstance(mtu, int) and not isinstance(mtu, bool) else None
    return None


def create_bridge(bridge: str) -> list[Argv]:
    """``ip link add name <bridge> type bridge``."""
    return [[IP, "link", "add", "name", bridge, "type", "bridge"]]


def configure_bridge(bridge: str, description: str, mtu: int | None) -> list[Argv]:
    """Set the alias, the MTU and bring the bridge up."""
    argv = [IP, "link", "set", "dev", bridge, "alias", description]
    if mtu:
        argv += ["mtu", str(mtu)]
    return [argv + ["up"]]


def create_vlan(parent: str, vlan: int, name: str) -> list[Argv]:
    """An 802.1Q link tagging ``vlan`` on ``parent``, both up (needs the 8021q module)."""
    return [
        [IP, "link", "set", "dev", parent, "up"],
        [IP, "link", "add", "link", parent, "name", name, "type", "vlan", "id", str(vlan)],
        [IP, "link", "set", "dev", name, "up"],
    ]


def add_member(bridge: str, member: str) -> list[Argv]:
    """Enslave ``member`` to ``bridge`` and bring it up."""
    return [[IP, "link", "set", "dev", member, "master", bridge, "up"]]


def remove_member(bridge: str, member: str) -> list[Argv]:
    """Release ``member`` from its bridge."""
    return [[IP, "link", "set", "dev", member, "nomaster"]]


def set_address(bridge: str, address: str) -> list[Argv]:
    """The host's leg on the switch (``replace``: idempotent when re-applied)."""
    return [[IP, "addr", "replace", address, "dev", bridge]]


def destroy(interface: str) -> list[Argv]:
    """Delete a link (bridge, tap, vlan); a bridge's members are released."""
    return [[IP, "link", "del", "dev", interface]]


def create_tap(hint: str) -> Argv:
    """A persistent tap named ``hint`` (QEMU opens it by name with ``script=no``)."""
    return [IP, "tuntap", "add", "dev", hint, "mode", "tap"]


def created_tap(stdout: str, hint: str) -> str:
    """``ip tuntap add`` prints nothing: the tap has the name asked for."""
    return hint


def configure_tap(tap: str, description: str, bridge: str | None, mtu: int | None) -> list[Argv]:
    """Alias, MTU, master bridge and up, in one ``ip link set``."""
    argv = [IP, "link", "set", "dev", tap, "alias", description]
    if mtu:
        argv += ["mtu", str(mtu)]
    if bridge:
        argv += ["master", bridge]
    return [argv + ["up"]]


def enable_forwarding() -> Argv:
    """IPv4 forwarding for NAT."""
    return [SYSCTL, "-w", "net.ipv4.ip_forward=1"]
