"""MAC addresses for guest NICs: normalise user input, generate unique ones in bhyve's range."""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Collection

from bhype_core.errors import Conflict

MAC_RE = re.compile(r"^[0-9a-f]{2}([:-][0-9a-f]{2}){5}$", re.IGNORECASE)

# bhyve's own block of the FreeBSD Foundation OUI: sys/net/ieee_oui.h allocates 20 bits to bhyve,
# OUI_FREEBSD_BHYVE_LOW 58:9c:fc:00:00:01 .. OUI_FREEBSD_BHYVE_HIGH 58:9c:fc:0f:ff:ff.
BHYVE_OUI = "58:9c:fc"
BHYVE_MAC_LOW, BHYVE_MAC_HIGH = 0x000001, 0x0FFFFF


def normalize_mac(text: str) -> str:
    """``58-9C-FC-01-02-03`` -> ``58:9c:fc:01:02:03``; rejects multicast and all-zero."""
    if not MAC_RE.match(text):
        raise ValueError(f"invalid MAC address {text!r}: use six hex octets like 58:9c:fc:01:02:03")
    mac = text.lower().replace("-", ":")
    if int(mac[:2], 16) & 1:
        raise ValueError(f"{mac} is a multicast address; a NIC needs a unicast MAC")
    if mac == "00:00:00:00:00:00":
        raise ValueError("the all-zero MAC address is not allowed")
    return mac


def generate_mac(taken: Collection[str], rng: random.Random | None = None) -> str:
    """A random MAC in bhyve's OUI range that is not in ``taken`` (compared case-insensitively).

    :raises Conflict: when no free address was found (the range holds about a million).
    """
    used = {m.lower() for m in taken}
    draw = rng.randint if rng else (lambda a, b: a + secrets.randbelow(b - a + 1))
    for _ in range(1000):
        n = draw(BHYVE_MAC_LOW, BHYVE_MAC_HIGH)
        mac = f"{BHYVE_OUI}:{n >> 16:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"
        if mac not in used:
            return mac
    raise Conflict("no free MAC address left in bhyve's 58:9c:fc:0x:xx:xx range")
