"""The ``[snmp]`` settings section: the link base, the sender's queue, default rate limit, the agent."""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, SecretStr

from bhype_core.plugin_api import Section

DEFAULT_TRAP_PORT = 162  # snmptrapd(8) listens on UDP 162 unless told otherwise
# RFC 1123 host names (dot-separated labels of letters, digits and inner hyphens); covers IPv4 too.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
# RFC 3414 section 11.2 (and net-snmp's snmpd.conf(5) createUser): shorter pass phrases are refused.
MIN_PASSPHRASE = 8


def check_host(host: str) -> str:
    """``host`` as given when it is a host name, an IPv4 or an IPv6 address (no brackets).

    :raises ValueError: naming what is wrong.
    """
    host = host.strip()
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IPv6 address") from None
        return host
    if not _HOSTNAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a valid host name or IPv4 address")
    return host


def split_target(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6addr]`` or ``[v6addr]:port`` → ``(host, port)``.

    :raises ValueError: naming what is wrong with ``text``.
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: missing ']' after the IPv6 address")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':port' after ']'")
        port_text = rest[1:] if rest else ""
    else:
        if text.count(":") > 1:
            raise ValueError(f"{text!r}: write IPv6 addresses in brackets, e.g. [::1]:162")
        host, _, port_text = text.partition(":")
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{text!r}: {host!r} is not a valid host name or IPv4 address")
    if not port_text:
        return host, DEFAULT_TRAP_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


class SnmpSettings(Section):
    """``[snmp]``. Where notifications go is not here: managers are rows an admin adds
    (``bhype snmp manager add``); this section holds what applies to all of them."""

    web_url: str = Field("", description="base URL of the web UI for the link varbind (empty: no link)")
    host_name: str = Field("", description="host name sent in notifications (empty: [host] name, else the system's)")
    queue_size: int = Field(10000, ge=10, le=1_000_000,
                            description="events waiting to be sent; past it new events are dropped (logged)")
    rate_limit: int = Field(10, ge=0, le=1_000_000,
                            description="default per manager and event kind: at most N per rate_window (0: none)")
    rate_window: int = Field(60, ge=1, le=86400, description="seconds of the rate limit's window")
    agent_enabled: bool = Field(False, description="serve BHYPE-MIB's host scalars and VM table (read-only)")
    agent_address: str = Field("127.0.0.1:1161", description="host:port the agent listens on (UDP)")
    agent_community: SecretStr = Field(SecretStr(""),
                                       description="v2c community the agent answers (empty: no SNMPv2c, "
                                                   "only the v3 users of `bhype snmp agent user add`)")
    agent_refresh: int = Field(5, ge=1, le=3600, description="seconds between refreshes of the agent's values")
