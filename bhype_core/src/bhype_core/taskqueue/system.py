"""Work the system itself submits (periodic jobs, recovery): one owner name, one helper.

``@system`` is not a valid Unix user name, so it can never collide with an account. The
``authz`` stream turns it into the ``SYSTEM`` principal of :mod:`bhype_core.auth.principal`;
until then every system submission goes through :func:`submit_as_system`, so the switch is
one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bhype_core.db.task_models import Task
    from bhype_core.runtime import Runtime

SYSTEM_OWNER = "@system"


def submit_as_system(runtime: Runtime, kind: str, arguments: dict[str, Any]) -> Task:
    """Queue a task of ``kind`` owned by ``@system`` (see :func:`service.submit`)."""
    from bhype_core.taskqueue.service import submit

    return submit(runtime, SYSTEM_OWNER, kind, arguments)


def context_user(owner: str) -> str | None:
    """The ``TaskContext.user`` of a task owned by ``owner``: ``None`` for the system (task
    code treats ``None`` as "the system, allowed everything"), else the owner."""
    return None if owner == SYSTEM_OWNER else owner
