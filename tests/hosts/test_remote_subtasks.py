"""Remote sub-tasks (issue 22, moves inside a group): a running task of host h1 queues a child
on host h2. h2's scheduler starts it (h1's never does), the locks its parent holds do not block
it (they block every other task, group-wide), and the parent's ``wait`` only follows it. Real
scheduler passes on one SQLite database shared by both hosts' runtimes."""

from __future__ import annotations

from bhype_core.auth.principal import Principal
from bhype_core.db.models import utcnow
from bhype_core.db.task_models import RUNNING
from bhype_core.errors import ValidationErrors
from bhype_core.hosts.registry import register
from bhype_core.tasks import dispatch, store
from bhype_core.tasks.plan import Limits
from bhype_core.tasks.service import submit
from bhype_core.tasks.store import WorkerIdentity
from bhype_core.tasks.subtasks import SubTasks, is_remote

ADMIN = Principal("root", "admin")


def running_parent(runtime, locks: list[str]):
    """A task of h1 that runs now and holds ``locks`` (as a claimed vm.move would)."""
    row = store.new_task(owner="root", kind="core.ping", arguments={}, locks=locks)
    row.host, row.state, row.started = "h1", RUNNING, utcnow()
    return store.insert_task(runtime.engine, row)


def test_a_remote_child_runs_on_its_host_past_its_parents_lock(make_host_runtime):
    h1, h2 = make_host_runtime("h1"), make_host_runtime("h2")
    register(h1)
    register(h2)
    parent = running_parent(h1, ["vm:web"])
    me1, me2 = WorkerIdentity("a" * 32, "h1", 1), WorkerIdentity("b" * 32, "h2", 2)

    children = SubTasks(h1, me1, parent)
    remote = children.submit("core.ping", {"locks": ["vm:web"]}, host="h2")
    local = children.submit("core.ping", {"locks": ["vm:web"]})
    stranger = submit(h2, ADMIN, "core.ping", {"locks": ["vm:web"]}, host="h2")
    rows = {task.id: task for task in (store.get_task(h1.engine, t) for t in (remote.id, local.id, stranger.id))}
    assert rows[remote.id].host == "h2" and rows[remote.id].parent_id == parent.id
    assert is_remote(rows[remote.id], parent) and not is_remote(rows[local.id], parent)

    # h1's scheduler leaves both children alone (the local one is run by its parent).
    assert dispatch.dispatch_pass(h1.engine, Limits(5, 5), me1) == []
    # h2's starts the remote child although its parent holds vm:web; another task of h2 waits.
    claimed = [task_id for task_id, _ in dispatch.dispatch_pass(h2.engine, Limits(5, 5), me2)]
    assert claimed == [remote.id]
    waiting = store.get_task(h2.engine, stranger.id)
    assert waiting.state == "queued" and waiting.progress_message.startswith("waiting for lock vm:web")
    assert store.get_task(h2.engine, local.id).state == "queued"


def test_a_remote_child_for_a_host_that_lacks_the_kind_is_refused(make_host_runtime):
    h1, h2 = make_host_runtime("h1"), make_host_runtime("h2")
    register(h1)
    register(h2)
    with h2.engine.begin() as connection:  # h2's worker knows fewer kinds (older plugins)
        from sqlalchemy import update

        from bhype_core.hosts.models import Host

        connection.execute(update(Host).where(Host.name == "h2").values(task_kinds=["vm.start"]))
    parent = running_parent(h1, ["vm:web"])
    children = SubTasks(h1, WorkerIdentity("a" * 32, "h1", 1), parent)
    try:
        children.submit("core.ping", {}, host="h2")
    except ValidationErrors as exc:
        assert "host 'h2' does not know task kind 'core.ping'" in str(exc.errors)
    else:
        raise AssertionError("a remote child of an unknown kind was queued")
    assert store.children_of(h1.engine, parent.id) == []
