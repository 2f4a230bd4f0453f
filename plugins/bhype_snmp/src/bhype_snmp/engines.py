"""This host's SNMP engines: their snmpEngineIDs and clocks, kept in the database, and the
pysnmp engines built from them (the notification sender's and the read-only agent's).

One engine ID per host and role (``notify``: the sender; ``agent``: the agent), made on first
use and kept: a v3 trap receiver is configured with it (snmptrapd.conf(5) ``createUser -e``)
and keeps one (snmpEngineBoots, snmpEngineTime) per engine ID (RFC 3414 §3.2 step 7), so
engines with different clocks (group hosts sharing the database, issue 22) must not share one.
snmpEngineBoots grows at every start of an engine (RFC 3414 §2.2.2); snmpEngineTime counts
from that start (``booted``), stored too, so every process of the host shows the same clock.

pysnmp is never given the engine ID in its constructor: it would then keep a boots counter in
``$TMPDIR/__pysnmp/<id>/`` (a directory anyone may plant in /tmp, which the root worker would
write); the ID, boots and time are set in its MIB after the fact, from the database.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any, NamedTuple

from pysnmp.entity import engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import col, select

from bhype_core.plugin_api import local_host_name, session, utcnow
from bhype_snmp.models import SnmpEngine

# RFC 3411 snmpEngineID, format 5 (octets): 0x80 | enterprise number (the placeholder 8072,
# net-snmp's, until bHype has a PEN; see oids.py), then 0x05 and 12 random octets.
ENGINE_PREFIX = bytes.fromhex("80001f88") + b"\x05"
MAX_BOOTS = 2**31 - 1  # snmpEngineBoots stops there (RFC 3414 §2.2.2)


class EngineClock(NamedTuple):
    """An engine's identity and clock: snmpEngineID, snmpEngineBoots, and when boots last grew
    (seconds since the epoch; snmpEngineTime is the time since then)."""

    engine_id: bytes
    boots: int
    booted: float


def engine_id(runtime: Any, role: str = "notify") -> bytes:
    """This host's snmpEngineID for ``role`` (``notify``: the notification sender; ``agent``:
    the read-only agent): made on first use, then always the stored one."""
    return bytes.fromhex(_row(runtime, role).engine_id)


def engine_clock(runtime: Any, role: str = "notify") -> EngineClock:
    """This host's engine of ``role`` as last started (:func:`next_boots`), without changing it."""
    return _clock(_row(runtime, role))


def next_boots(runtime: Any, role: str = "agent") -> EngineClock:
    """Start this host's engine of ``role``: its stored boots plus one, from now (stored), so
    managers that saw a later engine time never take its messages for replays."""
    _row(runtime, role)  # made (or adopted) first: the update below only locks and changes it
    with session(runtime, write=True) as db:
        row = db.exec(_query(runtime, role).with_for_update()).one()
        row.boots = min(row.boots + 1, MAX_BOOTS)
        row.booted = utcnow()
        db.add(row)
    return _clock(row)


def sender_engine_ids(runtime: Any) -> dict[str, str]:
    """Every host's notification engine ID (hex) by host name, as made so far (a group: each
    v3 trap receiver needs all of them)."""
    with session(runtime) as db:
        rows = db.exec(select(SnmpEngine).where(SnmpEngine.role == "notify", SnmpEngine.host != "")).all()
    return {row.host: row.engine_id for row in sorted(rows, key=lambda row: row.host)}


def _query(runtime: Any, role: str) -> Any:
    return select(SnmpEngine).where(SnmpEngine.role == role, SnmpEngine.host == local_host_name(runtime))


def _row(runtime: Any, role: str, attempts: int = 3) -> SnmpEngine:
    """This host's row of ``role``: the stored one; else the one made before engine IDs were
    per host (``host`` empty: the first host to ask adopts it, so a single host keeps its ID);
    else a new one. Two processes making it at once: the unique (role, host) keeps one (the
    other's insert fails, or on MariaDB its gap lock deadlocks; it reads the winner's row)."""
    for attempt in range(attempts):
        with session(runtime) as db:
            row = db.exec(_query(runtime, role)).first()
        if row is not None:
            return row
        try:
            with session(runtime, write=True) as db:
                row = db.exec(_query(runtime, role).with_for_update()).first()
                if row is None:
                    row = db.exec(select(SnmpEngine).where(SnmpEngine.role == role, SnmpEngine.host == "")
                                  .order_by(col(SnmpEngine.id)).with_for_update()).first()
                    if row is None:
                        row = SnmpEngine(engine_id=(ENGINE_PREFIX + secrets.token_bytes(12)).hex(), role=role)
                    row.host = local_host_name(runtime)
                    db.add(row)
                return row
        except (IntegrityError, OperationalError):  # another process of this host made it in between
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _clock(row: SnmpEngine) -> EngineClock:
    booted = row.booted.timestamp() if isinstance(row.booted, datetime) else utcnow().timestamp()
    return EngineClock(bytes.fromhex(row.engine_id), row.boots, booted)


def make_engine(clock: EngineClock | None) -> engine.SnmpEngine:
    """A pysnmp engine with ``clock``'s snmpEngineID, boots and time (``None``: pysnmp's own
    throw-away ID, nothing stored anywhere)."""
    snmp = engine.SnmpEngine()
    if clock is not None:
        builder = snmp.get_mib_builder()
        (stored_id,) = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineID")
        stored_id.syntax = stored_id.syntax.clone(clock.engine_id)  # as pysnmp's constructor sets it
        snmp.snmpEngineID = stored_id.syntax
        set_clock(snmp, clock)
    return snmp


def set_clock(snmp: engine.SnmpEngine, clock: EngineClock) -> None:
    """Make ``snmp`` send ``clock``'s snmpEngineBoots and a snmpEngineTime counted from its
    ``booted`` (USM reads both for every message it sends as the authoritative engine: traps)."""
    builder = snmp.get_mib_builder()
    stored_boots, stored_time = builder.import_symbols("__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime")
    stored_boots.syntax = stored_boots.syntax.clone(clock.boots)
    # pysnmp's snmpEngineTime holds its start (seconds since the epoch); reading it (clone()
    # without a value) gives the seconds since then.
    stored_time.syntax = stored_time.syntax.clone(int(clock.booted))
