"""Byte sizes with units: parse "2G" / "512M" / 1024 and format them back exactly."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# Binary multiples only: bhyve(8) -m and expand_number(3) treat K/M/G/T as powers of 1024, and
# so does QEMU's -m; "KB"/"KiB" are accepted as spellings of the same unit.
UNITS: dict[str, int] = {
    "B": 1,
    "K": 1 << 10,
    "M": 1 << 20,
    "G": 1 << 30,
    "T": 1 << 40,
    "P": 1 << 50,
}
KIB, MIB, GIB, TIB = UNITS["K"], UNITS["M"], UNITS["G"], UNITS["T"]

_SIZE_RE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[KMGTP]?)(?P<suffix>I?B)?$", re.IGNORECASE)


def parse_size(value: object, *, default_unit: str = "M") -> int:
    """Return ``value`` as a number of bytes.

    Accepts an integer (counted in ``default_unit``, MiB unless told otherwise, like bhyve's
    ``-m``) or a string such as ``"2G"``, ``"512M"``, ``"1.5G"``, ``"100MiB"``, ``"4096B"``;
    a string without a unit is also counted in ``default_unit``. Units are binary (K = 1024).

    :raises ValueError: with a message naming the bad value (empty, negative, unknown unit,
        fractional bytes, not a number).
    """
    if default_unit.upper() not in UNITS:
        raise ValueError(f"unknown default unit {default_unit!r}")
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"size must be a number or a string like '2G', not {type(value).__name__}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"size must not be negative: {value}")
        return value * UNITS[default_unit.upper()]
    text = value.strip()
    match = _SIZE_RE.match(text)
    if not match:
        raise ValueError(
            f"invalid size {value!r}: use a number with an optional unit B, K, M, G or T (e.g. '20G')"
        )
    unit = match["unit"].upper()
    if not unit:
        # "100B" means bytes; a bare "100" means the default unit.
        unit = "B" if match["suffix"] else default_unit.upper()
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex only lets digits through
        raise ValueError(f"invalid size {value!r}") from exc
    total = number * UNITS[unit]
    if total != total.to_integral_value():
        raise ValueError(f"invalid size {value!r}: not a whole number of bytes")
    return int(total)


def format_size(size: int) -> str:
    """Format a byte count with the largest binary unit that divides it exactly.

    ``format_size(2 * GIB) == "2G"``, ``format_size(1536 * MIB) == "1536M"``,
    ``format_size(1000) == "1000B"``. The result always parses back to the same number with
    :func:`parse_size`, so specs round-trip through JSON/TOML without drift.
    """
    if size < 0:
        raise ValueError(f"size must not be negative: {size}")
    if size == 0:
        return "0B"
    for unit in ("P", "T", "G", "M", "K"):
        if size % UNITS[unit] == 0:
            return f"{size // UNITS[unit]}{unit}"
    return f"{size}B"


def human_size(size: int) -> str:
    """A short approximate form for messages and tables (``"1.5 GiB"``), never for parsing."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" or value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover
