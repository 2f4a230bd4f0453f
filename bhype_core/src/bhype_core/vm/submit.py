"""The lock every VM task holds (submitting goes through :func:`bhype_core.api.accepted.accept_task`)."""

from __future__ import annotations

from typing import Any

# Every VM task holds this lock: tasks on one VM run one at a time, in submission order.
# The name, not the row id: vm.create has no id yet, and names never change.
LOCK_PREFIX = "vm:"


def vm_lock(arguments: dict[str, Any]) -> list[str]:
    """``["vm:<name>"]`` for a VM task's arguments (the ``TaskKind.locks`` of every vm.* kind)."""
    name = arguments.get("name")
    return [f"{LOCK_PREFIX}{name}"] if isinstance(name, str) and name else []
