"""A restore drill's TCP sign of life: a port of the drill VM answering, on its isolated switch.

How the worker reaches a guest that must not touch any real network, the same way on bhyve and
QEMU (no QEMU user-mode ``hostfwd``): the drill VM's NICs — or one NIC added for the drill when
it has none — sit on the drill switch, a bridge without uplink. The host end of that bridge
has only an IPv6 **link-local** address (``fe80::/64``, scoped to that one interface), and the
guest's NIC gets one too as soon as its link is up, derived from its MAC (modified EUI-64,
RFC 4291 appendix A) unless the guest uses random/stable-privacy link-local addresses (then
name the guest's address in the check). The worker connects to ``[fe80::…%vm-<switch>]:PORT``:
no host address, route or firewall rule is added, nothing can be routed off the bridge, and the
guest's own (production) IPv4/IPv6 configuration does not matter — a restored copy keeps its
production address, which the host must never route to.

The host side: Linux gives a bridge its link-local address by itself once a member is up
(``net.ipv6.conf.<bridge>.disable_ipv6`` must be 0: sysctl(8), set here); FreeBSD leaves IPv6
disabled on a new interface: ``ifconfig <bridge> inet6 -ifdisabled auto_linklocal``
(ifconfig(8), flags ``ifdisabled`` and ``auto_linklocal``).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from typing import Any

CONNECT_TIMEOUT = 2.0
BANNER_WAIT = 2.0


def eui64_link_local(mac: str) -> str:
    """The IPv6 link-local address a NIC with ``mac`` forms (modified EUI-64: the U/L bit of the
    first octet flipped, ``ff:fe`` in the middle; RFC 4291 appendix A, RFC 4862 5.3)."""
    octets = [int(part, 16) for part in mac.replace("-", ":").split(":")]
    if len(octets) != 6:
        raise ValueError(f"{mac!r} is not a MAC address")
    octets[0] ^= 0x02
    words = [octets[0] << 8 | octets[1], octets[2] << 8 | 0xFF, 0xFE << 8 | octets[3], octets[4] << 8 | octets[5]]
    return str(ipaddress.IPv6Address("fe80::" + ":".join(f"{w:x}" for w in words)))


def link_local_argv(platform: str, interface: str) -> list[str]:
    """The host command that lets ``interface`` (the drill switch's bridge) have a link-local
    address (see the module docstring for each platform's man page)."""
    if platform == "freebsd":
        return ["ifconfig", interface, "inet6", "-ifdisabled", "auto_linklocal"]
    return ["sysctl", "-q", "-w", f"net.ipv6.conf.{interface}.disable_ipv6=0"]


def scoped(address: str, interface: str) -> str:
    """``address`` as a connect target on ``interface`` (a link-local address needs its zone)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return f"{ip}%{interface}" if ip.version == 6 and ip.is_link_local else str(ip)


def wait_for_port(addresses: list[str], port: int, timeout: float, cancelled: Any = lambda: False,
                  connect: Any = socket.create_connection) -> tuple[bool, str]:
    """Try to connect to ``port`` on each of ``addresses`` until one accepts or ``timeout``
    seconds pass; (answered, excerpt: where it answered and the first bytes it said, or the
    last error)."""
    deadline = time.monotonic() + timeout
    last = "no attempt"
    while time.monotonic() < deadline and not cancelled():
        for address in addresses:
            try:
                with connect((address, port), timeout=CONNECT_TIMEOUT) as sock:
                    sock.settimeout(BANNER_WAIT)
                    try:
                        said = sock.recv(200).decode(errors="replace").strip()
                    except OSError:
                        said = ""
                return True, f"TCP port {port} answered on [{address}]" + (f": {said}" if said else "")
            except OSError as exc:
                last = f"[{address}]:{port}: {exc.strerror or exc}"
        time.sleep(1.0)
    return False, f"TCP port {port} did not answer ({last})"
