"""A move inside a group (issue 22): two real worker processes (hosts h1 and h2, their own data
directories) share a fresh MariaDB database and the real Redis; a real QEMU guest booted on h1
moves cold to h2 with no peer paired and no token: the receiving side runs as remote sub-tasks
on h2's queue, the files go by rsync over SSH (a real loopback sshd, the group's admin-provided
key and known_hosts), the VM keeps its one record and its ``host`` becomes h2, and the guest
boots there from the moved disk. Judged from rows, files and the guest's serial console."""

from __future__ import annotations

import importlib.metadata as metadata
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.testing.api_auth import token_headers
from bhype_core.testing.guest_image import READY_MARKER
from bhype_core.testing.queue import settings_from
from bhype_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.guest, pytest.mark.mariadb, pytest.mark.sshd]

HOSTS = ("h1", "h2")
VMS = "/api/v1/vms"
MOVES = "/api/v1/migrate/moves"
BOOT_WAIT = 300.0  # TCG on a loaded 2-core machine; a deadline, not a timing assertion
MARKER = b"GROUP-MOVE-MARKER 1234567890"


def host_config(short_dir: Path, name: str, database_url: str, redis_url: str, prefix: str, sshd, templates: Path,
                auth: dict) -> dict:
    """Host ``name``'s tables (``a.b`` keys are nested tables, as :func:`write_config` writes)."""
    data = short_dir / name
    keep = {"migrate"}  # the core's built-ins and bhype_migrate: what is tested is the move
    return {
        "core": {"data_dir": str(data), "database_url": database_url, "redis_url": redis_url,
                 "disabled_plugins": sorted({ep.name for ep in metadata.entry_points(group="bhype")
                                             if not ep.name.startswith("core_") and ep.name not in keep})},
        "queue": {"backend": "redis", "name": prefix, "workers": 2},
        "tasks": {"poll_interval": 0.3, "sweep_interval": 1.0},
        "host": {"name": name, "address": sshd.host, "heartbeat_interval": 0.5, "unreachable_after": 60},
        "auth": {**auth, "account_recheck_interval": 3600},
        "qemu": {"accel": "tcg"},
        "vm": {"templates_dir": str(templates), "stop_timeout": 90},
        "vm.datastores.default": {"path": str(data / "ds")},
        # The group's data path: one admin-provided key and known_hosts for every host.
        "migrate": {"group_ssh_user": sshd.user, "group_ssh_port": sshd.port, "group_ssh_key": str(sshd.identity),
                    "group_known_hosts": str(sshd.known_hosts)},
    }


def as_settings(raw: dict) -> dict:
    """``raw`` with its dotted table names nested, as a TOML reader reads them."""
    nested: dict = {}
    for key, values in raw.items():
        table = nested
        for part in key.split("."):
            table = table.setdefault(part, {})
        table.update(values)
    return nested


@pytest.fixture
def make_group(short_dir, fresh_mariadb_url, redis_url, redis_prefix, start_worker, host_builtins, sshd_server,
               tiny_guest, bhype_roles):
    """``make_group(**h2_tables) -> (client, headers, configs)``: the API (as h1's process, with
    bhype_migrate) and a running worker per host; ``h2_tables`` override h2's tables."""
    templates = short_dir / "templates"
    templates.mkdir()
    (templates / "tiny.toml").write_text(tiny_guest.template_toml())
    auth = bhype_roles.auth_section()
    runtimes, clients = [], []

    def build(**h2_tables: dict) -> tuple:
        configs = {name: host_config(short_dir, name, fresh_mariadb_url, redis_url, redis_prefix, sshd_server,
                                     templates, auth) for name in HOSTS}
        for table, values in h2_tables.items():
            configs["h2"][table] = {**configs["h2"].get(table, {}), **values}
        import bhype_migrate.plugin

        runtime = build_runtime(settings_from(as_settings(configs["h1"])), make_plugin_manager(
            load_entrypoints=False, plugins=[*host_builtins, ("migrate", bhype_migrate.plugin)]))
        upgrade(runtime)
        runtimes.append(runtime)
        for name in HOSTS:
            start_worker(configs[name])
        app = create_app(runtime=runtime)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        headers = token_headers(app, bhype_roles.admin().name, "admin")
        wait_for(lambda: len(client.get("/api/v1/hosts", headers=headers).json()["hosts"]) == 2,
                 "both hosts to register")
        return client, headers, configs

    yield build
    for client in clients:
        client.__exit__(None, None, None)
    for runtime in runtimes:
        runtime.engine.dispose()


def task(client, headers, task_id: str) -> dict:
    return client.get(f"/api/v1/tasks/{task_id}", headers=headers).json()


def ended(client, headers, response, expect: str = "succeeded") -> dict:
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    final = wait_for(lambda: (t := task(client, headers, task_id))["state"] not in ("queued", "running") and t,
                     f"task {task_id} to end", timeout=BOOT_WAIT * 2, detail=lambda: task(client, headers, task_id))
    assert final["state"] == expect, final
    return final


def vm(client, headers, name: str) -> dict:
    return client.get(f"{VMS}/{name}", headers=headers).json()


def vm_dir(configs: dict, host: str, name: str) -> Path:
    return Path(configs[host]["vm.datastores.default"]["path"]) / "vms" / name


def booted(path: Path, after: int = 0) -> bool:
    return path.exists() and READY_MARKER in path.read_text(errors="replace")[after:]


def create_on_h1(client, headers, name: str = "mv") -> dict:
    spec = {"disks": [{"size": "64M"}], "boot": {"cmdline": f"console=ttyS0 console=tty0 bhype.hostname={name}"}}
    ended(client, headers, client.post(VMS, headers=headers, json={"name": name, "host": "h1", "template": "tiny",
                                                                    "spec": spec}))
    return vm(client, headers, name)


def force_stop(client, headers, name: str) -> None:
    """Leave no guest running (wherever it is)."""
    client.post(f"{VMS}/{name}/force-stop", headers=headers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and vm(client, headers, name).get("state") == "running":
        time.sleep(0.5)


def test_a_guest_moves_to_another_host_of_the_group_without_a_peer(make_group):
    client, headers, configs = make_group()
    before = create_on_h1(client, headers)
    assert before["host"] == "h1"
    source = vm_dir(configs, "h1", "mv")
    with (source / "disk0.img").open("r+b") as disk:  # what the disk holds must arrive intact
        disk.write(MARKER)
    running_on = []
    try:
        ended(client, headers, client.post(f"{VMS}/mv/start", headers=headers))
        running_on.append("h1")
        wait_for(lambda: booted(source / "serial.log"), "the guest to boot on h1", timeout=BOOT_WAIT)

        # Refusals before anything changes: the VM's own host, and keeping the one record twice.
        same = client.post(MOVES, headers=headers, json={"vm": "mv", "to": "h1"})
        assert same.status_code == 422 and "on host 'h1' already" in same.text
        kept = ended(client, headers, client.post(MOVES, headers=headers,
                                                  json={"vm": "mv", "to": "h2", "keep_source": True,
                                                        "dry_run": True}))
        assert [path for path, _ in kept["result"]["problems"]] == ["keep_source"], kept["result"]["problems"]
        plan = ended(client, headers, client.post(MOVES, headers=headers, json={"vm": "mv", "to": "h2",
                                                                                 "dry_run": True}))
        assert plan["result"]["problems"] == [] and plan["result"]["target"]["group"] is True
        assert plan["result"]["target"]["root"] == configs["h2"]["vm.datastores.default"]["path"]
        assert plan["worker_host"] == "h1"  # the plan reads the VM's files: on its host

        moved = ended(client, headers, client.post(MOVES, headers=headers, json={"vm": "mv", "to": "h2",
                                                                                  "start": True}))
        running_on[:] = ["h2"]
        result = moved["result"]
        assert moved["worker_host"] == "h1" and result["started"] is True and result["bytes_sent"] > 0
        after = vm(client, headers, "mv")
        assert after["host"] == "h2" and after["uuid"] == before["uuid"] and after["id"] == before["id"]
        assert [n["mac"] for n in after["spec"]["nics"]] == [n["mac"] for n in before["spec"]["nics"]]

        # The receiving side ran on h2's worker, as sub-tasks of the move (no token, no peer).
        children = [t for t in client.get("/api/v1/tasks", params={"limit": 100}, headers=headers).json()["tasks"]
                    if t.get("parent_id") == moved["id"]]
        by_kind = {t["kind"]: t for t in children}
        assert {"migrate.check", "migrate.receive", "vm.start"} <= set(by_kind), sorted(by_kind)
        assert all(by_kind[kind]["worker_host"] == "h2" for kind in ("migrate.check", "migrate.receive", "vm.start"))
        assert by_kind["vm.stop"]["worker_host"] == "h1"
        assert client.get("/api/v1/migrate/peers", headers=headers).json()["peers"] == []

        # The files left h1, arrived intact on h2, and the guest boots there from them.
        target = vm_dir(configs, "h2", "mv")
        assert not source.exists()
        assert (target / "disk0.img").read_bytes()[:len(MARKER)] == MARKER
        wait_for(lambda: booted(target / "serial.log"), "the guest to boot on h2", timeout=BOOT_WAIT)
        journal = client.get(MOVES, headers=headers).json()["moves"][0]
        assert (journal["peer"], journal["state"]) == ("h2", "done")

        # Work on the VM now goes to h2's worker.
        stopped = ended(client, headers, client.post(f"{VMS}/mv/force-stop", headers=headers))
        running_on.clear()
        assert stopped["worker_host"] == "h2"
    finally:
        if running_on:
            force_stop(client, headers, "mv")


def test_a_move_that_fails_on_the_target_gives_the_vm_back_to_its_host(make_group):
    # h2's hypervisor cannot start anything: the files arrive, h2 takes the record over, the
    # start there fails, and the rollback gives the one record back to h1 and starts it there.
    client, headers, configs = make_group(qemu={"binary": "/nonexistent/qemu-system-x86_64"})
    before = create_on_h1(client, headers)
    source = vm_dir(configs, "h1", "mv")
    try:
        ended(client, headers, client.post(f"{VMS}/mv/start", headers=headers))
        wait_for(lambda: booted(source / "serial.log"), "the guest to boot on h1", timeout=BOOT_WAIT)
        failed = ended(client, headers, client.post(MOVES, headers=headers, json={"vm": "mv", "to": "h2",
                                                                                   "start": True}), expect="failed")
        assert "vm.start on host h2 failed" in failed["error"]["message"], failed["error"]
        after = vm(client, headers, "mv")
        assert (after["host"], after["datastore"], after["uuid"]) == ("h1", before["datastore"], before["uuid"])
        target = Path(configs["h2"]["vm.datastores.default"]["path"])
        assert not (target / "vms" / "mv").exists()
        assert not [p for p in target.iterdir() if p.name.startswith(".bhype-incoming-")] if target.exists() else True
        journal = client.get(MOVES, headers=headers).json()["moves"][0]
        assert journal["state"] == "rolled_back" and not journal["cleanup"], journal
        # The source runs again on h1 from its own files: the move's own vm.start there did it.
        wait_for(lambda: vm(client, headers, "mv")["state"] == "running", "the source to run again on h1")
        starts = [t for t in client.get("/api/v1/tasks", params={"limit": 100}, headers=headers).json()["tasks"]
                  if t.get("parent_id") == failed["id"] and t["kind"] == "vm.start"]
        assert sorted((t["worker_host"], t["state"]) for t in starts) == [("h1", "succeeded"), ("h2", "failed")]
    finally:
        force_stop(client, headers, "mv")
