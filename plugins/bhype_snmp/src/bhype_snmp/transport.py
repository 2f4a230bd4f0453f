"""Sending one notification to one manager with pysnmp 7 (asyncio): v2c or v3, trap or inform.

Informs are retried with back-off (the timeout doubles for each retry) and their outcome is
returned, never swallowed: the caller logs an unacknowledged inform. Secrets are handed to
pysnmp only; no message built here contains them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from pysnmp.hlapi.v3arch.asyncio import (
    USM_AUTH_HMAC128_SHA224,
    USM_AUTH_HMAC192_SHA256,
    USM_AUTH_HMAC256_SHA384,
    USM_AUTH_HMAC384_SHA512,
    USM_PRIV_CFB128_AES,
    USM_PRIV_CFB192_AES_BLUMENTHAL,
    USM_PRIV_CFB256_AES_BLUMENTHAL,
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    send_notification,
)
from pysnmp.proto import rfc1902

from bhype_snmp import oids
from bhype_snmp.models import SnmpManager
from bhype_snmp.notification import Notification

SYS_UP_TIME = (1, 3, 6, 1, 2, 1, 1, 3, 0)  # SNMPv2-MIB::sysUpTime.0 (RFC 3418)
SNMP_TRAP_OID = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)  # SNMPv2-MIB::snmpTrapOID.0 (RFC 3418)
STARTED = time.monotonic()
AUTH = {"SHA224": USM_AUTH_HMAC128_SHA224, "SHA256": USM_AUTH_HMAC192_SHA256,
        "SHA384": USM_AUTH_HMAC256_SHA384, "SHA512": USM_AUTH_HMAC384_SHA512}
# net-snmp's AES192/AES256 use the Blumenthal key extension (snmpcmd(1) -x; configure
# --enable-blumenthal-aes), pysnmp's *_BLUMENTHAL protocols.
PRIV = {"AES": USM_PRIV_CFB128_AES, "AES192": USM_PRIV_CFB192_AES_BLUMENTHAL,
        "AES256": USM_PRIV_CFB256_AES_BLUMENTHAL}
# The objects' SMI types (BHYPE-MIB): DisplayString and DateAndTime are OCTET STRINGs.
INTEGERS = {"bhypeEventSeverity": rfc1902.Integer32, "bhypeEventTaskId": rfc1902.Unsigned32}


@dataclass(frozen=True)
class SendResult:
    """The outcome: ``acknowledged`` is ``None`` for a trap (nothing comes back), else whether
    the inform was answered; ``error`` says why not (no secret in it); ``attempts`` sent."""

    manager: str
    notify_type: str
    acknowledged: bool | None
    error: str | None = None
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"manager": self.manager, "notify_type": self.notify_type, "acknowledged": self.acknowledged,
                "error": self.error, "attempts": self.attempts}


def varbinds(notification: Notification) -> list[ObjectType]:
    """``sysUpTime.0`` (hundredths of a second since this process started sending; RFC 3416
    §4.2.6 wants it first), ``snmpTrapOID.0``, then each object's instance (``.0``) with its
    SMI type."""
    uptime = int((time.monotonic() - STARTED) * 100) % 2**32
    binds = [ObjectType(ObjectIdentity(SYS_UP_TIME), rfc1902.TimeTicks(uptime)),
             ObjectType(ObjectIdentity(SNMP_TRAP_OID), rfc1902.ObjectIdentifier(notification.oid))]
    for name, value in notification.varbinds:
        kind = INTEGERS.get(name)
        typed = kind(value) if kind else rfc1902.OctetString(value if isinstance(value, bytes) else value.encode())
        binds.append(ObjectType(ObjectIdentity((*oids.EVENT_OBJECTS[name], 0)), typed))
    return binds


def auth_data(manager: SnmpManager) -> CommunityData | UsmUserData:
    """v2c community (``mpModel=1``) or a v3 USM user with SHA-2 auth and AES privacy."""
    if manager.version == "2c":
        return CommunityData(manager.community, mpModel=1)
    return UsmUserData(manager.user, authKey=manager.auth_key, privKey=manager.priv_key,
                       authProtocol=AUTH[manager.auth_protocol], privProtocol=PRIV[manager.priv_protocol])


async def _target(manager: SnmpManager, timeout: float) -> Any:
    kind = Udp6TransportTarget if ":" in manager.host else UdpTransportTarget
    target = await kind.create((manager.host, manager.port), timeout=timeout, retries=0)
    # pysnmp's high-level API files each target under a tag and sends to *every* target of the
    # tag; its default tag (user, address) would gather one target per timeout (each retry
    # waits longer) or per changed setting, and send the notification to each. One tag per
    # distinct set-up keeps it one target. hash() stays in this process (never logged).
    target.tagList = "bhype-" + format(hash((manager.name, manager.host, manager.port, manager.version,
                                            manager.community, manager.user, manager.auth_protocol,
                                            manager.auth_key, manager.priv_protocol, manager.priv_key,
                                            timeout)) & 0xFFFFFFFFFFFF, "x")
    return target


async def send(engine: SnmpEngine, manager: SnmpManager, notification: Notification) -> SendResult:
    """Send ``notification`` to ``manager``. An inform is retried ``manager.retries`` times, the
    wait doubling each time (``timeout``, 2×, 4× …); the result says whether it was answered."""
    binds = varbinds(notification)
    attempts = 1 if manager.notify_type == "trap" else manager.retries + 1
    error = None
    for attempt in range(attempts):
        try:
            target = await _target(manager, manager.timeout * 2**attempt)
            indication, status, _, _ = await send_notification(
                engine, auth_data(manager), target, ContextData(), manager.notify_type, *binds, lookupMib=False)
        except Exception as exc:  # a resolver or socket error: report it like an SNMP one
            indication, status = f"{type(exc).__name__}: {exc}", 0
        if manager.notify_type == "trap":
            return SendResult(manager.name, "trap", None, str(indication) if indication else None)
        if not indication and not status:
            return SendResult(manager.name, "inform", True, None, attempt + 1)
        error = str(indication) if indication else f"error status {status}"
        if not _worth_retrying(error):
            return SendResult(manager.name, "inform", False, error, attempt + 1)
    return SendResult(manager.name, "inform", False, error, attempts)


def _worth_retrying(error: str) -> bool:
    """A timeout may pass; a refusal (wrong key, unknown user: a USM report) will not."""
    return "timeout" in error.lower() or "no snmp response" in error.lower()
