"""FreeBSD argv builders and output parsers for switches: ifconfig(8) with if_bridge(4), tap(4)
and vlan(4) (reference freebsd-host.md 5.1 and 5.2).

Pure functions: nothing runs here. Conventions copied from vm-bhyve: bridges are described
``vm/<switch>`` and in interface group ``vm-switch``, taps described ``vmnet/<vm>/<n>/<switch>``
in group ``vm-port``, so ``ifconfig -g vm-port`` finds every VM port bHype made.
"""

from __future__ import annotations

import re

IFCONFIG = "/sbin/ifconfig"
SYSCTL = "/sbin/sysctl"
SWITCH_GROUP = "vm-switch"
PORT_GROUP = "vm-port"

Argv = list[str]

_MEMBER = re.compile(r"^\s+member:\s+(\S+)\s+flags=", re.MULTILINE)
_DESCRIPTION = re.compile(r"^\s+description:\s+(.*)$", re.MULTILINE)
_MTU = re.compile(r"^\S+: flags=\S+.*\bmtu (\d+)", re.MULTILINE)
_CLONED = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")


def list_interfaces() -> Argv:
    """ifconfig(8) ``-l``: every interface name on one line, separated by spaces."""
    return [IFCONFIG, "-l"]


def parse_interfaces(stdout: str) -> set[str]:
    """The names ``ifconfig -l`` printed."""
    return set(stdout.split())


def show(interface: str) -> Argv:
    """``ifconfig <if>``: status, description and (for a bridge) its members."""
    return [IFCONFIG, interface]


def parse_members(stdout: str) -> list[str]:
    """Bridge members from ``ifconfig <bridge>``: lines ``member: tap3 flags=143<…>``
    (if_bridge(4) status output)."""
    return _MEMBER.findall(stdout)


def parse_description(stdout: str) -> str | None:
    """The ``description:`` line of ``ifconfig <if>`` output, if any."""
    match = _DESCRIPTION.search(stdout)
    return match.group(1).strip() if match else None


def link(interface: str) -> Argv:
    """``ifconfig <if>``: its first line carries the live MTU (``… metric 0 mtu 9000``)."""
    return show(interface)


def parse_mtu(stdout: str) -> int | None:
    """The MTU on the first line of ``ifconfig <if>`` output (ifconfig(8)), if present."""
    match = _MTU.search(stdout)
    return int(match.group(1)) if match else None


def group_members(group: str = PORT_GROUP) -> Argv:
    """``ifconfig -g <group>``: the interfaces in an interface group, one per line."""
    return [IFCONFIG, "-g", group]


def create_bridge(bridge: str) -> list[Argv]:
    """Create the bridge under its stable name (``ifconfig bridge create name vm-lan``)."""
    return [[IFCONFIG, "bridge", "create", "name", bridge]]


def configure_bridge(bridge: str, description: str, mtu: int | None) -> list[Argv]:
    """Describe the bridge, put it in group ``vm-switch``, set the MTU, bring it up."""
    argv = [IFCONFIG, bridge, "descr", description, "group", SWITCH_GROUP]
    if mtu:
        argv += ["mtu", str(mtu)]
    return [argv + ["up"]]


def create_vlan(parent: str, vlan: int, name: str) -> list[Argv]:
    """A vlan(4) interface tagging ``vlan`` on ``parent``, brought up with its parent."""
    return [
        [IFCONFIG, parent, "up"],
        [IFCONFIG, "vlan", "create", "vlandev", parent, "vlan", str(vlan), "name", name, "up"],
    ]


def add_member(bridge: str, member: str) -> list[Argv]:
    """Bring ``member`` up and add it to ``bridge`` (``addm``)."""
    return [[IFCONFIG, member, "up"], [IFCONFIG, bridge, "addm", member]]


def remove_member(bridge: str, member: str) -> list[Argv]:
    """Take ``member`` out of ``bridge`` (``deletem``); the NIC itself stays as it was."""
    return [[IFCONFIG, bridge, "deletem", member]]


def set_address(bridge: str, address: str) -> list[Argv]:
    """The host's leg on the switch (``ifconfig bridge1 inet 10.77.0.1/24``, reference 5.1)."""
    family = "inet6" if ":" in address else "inet"
    return [[IFCONFIG, bridge, family, address]]


def destroy(interface: str) -> list[Argv]:
    """Destroy a cloned interface (bridge, tap, vlan); a bridge's members are released."""
    return [[IFCONFIG, interface, "destroy"]]


def create_tap(hint: str) -> Argv:
    """``ifconfig tap create``: the kernel picks the unit and prints the name (``tap3``).

    bhyve picks its tap backend by the ``tap``/``vmnet`` name prefix and opens ``/dev/<name>``
    (bhyve(8) network backends), so taps keep the kernel's name; ``hint`` is unused here.
    """
    return [IFCONFIG, "tap", "create"]


def created_tap(stdout: str, hint: str) -> str:
    """The name ``ifconfig tap create`` printed.

    :raises ValueError: the output is not one interface name.
    """
    name = stdout.strip()
    if not _CLONED.match(name):
        raise ValueError(f"ifconfig tap create printed {stdout!r}, not an interface name")
    return name


def configure_tap(tap: str, description: str, bridge: str | None, mtu: int | None) -> list[Argv]:
    """Describe the tap (group ``vm-port``), copy the switch MTU (members of one bridge must
    share it), bring it up and add it to ``bridge``."""
    argv = [IFCONFIG, tap, "descr", description, "group", PORT_GROUP]
    if mtu:
        argv += ["mtu", str(mtu)]
    steps = [argv + ["up"]]
    if bridge:
        steps.append([IFCONFIG, bridge, "addm", tap])
    return steps


def enable_forwarding() -> Argv:
    """IPv4 forwarding for NAT (``gateway_enable`` in rc.conf sets the same sysctl)."""
    return [SYSCTL, "net.inet.ip.forwarding=1"]
