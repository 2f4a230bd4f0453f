"""Submitting VM tasks for a caller: the Task row the per-user queue runs, and its lock."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bhype_core.auth.principal import Principal

# Every VM task holds this lock: tasks on one VM run one at a time, in submission order.
# The name, not the row id: vm.create has no id yet, and names never change.
LOCK_PREFIX = "vm:"


def vm_lock(arguments: dict[str, Any]) -> list[str]:
    """``["vm:<name>"]`` for a VM task's arguments (the ``TaskKind.locks`` of every vm.* kind)."""
    name = arguments.get("name")
    return [f"{LOCK_PREFIX}{name}"] if isinstance(name, str) and name else []


def submit(runtime: Any, principal: Principal, kind: str, arguments: dict[str, Any]) -> str:
    """Queue task ``kind`` with ``arguments`` for ``principal`` through the per-user task queue
    (which checks the kind's role and object check) and return its id (``/api/v1/tasks/<id>``
    follows it).

    :raises ValidationErrors: the kind is unknown or the arguments do not fit it.
    :raises NotFound: another user's VM.
    """
    from bhype_core.taskqueue.service import submit as submit_task

    return submit_task(runtime, principal, kind, arguments).id
