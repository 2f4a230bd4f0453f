"""NAT for a private switch: a pf(4) anchor on FreeBSD, an nftables table on Linux. Off unless
a switch asks for it; pure builders here, the host side runs them.

FreeBSD (pf.conf(5), pfctl(8), reference 5.4): rules go into anchor ``bhype/<switch>`` with
``pfctl -a bhype/<switch> -f -``. pf only evaluates an anchor that the main ruleset names, so
``/etc/pf.conf`` must contain ``nat-anchor "bhype/*"`` and ``anchor "bhype/*"`` once (the
admin's file: bHype never rewrites it; ``bhype doctor`` can check for the lines).

Linux (nft(8)): one table ``ip bhype_<bridge>`` per switch with a masquerade rule, replaced
as a whole, so applying twice is harmless and removing it touches nothing else.
"""

from __future__ import annotations

import re

from bhype_core.network.models import SwitchConfig

PFCTL = "/sbin/pfctl"
ROUTE = "/sbin/route"
NFT = "nft"
ANCHOR_ROOT = "bhype"
PF_CONF_LINES = ('nat-anchor "bhype/*"', 'anchor "bhype/*"')

Argv = list[str]


def pf_anchor(switch: SwitchConfig) -> str:
    """``bhype/<switch>``."""
    return f"{ANCHOR_ROOT}/{switch.name}"


def pf_rules(switch: SwitchConfig, egress: str) -> str:
    """The anchor's rules: translate the switch subnet leaving through ``egress`` to that
    interface's address (``($if)`` follows address changes), and let the bridge's traffic pass."""
    network = switch.network
    return (
        f"nat on {egress} inet from {network} to ! {network} -> ({egress})\n"
        f"pass quick on {switch.bridge} inet from {network} to any keep state\n"
    )


def pf_load(switch: SwitchConfig) -> Argv:
    """``pfctl -a bhype/<switch> -f -`` (rules on stdin): replaces the anchor's rules."""
    return [PFCTL, "-a", pf_anchor(switch), "-f", "-"]


def pf_flush(switch: SwitchConfig) -> Argv:
    """``pfctl -a bhype/<switch> -F all``: empties the anchor (NAT off)."""
    return [PFCTL, "-a", pf_anchor(switch), "-F", "all"]


def default_route() -> Argv:
    """``route -n get default``: its ``interface:`` line names the egress NIC (route(8))."""
    return [ROUTE, "-n", "get", "default"]


def parse_route_interface(stdout: str) -> str | None:
    """The ``interface: igb0`` value of ``route -n get`` output."""
    match = re.search(r"^\s*interface:\s*(\S+)", stdout, re.MULTILINE)
    return match.group(1) if match else None


def nft_table(switch: SwitchConfig) -> str:
    """``bhype_<bridge>`` with ``-`` as ``_`` (nft identifiers are letters, digits, ``_``)."""
    return "bhype_" + re.sub(r"[^A-Za-z0-9_]", "_", switch.bridge)


def nft_ruleset(switch: SwitchConfig) -> str:
    """An ``nft -f`` script: (re)create the switch's table with one masquerade rule.

    ``add table`` then ``delete table`` makes the script work whether or not the table exists,
    and the new definition replaces it atomically (nft applies a file as one transaction).
    """
    table, network = nft_table(switch), switch.network
    return (
        f"add table ip {table}\n"
        f"delete table ip {table}\n"
        f"table ip {table} {{\n"
        f"\tchain postrouting {{\n"
        f"\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
        f"\t\tip saddr {network} ip daddr != {network} masquerade\n"
        f"\t}}\n"
        f"}}\n"
    )


def nft_load() -> Argv:
    """``nft -f -`` (script on stdin)."""
    return [NFT, "-f", "-"]


def nft_delete(switch: SwitchConfig) -> Argv:
    """``nft delete table ip bhype_<bridge>`` (NAT off)."""
    return [NFT, "delete", "table", "ip", nft_table(switch)]
