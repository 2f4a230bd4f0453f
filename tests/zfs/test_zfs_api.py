"""``/api/v1/zfs`` through the real app: reads from the database, host work queued as tasks
(the API process runs no host command), input checked before anything is queued, and the
``zfs.check`` task against the FreeBSD stand-in tools."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.builtins import models
from bhype_core.db.migrate import upgrade
from bhype_core.db.session import session
from bhype_core.hookspecs import hookimpl
from bhype_core.runtime import build_runtime
from bhype_core.tasks.store import get_task
from bhype_core.testing import act_as, make_settings
from bhype_zfs import health
from bhype_zfs.models import ZfsHealthState
from bhype_zfs.status import parse_zfs_version, parse_zpool_list, probe
from bhype_zfs.tasks import check

from .helpers import task_context

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def api_runtime(tmp_path, plugin_manager, register_plugin):
    """``api_runtime(vm=None, **zfs)`` → a migrated runtime (core tables + the zfs plugin's)."""
    import bhype_zfs.plugin

    register_plugin(models, "core_models")
    register_plugin(bhype_zfs.plugin, "zfs")

    def build(vm: dict | None = None, **zfs):
        sections = {"zfs": {"pool": "tank", **zfs}, **({"vm": vm} if vm else {})}
        runtime = build_runtime(make_settings(tmp_path / "data", **sections), plugin_manager)
        upgrade(runtime)
        return runtime

    return build


def client_as(runtime, name: str = "root", role: str = "admin") -> TestClient:
    app = create_app(runtime=runtime)
    act_as(app, name, role)
    return TestClient(app)


def test_only_the_zfs_router_is_mounted(zfs_runtime):
    runtime = zfs_runtime()
    assert runtime.registry.routers.names() == ["zfs"]
    paths = set(create_app(runtime=runtime).openapi()["paths"])
    assert {"/api/v1/zfs/status", "/api/v1/zfs/status/refresh", "/api/v1/zfs/pools", "/api/v1/zfs/init",
            "/api/v1/zfs/snapshots", "/api/v1/zfs/clones"} <= paths
    assert not any(path.startswith("/api/v1/backup") for path in paths)


def test_status_shows_the_workers_probe_without_host_commands(api_runtime, tmp_path):
    runtime = api_runtime(platform="freebsd", **fake_tools(tmp_path))
    with client_as(runtime, "alice", "operator") as client:
        before = client.get("/api/v1/zfs/status").json()
        assert before["probed"] is False and "POST /api/v1/zfs/status/refresh" in before["message"]
        probe(task_context(runtime, "zfs.probe", None))  # what the worker's periodic job does
        body = client.get("/api/v1/zfs/status").json()
    assert body["probed"] is True and body["tools"]["version"] == "2.2.4-FreeBSD_g256659204"
    assert body["pool_status"]["health"] == "ONLINE" and body["pool_status"]["capacity_percent"] == 31


def test_pools_answer_from_the_last_health_check(api_runtime):
    runtime = api_runtime()
    with client_as(runtime, "alice", "operator") as client:
        assert client.get("/api/v1/zfs/pools").json() == {"pool": "tank", "root": "tank/bhype", "pools": []}
        with session(runtime) as db:
            db.add(ZfsHealthState(pool="tank", health="DEGRADED", capacity_level="ok", capacity=31, size=100,
                                  allocated=31, free=69))
        (pool,) = client.get("/api/v1/zfs/pools").json()["pools"]
    assert (pool["pool"], pool["health"], pool["capacity"], pool["free"]) == ("tank", "DEGRADED", 31, 69)


def test_pool_routes_are_for_admins_and_queue_tasks(api_runtime):
    runtime = api_runtime()
    with client_as(runtime, "alice", "operator") as client:
        assert client.post("/api/v1/zfs/status/refresh").status_code == 403
        assert client.post("/api/v1/zfs/pools/check").status_code == 403
        assert client.post("/api/v1/zfs/init", json={"pool": "tank", "disks": ["/dev/ada1"]}).status_code == 403
    with client_as(runtime) as client:
        refresh = client.post("/api/v1/zfs/status/refresh")
        checking = client.post("/api/v1/zfs/pools/check")
        plan = client.post("/api/v1/zfs/init/plan", json={"pool": "tank", "disks": ["/dev/ada1", "/dev/ada2"]})
    assert refresh.status_code == 202 and refresh.json()["kind"] == "zfs.probe"
    assert checking.status_code == 202 and checking.json()["kind"] == "zfs.check"
    assert plan.status_code == 202, plan.text
    task = get_task(runtime.engine, plan.json()["task_id"])
    assert (task.kind, task.owner, task.state) == ("zfs.plan_init", "root", "queued")
    assert task.arguments["root"] == "bhype" and task.arguments["layout"] == "mirror"
    assert task.locks == []
    single = {"pool": "tank", "disks": ["/dev/ada1"], "layout": "single"}
    init = client_as(runtime).post("/api/v1/zfs/init", json=single)
    assert get_task(runtime.engine, init.json()["task_id"]).locks == ["pool:tank"]


@pytest.mark.parametrize(("body", "field", "message"), [
    ({"pool": "tank", "disks": ["/dev/ada1"]}, "disks", "needs at least 2"),
    ({"pool": "tank", "disks": ["/dev/ada1", "/dev/ada1"]}, "disks.1", "named twice"),
    ({"pool": "tank", "disks": ["ada1", "/dev/ada2"]}, "disks.0", "under /dev/"),
    ({"pool": "1tank", "disks": []}, "pool", "begin with a letter"),
    ({"pool": "tank", "disks": ["/dev/a", "/dev/b"], "layout": "raid5"}, "layout", "must be one of"),
    ({"pool": "tank", "adopt": True, "root": "a//b"}, "root", "no empty"),
    ({"pool": "tank", "adopt": True, "initialised_at": "yesterday"}, "body.initialised_at", "should match pattern"),
])
def test_bad_init_requests_name_the_field_and_queue_nothing(api_runtime, body, field, message):
    runtime = api_runtime()
    with client_as(runtime) as client:
        response = client.post("/api/v1/zfs/init", json=body)
    assert response.status_code == 422, response.text
    fields = response.json()["error"]["fields"]
    assert any(f["path"] == field and message in f["message"] for f in fields), fields
    from bhype_core.tasks.store import list_tasks

    assert list_tasks(runtime.engine) == []


def test_snapshot_targets_are_checked_before_queueing(api_runtime):
    runtime = api_runtime()
    dataset = {"dataset": "tank/bhype/vms/web1", "name": "before-upgrade"}
    with client_as(runtime, "alice", "operator") as client:
        assert client.post("/api/v1/zfs/snapshots", json=dataset).status_code == 403
    with client_as(runtime) as client:
        accepted = client.post("/api/v1/zfs/snapshots", json=dataset)
        outside = client.post("/api/v1/zfs/snapshots", json={"dataset": "tank/other", "name": "x"})
        bad_name = client.post("/api/v1/zfs/snapshots", json={**dataset, "name": "no spaces"})
        neither = client.post("/api/v1/zfs/snapshots/list", json={})
        bad_tag = client.post("/api/v1/zfs/snapshots/hold", json={**dataset, "tag": "a b"})
        bad_mode = client.post("/api/v1/zfs/clones", json={"source": "x", "target": "y", "mode": "deep"})
    assert accepted.status_code == 202
    task = get_task(runtime.engine, accepted.json()["task_id"])
    assert task.arguments == {"dataset": "tank/bhype/vms/web1", "name": "before-upgrade", "recursive": True}
    assert task.locks == ["dataset:tank/bhype/vms/web1"]
    assert outside.status_code == 422 and "outside bHype's root" in outside.text
    assert bad_name.status_code == 422 and bad_tag.status_code == 422
    assert neither.status_code == 422 and "exactly one of vm or dataset" in neither.text
    assert bad_mode.status_code in (404, 422)  # no VM 'x' (checked first) or a bad mode


def test_operators_snapshot_only_their_own_vms(api_runtime, register_plugin):
    from bhype_core.builtins import vm_tasks
    from bhype_core.vm.models import VM

    register_plugin(vm_tasks, "core_vms")
    runtime = api_runtime(vm={"datastores": {"zfs": {"backend": "zfs", "dataset": "tank/bhype"}},
                              "default_datastore": "zfs"})
    with session(runtime) as db:
        db.add(VM(name="web1", uuid="6a0c9f0e-2b3d-4c55-9a1e-0c2d3e4f5a6b", owner="bob", datastore="zfs",
                  spec={"name": "web1"}))
    body = {"vm": "web1", "name": "pre-update"}
    with client_as(runtime, "alice", "operator") as client:
        assert client.post("/api/v1/zfs/snapshots", json=body).status_code == 404
    with client_as(runtime, "bob", "operator") as client:
        accepted = client.post("/api/v1/zfs/snapshots", json=body)
        missing = client.post("/api/v1/zfs/snapshots", json={"vm": "nosuch", "name": "x"})
    assert accepted.status_code == 202 and missing.status_code == 404
    task = get_task(runtime.engine, accepted.json()["task_id"])
    assert (task.owner, task.locks) == ("bob", ["vm:web1"])


def test_schedules_crud(api_runtime):
    runtime = api_runtime()
    body = {"name": "nightly", "dataset": "tank/bhype/vms", "daily": 7, "weekly": 4}
    with client_as(runtime, "alice", "operator") as client:
        assert client.get("/api/v1/zfs/schedules").status_code == 403
    with client_as(runtime) as client:
        created = client.post("/api/v1/zfs/schedules", json=body)
        assert created.status_code == 201 and created.json()["daily"] == 7
        assert client.post("/api/v1/zfs/schedules", json=body).status_code == 409
        bad = client.post("/api/v1/zfs/schedules", json={**body, "name": "x", "hourly": -1})
        assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["path"] == "hourly"
        empty = client.post("/api/v1/zfs/schedules", json={"name": "y", "dataset": "tank/a"})
        assert empty.status_code == 422 and "keeps no snapshots" in empty.text
        assert [s["name"] for s in client.get("/api/v1/zfs/schedules").json()["schedules"]] == ["nightly"]
        assert client.delete("/api/v1/zfs/schedules/nightly").status_code == 204
        assert client.delete("/api/v1/zfs/schedules/nightly").status_code == 404


def fake_tools(tmp_path) -> dict[str, str]:
    target = tmp_path / "fake-tools"
    shutil.copytree(FIXTURES, target)
    for name in ("fake-zfs", "fake-zpool"):
        (target / name).chmod(0o755)
    return {"zfs_command": str(target / "fake-zfs"), "zpool_command": str(target / "fake-zpool")}


class Collector:
    """A notifier plugin remembering every event."""

    def __init__(self) -> None:
        self.events = []

    @hookimpl
    def bhype_notify(self, event) -> None:
        self.events.append(event)


def test_check_task_on_freebsd_tools_records_pools_and_notifies(api_runtime, register_plugin, tmp_path):
    collector = register_plugin(Collector(), "collector")
    runtime = api_runtime(platform="freebsd", **fake_tools(tmp_path))
    result = check(task_context(runtime, "zfs.check", "root"))
    assert result["status"]["tools"]["version"] == "2.2.4-FreeBSD_g256659204"
    pools = {p["pool"]: p for p in result["pools"]}
    assert pools["tank"]["health"] == "ONLINE" and pools["tank"]["devices"][0]["name"] == "/dev/gpt/tank-0"
    assert pools["zroot"]["devices"][1] == {
        "name": "9841771462396284839", "state": "UNAVAIL", "read": 0, "write": 0, "checksum": 0,
        "note": "was /dev/ada1p4"}
    assert sorted((e.kind, e.severity) for e in collector.events) == [
        ("zfs.pool_capacity", "warning"), ("zfs.pool_health", "error")]
    assert {p["pool"]: p["capacity_level"] for p in health.recorded(runtime)} == {"tank": "ok", "zroot": "warning"}
    check(task_context(runtime, "zfs.check", "root"))
    assert len(collector.events) == 2  # nothing changed: nothing new said


def test_missing_zfs_is_reported_not_raised(api_runtime, tmp_path):
    missing = str(tmp_path / "no-such-zfs")
    result = check(task_context(api_runtime(zfs_command=missing), "zfs.check"))
    assert result["status"]["tools"]["found"] is False and missing in result["status"]["tools"]["error"]
    assert "pools" not in result


def test_parse_zfs_version_linux_and_unloaded_module():
    assert parse_zfs_version("zfs-2.1.11-1\nzfs-kmod-2.1.11-1\n") == ("2.1.11-1", "2.1.11-1")
    # zfs(8) prints only the userland line when the kernel module is not loaded.
    assert parse_zfs_version((FIXTURES / "zfs_version_freebsd.txt").read_text().splitlines()[0]) == (
        "2.2.4-FreeBSD_g256659204",
        None,
    )


def test_parse_zpool_list_refuses_unexpected_columns():
    (pool,) = parse_zpool_list((FIXTURES / "zpool_list_tank.txt").read_text())
    assert pool.health == "ONLINE" and pool.capacity_percent == 31
    with pytest.raises(ValueError, match="6 TAB-separated fields"):
        parse_zpool_list("tank\t1\t2\n")


def test_the_backend_in_the_api_process_computes_paths_without_host_commands():
    from bhype_core.api.api_runtime import HostCommandRefused, RefusingRunner
    from bhype_zfs.argv import Tools
    from bhype_zfs.storage import ZfsDatastoreOptions, ZfsStorage
    from bhype_zfs.tool import ZfsHost

    host = ZfsHost(RefusingRunner(), Tools())
    store = ZfsStorage(host, "tank/bhype", ZfsDatastoreOptions())
    assert str(store.vm_dir("web1")) == "/tank/bhype/vms/web1"  # zfs's default mountpoint
    volume = store.volume("web1", "disk0")
    assert (str(volume.path), volume.size) == ("/dev/zvol/tank/bhype/vms/web1/disk0", 0)
    assert store.isos() is None  # unknown here: the task checks the ISO
    placed = ZfsStorage(host, "tank/bhype", ZfsDatastoreOptions(mountpoint="/vm"))
    assert str(placed.vm_dir("web1")) == "/vm/vms/web1" and str(placed.iso_path("a.iso")) == "/vm/isos/a.iso"
    with pytest.raises(HostCommandRefused):
        store.create_vm_dir("web2")
