"""Crash safety of switches and ISO imports (issue 11).

``switch.create`` on a real worker process that runs inside a network namespace: the real
``ip`` makes the bridge, then (a wrapper first on the worker's PATH) holds the command, and the
test kills the worker with SIGKILL there. After a restart, recovery removes the half-made
bridge, the held command did not survive its worker, and the name can be used again. ISO
imports: recovery removes a ``.partial-`` file and an ISO moved in but never recorded; stale
staged uploads no pending import names are removed, fresh and wanted ones are kept.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _netkit import in_ns, links, task_context
from sqlmodel import Session, select

import bhype_core.builtins.models as core_models
import bhype_core.builtins.network as core_network
import bhype_core.builtins.tasks as core_tasks
from bhype_core.db.migrate import upgrade
from bhype_core.iso_staging import clean_uploads, undo_import
from bhype_core.isos import partial_path, record_path, upload_path, uploads_dir, write_record
from bhype_core.network.models import Switch, bridge_name
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.testing.parts import require_program
from bhype_core.testing.queue import WorkerProcess, queue_config, settings_from, write_config
from bhype_core.testing.waiting import running, wait_for
from bhype_core.vm.services import open_datastore

IP_WRAPPER = '''#!/bin/sh
# The real ip; after it made a bridge, hold (the test kills the worker here).
{real} "$@" || exit $?
case "$*" in
    *"type bridge"*) echo $$ > {pid_file}; exec sleep 600 ;;
esac
'''


def submit(runtime, user: str, kind: str, arguments: dict):
    """Submit as ``user``, with the role their groups give them now (as the worker reads it)."""
    from bhype_core.tasks.authz import owner_principal

    return service.submit(runtime, owner_principal(runtime, user), kind, arguments)


class NamespacedWorker(WorkerProcess):
    """A real worker process started inside network namespace ``netns`` (``ip netns exec``
    execs it, so its pid is the worker's)."""

    def __init__(self, netns: str, ip: str, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.netns, self.ip = netns, ip

    def start(self) -> NamespacedWorker:
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [self.ip, "netns", "exec", self.netns, sys.executable, "-m", "bhype_core.tasks.worker",
                 "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=self.env,
            )
        return self


@pytest.fixture
def switch_setup(tmp_path: Path, netns, local_user):
    """(raw config, client runtime, start-worker function, namespace, pid file of the held ip,
    a real admin: the worker reads a task owner's role from their groups before running it)."""
    ip = require_program("ip", "iproute2")
    namespace = netns("crash")
    raw = queue_config(tmp_path / "data", "sqlite")
    raw["core"]["platform"] = "linux"
    raw["tasks"] = {"poll_interval": 0.5, "sweep_interval": 2.0}
    raw["core"]["disabled_plugins"] = sorted(
        {ep.name for ep in metadata.entry_points(group="bhype") if not ep.name.startswith("core_")}
    )
    admins = local_user.group()
    raw["auth"] = {"admin_groups": [admins.name]}
    admin = local_user(groups=[admins]).name
    plugins = [("core_models", core_models), ("core_tasks", core_tasks), ("core_network", core_network)]
    runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    bin_dir, pid_file = tmp_path / "bin", tmp_path / "held.pid"
    bin_dir.mkdir()
    wrapper = bin_dir / "ip"
    wrapper.write_text(IP_WRAPPER.format(real=ip, pid_file=pid_file))
    wrapper.chmod(0o755)
    workers: list[WorkerProcess] = []

    def start(hold: bool) -> WorkerProcess:
        number = len(workers) + 1
        config = write_config(tmp_path / f"worker{number}.toml", raw)
        path = f"{bin_dir}:{os.environ['PATH']}" if hold else os.environ["PATH"]
        worker = NamespacedWorker(namespace, ip, config, tmp_path / f"worker{number}.log", {"PATH": path})
        workers.append(worker.start())
        return worker.wait_ready()

    yield raw, runtime, start, namespace, pid_file, admin
    for worker in workers:
        worker.stop()
    runtime.engine.dispose()


def switch_names(runtime) -> list[str]:
    with Session(runtime.engine) as db:
        return [row.name for row in db.exec(select(Switch))]


def test_kill_9_mid_switch_create_removes_the_bridge_and_frees_the_name(switch_setup):
    _, runtime, start, namespace, pid_file, admin = switch_setup
    bridge = bridge_name("lab")
    first = start(hold=True)
    victim = submit(runtime, admin, "switch.create", {"name": "lab", "address": "10.77.0.1/24"})
    held = wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), "the bridge to be made")
    assert bridge in links(namespace)
    first.send_signal(signal.SIGKILL)
    first.wait()
    wait_for(lambda: not running(int(held)), "the held command to die with its worker", timeout=30)
    assert bridge in links(namespace) and switch_names(runtime) == []  # the crash left an orphan

    start(hold=False)
    wait_for(lambda: store.get_task(runtime.engine, victim.id).progress_message.endswith("undone"),
             "recovery to undo the switch")
    assert bridge not in links(namespace)
    log = [line.message for line in store.read_log(runtime.engine, victim.id)]
    assert f"undone after the interruption: switch lab on the host ({bridge})" in log

    again = submit(runtime, admin, "switch.create", {"name": "lab", "address": "10.77.0.1/24"})
    wait_for(lambda: store.get_task(runtime.engine, again.id).state in ("succeeded", "failed"), "the retry")
    assert store.get_task(runtime.engine, again.id).state == "succeeded"
    assert switch_names(runtime) == ["lab"] and bridge in links(namespace)
    addresses = json.loads(in_ns(namespace, "ip", "-j", "addr", "show", "dev", bridge).stdout)
    assert addresses[0]["addr_info"][0]["local"] == "10.77.0.1"


# -- ISO imports and staged uploads ------------------------------------------------------------


def test_recovery_of_an_import_removes_the_partial_file_and_an_unrecorded_iso(network_runtime):
    context = task_context(network_runtime, "iso.import")
    store_ = open_datastore(network_runtime)
    target = store_.iso_path("new.iso")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial_path(target).write_bytes(b"half")
    target.write_bytes(b"moved in, never recorded")
    said = undo_import(context, None, "new.iso", existed=False)
    assert not partial_path(target).exists() and not target.exists()
    assert said == f"ISO import leftovers {partial_path(target)}, {target}"

    kept = store_.iso_path("kept.iso")
    kept.write_bytes(b"finished import")
    write_record(kept, "0" * 64, "upload", "alice")
    assert undo_import(context, None, "kept.iso", existed=False) is None and kept.exists()
    before = store_.iso_path("before.iso")
    before.write_bytes(b"an admin's ISO, no record")
    assert undo_import(context, None, "before.iso", existed=True) is None and before.exists()
    assert not record_path(before).exists()


def test_stale_staged_uploads_are_removed_unless_a_pending_import_names_them(network_runtime, tmp_path):
    runtime = network_runtime
    uploads_dir(runtime).mkdir(parents=True, exist_ok=True)
    stale, fresh, wanted = (upload_path(runtime, f"{n:032x}") for n in (1, 2, 3))
    for path in (stale, fresh, wanted):
        path.write_bytes(b"iso bytes")
    victim = tmp_path / "not-an-upload"
    victim.write_text("keep me")
    link = upload_path(runtime, f"{4:032x}")
    link.symlink_to(victim)
    other = uploads_dir(runtime) / "README"
    other.write_text("not a staged name")
    old = time.time() - 7200
    for path in (stale, wanted, other):
        os.utime(path, (old, old))
    os.utime(link, (old, old), follow_symlinks=False)
    submit(runtime, "root", "iso.import", {"name": "x.iso", "upload": f"{3:032x}", "sha256": "0" * 64})

    removed = clean_uploads(runtime, max_age=3600)
    assert removed == [str(stale), str(link)]
    assert fresh.exists() and wanted.exists() and other.exists()
    assert victim.read_text() == "keep me"  # the link went, never its target
