"""Last backup time per VM: the core's question to backup plugins (hook
``bhype_vm_last_backups``), their answers merged into one mapping.

The core keeps no backups itself; a backup plugin (``bhype_backup``, or a third party's) knows
its good points. Whoever shows "last backup" (the SNMP agent's ``bhypeVmLastBackup`` column)
asks here, once per refresh, and never imports a backup plugin (plugins never import each
other).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from bhype_core.errors import PluginError
from bhype_core.hookcall import failing_plugin

HOOK = "bhype_vm_last_backups"


def last_backup_times(runtime: Any, uuids: Iterable[str] | None = None) -> dict[str, datetime]:
    """The newest good backup of each VM, as every backup plugin knows it: ``{vm_uuid: aware
    UTC datetime}``; a VM without a good backup is absent. Several plugins: the newest time wins.

    :param runtime: the process's :class:`~bhype_core.runtime.Runtime`.
    :param uuids: only these VMs (``None``: every VM any plugin knows).
    :raises PluginError: an implementation raised (named), or answered something that is not
        ``{str: datetime}`` (what it answered is named; no datetime is guessed).
    """
    asked = None if uuids is None else sorted(set(uuids))
    try:
        answers = getattr(runtime.pm.hook, HOOK)(runtime=runtime, uuids=asked)
    except Exception as exc:
        plugin = failing_plugin(runtime.pm, HOOK, exc) or "?"
        raise PluginError(f"plugin {plugin!r} failed in {HOOK}: {type(exc).__name__}: {exc}") from exc
    wanted = None if asked is None else set(asked)
    merged: dict[str, datetime] = {}
    for answer in answers:  # pluggy leaves out the implementations that returned None
        if not isinstance(answer, dict):
            raise PluginError(f"{HOOK} answered {type(answer).__name__}, expected a dict of UUID to datetime")
        for uuid, when in answer.items():
            if not isinstance(uuid, str) or not isinstance(when, datetime):
                raise PluginError(f"{HOOK} answered {uuid!r}: {when!r}, expected a UUID string and a datetime")
            if wanted is not None and uuid not in wanted:
                continue  # an implementation that ignored ``uuids``: answer only what was asked
            when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)  # naive: UTC
            if uuid not in merged or when > merged[uuid]:
                merged[uuid] = when
    return merged
