"""BHYPE-MIB's object identifiers as Python sees them: one arc constant, the rest relative to it.

The arc is a PLACEHOLDER until bHype has its own IANA Private Enterprise Number: net-snmp's
experimental "playpen" (NET-SNMP-MIB ``netSnmpPlaypen`` = 1.3.6.1.4.1.8072.9999.9999), sub-arc
2026. To move to an assigned PEN, change :data:`ARC` here and ``bhypeMIB``'s ``::=`` line in
``mibs/BHYPE-MIB.txt`` together (docs/snmp.md; ``tests/snmp/test_mib.py`` checks they agree).
"""

from __future__ import annotations

ARC: tuple[int, ...] = (1, 3, 6, 1, 4, 1, 8072, 9999, 9999, 2026)  # PLACEHOLDER arc (see above)

NOTIFICATIONS = (*ARC, 0)
EVENT_NOTIFICATION = (*NOTIFICATIONS, 1)  # bhypeEvent
TEST_NOTIFICATION = (*NOTIFICATIONS, 2)  # bhypeTestNotification

OBJECTS = (*ARC, 1)
EVENT = (*OBJECTS, 1)  # bhypeEventObjects: accessible-for-notify scalars
EVENT_OBJECTS: dict[str, tuple[int, ...]] = {
    "bhypeEventId": (*EVENT, 1),
    "bhypeEventKind": (*EVENT, 2),
    "bhypeEventSeverity": (*EVENT, 3),
    "bhypeEventHost": (*EVENT, 4),
    "bhypeEventVmName": (*EVENT, 5),
    "bhypeEventVmUuid": (*EVENT, 6),
    "bhypeEventUser": (*EVENT, 7),
    "bhypeEventTaskId": (*EVENT, 8),
    "bhypeEventText": (*EVENT, 9),
    "bhypeEventLink": (*EVENT, 10),
    "bhypeEventSubject": (*EVENT, 11),
    "bhypeEventTime": (*EVENT, 12),
}

HOST = (*OBJECTS, 2)  # bhypeHost: scalars (instance .0)
HOST_OBJECTS: dict[str, tuple[int, ...]] = {
    "bhypeHostVersion": (*HOST, 1),
    "bhypeHostName": (*HOST, 2),
    "bhypeHostVmsTotal": (*HOST, 3),
    "bhypeHostVmsRunning": (*HOST, 4),
    "bhypeHostVmsStopped": (*HOST, 5),
    "bhypeHostVmsOther": (*HOST, 6),
    "bhypeHostCpus": (*HOST, 7),
    "bhypeHostMemory": (*HOST, 8),
    "bhypeHostPoolSize": (*HOST, 9),
    "bhypeHostPoolFree": (*HOST, 10),
    "bhypeHostPoolCapacity": (*HOST, 11),
}

VM_TABLE = (*OBJECTS, 3)  # bhypeVmTable
VM_ENTRY = (*VM_TABLE, 1)
VM_COLUMNS: dict[str, int] = {
    "bhypeVmIndex": 1,
    "bhypeVmName": 2,
    "bhypeVmUuid": 3,
    "bhypeVmState": 4,
    "bhypeVmOwner": 5,
    "bhypeVmVcpus": 6,
    "bhypeVmMemory": 7,
    "bhypeVmUptime": 8,
    "bhypeVmCpuPercent": 9,
    "bhypeVmMemoryUsed": 10,
    "bhypeVmLastBackup": 11,
}

SEVERITY_VALUES = {"info": 1, "warning": 2, "error": 3, "critical": 4}
# bhypeVmState's enumeration (the core's VMState values, in this order).
# bhypeVmLastBackup of a VM without a good backup: DateAndTime's "no such time" value, as
# DISMAN-SCHEDULE-MIB's schedLastFailed uses it (RFC 3231: '0000000000000000'H).
NEVER = bytes(8)
VM_STATE_VALUES = {"stopped": 1, "starting": 2, "running": 3, "stopping": 4, "crashed": 5, "unknown": 6}
