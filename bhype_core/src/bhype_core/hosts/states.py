"""VM states as the group sees them: a VM of an unreachable host is ``unknown``, never restarted."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from bhype_core.hosts.registry import unreachable_hosts

UNKNOWN = "unknown"
CACHE_SECONDS = 1.0  # a VM list page asks once a second at most, not once per request


def cached_unreachable(runtime: Any) -> set[str]:
    """:func:`unreachable_hosts`, remembered for :data:`CACHE_SECONDS` in this process."""
    now = time.monotonic()
    cached = runtime.extras.get("host.unreachable")
    if cached is None or now - cached[0] > CACHE_SECONDS:
        cached = runtime.extras["host.unreachable"] = (now, unreachable_hosts(runtime))
    return cached[1]


def mark_unknown(runtime: Any, vms: Iterable[Any]) -> None:
    """Set state ``unknown`` (and say why in ``state_detail``) on each VM summary (dict or
    model) whose host is unreachable; the stored state stays, and shows again when it is back."""
    down = cached_unreachable(runtime)
    if not down:
        return
    for vm in vms:
        host = vm.get("host") if isinstance(vm, dict) else getattr(vm, "host", "")
        if host in down:
            detail = f"host {host} is unreachable; last known state: "
            if isinstance(vm, dict):
                vm["state_detail"] = detail + vm["state"]
                vm["state"] = UNKNOWN
            else:
                vm.state_detail = detail + vm.state
                vm.state = UNKNOWN
