"""What callers do with tasks (submit, list, show, cancel, retry), with ownership enforced.

The API routes and the CLI both call these; nothing here runs task code (the worker does).
An operator sees only their own tasks and another user's task is "not found", exactly like
one that does not exist, so ids do not leak; an admin sees every task.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bhype_core.auth.principal import Principal
from bhype_core.db.task_models import FINAL_STATES, RETRYABLE_STATES, STATES, Task, TaskLog
from bhype_core.errors import Conflict, Forbidden, NotFound, PluginError, ValidationErrors
from bhype_core.hosts.routing import task_host
from bhype_core.tasks import authz, store
from bhype_core.tasks.validation import validate_submission

if TYPE_CHECKING:
    from bhype_core.runtime import Runtime

# A lock names a resource: "<type>:<name>" (vm:3, pool:tank); the name is opaque (any printable
# text), the type a lower-case word.
LOCK_RE = re.compile(r"[a-z][a-z0-9_]*:[^\x00-\x1f\x7f]{1,200}")
MAX_LIST = 1000


def can_see(principal: Principal, task: Task) -> bool:
    """Whether ``principal`` may see and act on ``task``: its owner, or an admin."""
    return principal.is_admin or task.owner == principal.name


def visible_task(runtime: Runtime, principal: Principal, task_id: str) -> Task:
    """The task ``task_id`` if ``principal`` may see it.

    :raises NotFound: no such task, or another user's task (the same answer for both).
    """
    task = store.get_task(runtime.engine, task_id)
    if task is None or not can_see(principal, task):
        raise NotFound(f"no task {task_id}")
    return task


def task_locks(runtime: Runtime, kind: str, arguments: dict[str, Any]) -> list[str]:
    """The resources a task of ``kind`` with ``arguments`` holds while it runs (its
    ``TaskKind.locks``), checked and without duplicates.

    :raises ValidationErrors: ``locks`` itself refused the arguments.
    :raises PluginError: ``locks`` broke its contract (names the plugin).
    """
    catalog = runtime.registry.tasks
    plugin = catalog.plugin_of(kind)
    try:
        locks = catalog[kind].locks(arguments)
    except ValidationErrors as exc:
        errors = ValidationErrors()
        errors.extend(exc, prefix="arguments")
        raise errors from None
    except Exception as exc:
        raise PluginError(f"task kind {kind} (plugin {plugin!r}) could not name its locks: {exc}") from exc
    if not isinstance(locks, (list, tuple)) or not all(isinstance(lock, str) and LOCK_RE.fullmatch(lock)
                                                        for lock in locks):
        raise PluginError(
            f"task kind {kind} (plugin {plugin!r}) returned bad locks {locks!r}: "
            "expected a list of '<type>:<name>' strings"
        )
    return list(dict.fromkeys(locks))


def submit(
    runtime: Runtime, principal: Principal, kind: str, arguments: Any, *, retry_of: str | None = None,
    parent: str | None = None, host: str | None = None,
) -> Task:
    """Queue a task of ``kind`` for ``principal``: check who asks, validate, store the row,
    nudge the scheduler. The one way in for every entry point (the generic and dedicated API
    routes, the CLI through them, retries, plugins, work the system submits as
    :data:`~bhype_core.auth.principal.SYSTEM`); the worker checks the same again before it
    runs the task (:mod:`bhype_core.tasks.authz`).

    :param parent: the id of the running task submitting this one as a sub-task: the new task
        is linked to it, and only that task runs it (in its own slot, see ``TaskContext.wait``),
        never the scheduler.
    :param host: the group host to run it on (placement); default: the host of the VM or switch
        it locks, else this process's host (:func:`bhype_core.hosts.routing.task_host`). With
        ``parent`` on another host: a remote sub-task, started by that host's scheduler
        (:mod:`bhype_core.tasks.subtasks`).
    :raises ValidationErrors: unknown kind (``kind``), arguments its ``run`` would refuse
        (``arguments.<name>``), or not JSON data; nothing is stored then.
    :raises Forbidden: the kind needs a higher role than ``principal`` has (an operator asking
        for an admin kind), or its object check refused.
    :raises NotFound: the kind's object check found another user's object (the same answer as
        a missing one).
    """
    if not isinstance(principal, Principal):  # the owner's bare name was enough before issue 11
        raise TypeError(f"submit() needs a Principal (bhype_core.auth.principal), not {principal!r}")
    if kind in runtime.registry.tasks:
        # Who asks comes first: an operator learns nothing about an admin kind's arguments.
        authz.check_role(runtime.registry, runtime.registry.tasks[kind], principal)
    validate_submission(runtime.registry, kind, arguments, principal.name)
    authz.check_submission(runtime, principal, kind, arguments)
    locks = task_locks(runtime, kind, arguments)
    row = store.new_task(
        owner=principal.name, kind=kind, arguments=arguments, locks=locks, retry_of=retry_of, parent_id=parent,
    )
    row.host = task_host(runtime, kind, locks, host)  # issue 22: only that host's worker runs it
    task = store.insert_task(runtime.engine, row)
    if parent is None or host is not None:  # a local sub-task is run by its parent; a remote one by its host
        runtime.queue.nudge(task.host)  # that host's worker, through its own queue (issue 22)
    return task


def list_visible(
    runtime: Runtime,
    principal: Principal,
    *,
    user: str | None = None,
    state: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Task]:
    """Tasks ``principal`` may see, newest first: an operator's own; an admin's all, or one
    ``user``'s.

    :raises ValidationErrors: an unknown ``state``, a bad ``limit`` or ``offset``.
    :raises Forbidden: an operator asked for another user's tasks.
    """
    errors = ValidationErrors()
    if state is not None and state not in STATES:
        errors.add("state", f"must be one of {', '.join(STATES)}, not {state!r}")
    if not 1 <= limit <= MAX_LIST:
        errors.add("limit", f"must be from 1 to {MAX_LIST}, not {limit}")
    if offset < 0:
        errors.add("offset", f"must not be negative, not {offset}")
    errors.raise_if_any()
    if not principal.is_admin:
        if user not in (None, principal.name):
            raise Forbidden("operators see only their own tasks")
        user = principal.name
    return store.list_tasks(runtime.engine, owner=user, state=state, kind=kind, limit=limit, offset=offset)


def show(runtime: Runtime, principal: Principal, task_id: str) -> tuple[Task, list[TaskLog]]:
    """A visible task with its whole log."""
    task = visible_task(runtime, principal, task_id)
    return task, store.read_log(runtime.engine, task_id)


def cancel(runtime: Runtime, principal: Principal, task_id: str) -> Task:
    """Cancel a visible task: a queued one never starts; a running one is asked to stop at
    its next safe point (it ends ``cancelled`` if it honours the request).

    :raises Conflict: the task has already ended.
    """
    task = visible_task(runtime, principal, task_id)
    engine = runtime.engine
    # The task's own flag first, then its children: a parent waiting for a child that ends
    # cancelled must already see its own cancel then, never pass the child off as just done.
    if store.cancel_queued(engine, task_id, f"cancelled by {principal.name} before it started"):
        store.append_log(engine, task_id, f"cancelled by {principal.name} before it started", "warning")
        cancel_children(runtime, task_id, principal.name)
        runtime.queue.nudge(task.host)  # it may have held up the owner's later tasks
    elif store.request_cancel(engine, task_id, f"cancel requested by {principal.name}"):
        cancel_children(runtime, task_id, principal.name)
    else:
        cancel_children(runtime, task_id, principal.name)
        task = visible_task(runtime, principal, task_id)
        if task.state in FINAL_STATES:
            raise Conflict(f"task {task_id} has already ended ({task.state})")
    return visible_task(runtime, principal, task_id)


def cancel_children(runtime: Runtime, task_id: str, by: str) -> None:
    """Cancel every sub-task of ``task_id`` that has not ended (and theirs): queued ones never
    start, running ones are asked to stop at their next safe point."""
    engine = runtime.engine
    for child in store.children_of(engine, task_id):
        if child.state in FINAL_STATES:
            continue
        cancel_children(runtime, child.id, by)
        message = f"cancelled by {by} with its parent task {task_id}"
        if store.cancel_queued(engine, child.id, message):
            store.append_log(engine, child.id, message, "warning")
        else:
            store.request_cancel(engine, child.id, f"cancel requested by {by} with its parent task {task_id}")


def retry(runtime: Runtime, principal: Principal, task_id: str) -> Task:
    """Queue a new task with the same kind and arguments as a failed, cancelled or interrupted
    one; the new task belongs to ``principal`` and names the old one in ``retry_of``. Who may
    submit it is checked again, for ``principal`` (roles, owners and the kind's rules may have
    changed since the original was submitted).

    :raises Conflict: the task is queued, running or succeeded.
    :raises ValidationErrors: its kind or arguments are no longer valid.
    """
    task = visible_task(runtime, principal, task_id)
    if task.state not in RETRYABLE_STATES:
        raise Conflict(
            f"task {task_id} is {task.state}; only {', '.join(RETRYABLE_STATES)} tasks can be retried"
        )
    return submit(runtime, principal, task.kind, dict(task.arguments), retry_of=task.id)

