"""``zfs.init_pool`` on real OpenZFS: mirror and raidz1 pools on blank disks, refusal of used disks
(pool members, old labels, mounted file systems, swap), adopting, rollback of a failed init,
and pool health events.

Commands: zpool-create(8), zfs-create(8), zdb(8) ``-l``, udevadm(8), zpool-export(8)/-import(8),
zpool-offline(8)/-online(8).
"""

from __future__ import annotations

import re

import pytest

from bhype_core.errors import Conflict, NotFound, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_zfs import health, pool_init
from bhype_zfs.parse import parse_zpool_status
from bhype_zfs.tasks import init_pool
from bhype_zfs.tool import zfs_host

from .helpers import task_context

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def disks(host, *indexes: int) -> list[str]:
    return [host.disk_path(host.disks[i]) for i in indexes]


def prop(host, name: str, dataset: str) -> str:
    return host.shared_runner.run(["zfs", "get", "-H", "-o", "value", name, dataset]).stdout.strip()


def test_init_mirror_creates_the_layout_then_refuses_its_disks(fresh_zfs_host, guest_runtime):
    host = fresh_zfs_host
    runtime = guest_runtime()
    result = init_pool(task_context(runtime, "zfs.init_pool", "root"), "tank", disks(host, 0, 1), layout="mirror",
                       mountpoint="/tank")
    assert result["mode"] == "create"
    expected = "zpool create -o ashift=12 -O compression=lz4 -O atime=off -m /tank tank mirror"
    assert result["commands"][0].startswith(expected)
    run = host.shared_runner.run
    assert "mirror-0" in run(["zpool", "status", "tank"]).stdout
    listed = run(["zfs", "list", "-H", "-o", "name", "-r", "tank"]).stdout.split()
    assert listed == ["tank", "tank/bhype", "tank/bhype/isos", "tank/bhype/templates", "tank/bhype/vms"]
    assert (prop(host, "compression", "tank/bhype/vms"), prop(host, "atime", "tank/bhype/vms")) == ("lz4", "off")
    assert prop(host, "recordsize", "tank/bhype/isos") == "1M"
    assert prop(host, "org.bhype:role", "tank/bhype") == "root"
    assert prop(host, "org.bhype:host", "tank/bhype")

    # Disks of an imported pool: refused, force or not; nothing ran.
    for force in (False, True):
        with pytest.raises(ValidationErrors) as caught:
            init_pool(task_context(runtime), "other", disks(host, 1, 2), layout="mirror", force=force)
        assert {e.path for e in caught.value.errors} == {"disks.0"}
        assert re.fullmatch(r"/dev/vd[a-z]1 belongs to imported pool 'tank'", caught.value.errors[0].message)
        assert len(caught.value.errors) == (1 if force else 2)  # force only drops the GPT finding
    assert "other" not in run(["zpool", "list", "-H", "-o", "name"]).stdout.split()
    with pytest.raises(Conflict, match="adopt it instead"):
        init_pool(task_context(runtime), "tank", disks(host, 2), layout="single")

    # Exported: the label remains; refused unless forced, then reused for a raidz1.
    run(["zpool", "export", "tank"])
    with pytest.raises(ValidationErrors) as caught:
        init_pool(task_context(runtime), "big", disks(host, 0, 1, 2), layout="raidz1")
    messages: dict[str, str] = {}
    for error in caught.value.errors:
        messages[error.path] = messages.get(error.path, "") + error.message + "\n"
    assert "1 holds a ZFS label of pool 'tank' (state exported) (use force to overwrite it)" in messages["disks.0"]
    assert "GPT partition table" in messages["disks.1"] and "disks.2" not in messages
    init_pool(task_context(runtime), "big", disks(host, 0, 1, 2), layout="raidz1", force=True, root="vm/bhype")
    assert "raidz1-0" in run(["zpool", "status", "big"]).stdout
    assert prop(host, "org.bhype:role", "big/vm/bhype") == "root"


def test_mounted_and_swap_disks_are_refused_even_with_force(fresh_zfs_host, guest_runtime):
    host = fresh_zfs_host
    run = host.shared_runner.run
    mounted, swap = disks(host, 3, 2)
    run(["mke2fs", "-q", mounted])
    run(["mkdir", "-p", "/mnt/used"])
    run(["mount", mounted, "/mnt/used"])
    run(["mkswap", swap])
    run(["swapon", swap])
    try:
        runtime = guest_runtime()
        with pytest.raises(ValidationErrors) as caught:
            init_pool(task_context(runtime), "tank", [mounted, swap], layout="mirror", force=True)
        messages = {e.path: e.message for e in caught.value.errors}
        assert messages["disks.0"] == f"{mounted} is mounted on /mnt/used"
        assert messages["disks.1"].endswith("is used for swap")
        run(["umount", "/mnt/used"])
        with pytest.raises(ValidationErrors) as caught:
            init_pool(task_context(runtime), "tank", [mounted], layout="single")
        expected = f"{mounted} holds a ext2 file system signature (use force to overwrite it)"
        assert caught.value.errors[0].message == expected
    finally:
        run(["umount", "/mnt/used"], check=False)
        run(["swapoff", swap], check=False)


def test_adopting_an_exported_pool_imports_it_and_adds_the_layout(fresh_zfs_host, guest_runtime):
    host = fresh_zfs_host
    run = host.shared_runner.run
    run(["zpool", "create", "-m", "/old", "old", *disks(host, 0)])
    run(["zfs", "create", "-o", "org.bhype:keep=yes", "old/bhype"])
    run(["zpool", "export", "old"])
    runtime = guest_runtime()
    plan = pool_init.plan_init(zfs_host(runtime), "old", adopt=True)
    assert plan.steps[0].argv == ["zpool", "import", "old"]
    init_pool(task_context(runtime), "old", adopt=True)
    assert prop(host, "org.bhype:keep", "old/bhype") == "yes"  # existing data kept
    assert prop(host, "org.bhype:role", "old/bhype") == "root"
    assert "old/bhype/vms" in run(["zfs", "list", "-H", "-o", "name", "-r", "old"]).stdout.split()
    again = pool_init.plan_init(zfs_host(runtime), "old", adopt=True)
    assert [s.argv[1] for s in again.steps] == ["set"]  # everything exists: only the marks


def test_a_failed_init_leaves_nothing_behind(fresh_zfs_host, guest_runtime):
    host = fresh_zfs_host
    runtime = guest_runtime()
    zfs = zfs_host(runtime)
    plan = pool_init.plan_init(zfs, "tank", disks=disks(host, 0), layout="single")
    plan.steps.append(pool_init.Step(["zfs", "create", "tank/no/such/parent"], "a step that fails"))
    with pytest.raises(NotFound, match="parent does not exist"):
        pool_init.apply_plan(zfs, plan, task_context(runtime))
    assert host.shared_runner.run(["zpool", "list", "-H", "-o", "name"]).stdout.split() == []


def test_init_runs_only_the_commands_that_were_confirmed(fresh_zfs_host, guest_runtime):
    host = fresh_zfs_host
    run = host.shared_runner.run
    runtime = guest_runtime()
    context = task_context(runtime, "zfs.init_pool", "root")
    run(["zpool", "create", "-m", "/tank", "tank", *disks(host, 0)])
    run(["zpool", "export", "tank"])
    shown = pool_init.plan_init(zfs_host(runtime), "tank", adopt=True).to_dict()
    assert shown["commands"][0] == "zpool import tank"
    # Someone imports the pool before the confirmation arrives: the plan is not the one shown.
    run(["zpool", "import", "tank"])
    with pytest.raises(Conflict, match=r"the plan for pool tank changed since it was shown \(command 1 is now "):
        init_pool(context, "tank", adopt=True, initialised_at=shown["initialised_at"],
                  confirm_commands=shown["commands"])
    assert run(["zfs", "list", "-H", "-o", "name", "-r", "tank"]).stdout.split() == ["tank"]  # nothing ran

    # Unchanged: exactly the confirmed commands run, the mark included.
    run(["zpool", "export", "tank"])
    shown = pool_init.plan_init(zfs_host(runtime), "tank", adopt=True).to_dict()
    result = init_pool(context, "tank", adopt=True, initialised_at=shown["initialised_at"],
                       confirm_commands=shown["commands"])
    assert result["commands"] == shown["commands"] and len(result["ran"]) == len(shown["commands"])
    assert prop(host, "org.bhype:initialised", "tank/bhype") == shown["initialised_at"]

class Collector:
    """A notifier plugin: remembers every event delivered through bhype_notify."""

    def __init__(self) -> None:
        self.events = []

    @hookimpl
    def bhype_notify(self, event) -> None:
        self.events.append(event)


def test_degraded_pool_and_low_space_raise_events_once(fresh_zfs_host, guest_runtime, register_plugin):
    host = fresh_zfs_host
    run = host.shared_runner.run
    collector = register_plugin(Collector(), "collector")
    runtime = guest_runtime(zfs={"pool": "tank", "platform": "linux", "capacity_warning": 2, "capacity_critical": 90})
    run(["zpool", "create", "-m", "/tank", "tank", "mirror", *disks(host, 0, 1)])
    assert health.check_health(runtime) == []  # a healthy new pool: nothing to say

    member = parse_zpool_status(run(["zpool", "status", "-P", "-p", "tank"]).stdout).devices[1].name
    run(["zpool", "offline", "tank", member])
    (event,) = health.check_health(runtime)
    assert (event.kind, event.severity, event.subject) == ("zfs.pool_health", "error", "pool:tank")
    assert "DEGRADED" in event.message and event.data["health"] == "DEGRADED"
    assert health.check_health(runtime) == []  # reported once
    run(["zpool", "online", "tank", member])
    run(["zpool", "wait", "-t", "resilver", "tank"])
    (recovered,) = health.check_health(runtime)
    assert (recovered.severity, recovered.data["health"]) == ("info", "ONLINE")

    run(["dd", "if=/dev/urandom", "of=/tank/fill", "bs=1M", "count=24", "conv=fsync"])
    run(["zpool", "sync", "tank"])
    (space,) = health.check_health(runtime)
    assert (space.kind, space.severity, space.data["level"]) == ("zfs.pool_capacity", "warning", "warning")
    assert [e.kind for e in collector.events] == ["zfs.pool_health", "zfs.pool_health", "zfs.pool_capacity"]
