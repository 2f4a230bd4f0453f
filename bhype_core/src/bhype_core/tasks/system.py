"""Work the system itself submits (periodic jobs, recovery): one owner name, one helper.

``@system`` is not a valid Unix user name, so it can never collide with an account; it is
the :data:`~bhype_core.auth.principal.SYSTEM` principal (an admin, but only for the kinds bHype
submits itself: :func:`bhype_core.tasks.authz.submitted_by_system`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bhype_core.auth.principal import SYSTEM, SYSTEM_NAME

if TYPE_CHECKING:
    from bhype_core.db.task_models import Task
    from bhype_core.runtime import Runtime

SYSTEM_OWNER = SYSTEM_NAME


def submit_as_system(runtime: Runtime, kind: str, arguments: dict[str, Any]) -> Task:
    """Queue a task of ``kind`` owned by ``@system`` (see :func:`service.submit`)."""
    from bhype_core.tasks.service import submit

    return submit(runtime, SYSTEM, kind, arguments)


def context_user(owner: str) -> str | None:
    """The ``TaskContext.user`` of a task owned by ``owner``: ``None`` for the system (task
    code treats ``None`` as "the system, allowed everything"), else the owner."""
    return None if owner == SYSTEM_OWNER else owner
