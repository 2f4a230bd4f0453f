"""The ``snmp.test`` task: one test notification to one manager, its outcome as the result."""

from __future__ import annotations

from typing import Any

from bhype_snmp import managers as store
from bhype_snmp.sender import send_test


def check_manager(context: Any, manager: str) -> dict[str, Any]:
    """Send ``bhypeTestNotification`` to ``manager`` and wait: a trap is reported sent (nothing
    comes back), an inform acknowledged or not (with why: timeout, wrong key …). An inform
    nobody acknowledged is a result, not a task failure, so the CLI can show it."""
    row = store.get_manager(context.runtime, manager)
    what = f"{row.notify_type} (SNMPv{row.version}) to {row.host}:{row.port}"
    context.log(f"sending a test {what}")
    result = send_test(context.runtime, row)
    if result.acknowledged:
        context.log(f"acknowledged after {result.attempts} attempt(s)")
    elif result.acknowledged is False:
        context.log(f"not acknowledged after {result.attempts} attempt(s): {result.error}", level="warning")
    elif result.error:
        context.log(f"not sent: {result.error}", level="warning")
    return result.to_dict()
