"""Consoles across the privilege line (issue 11): a real ``bhype worker`` runs as root beside a
QEMU guest started by the real driver; the bridge side runs as the unprivileged API user (a
kit-made account, ``[auth] api_user``), exactly as ``bhype serve`` would, and reaches VNC (RFB
banner, the bridge's multiplexer) and the serial console through the worker's console broker.
Another account in the API user's group and one outside it are refused, and nobody but root
can connect to the VM's own sockets.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from pages_env import feature_plugins
from sqlmodel import Session

from bhype_core.builtins import drivers as core_drivers
from bhype_core.builtins import models as core_models
from bhype_core.builtins import storage as core_storage
from bhype_core.config import load_settings
from bhype_core.db.migrate import upgrade
from bhype_core.drivers.select import select_driver
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.spec import validate_spec
from bhype_core.testing.guest_image import READY_MARKER
from bhype_core.vm.models import VM
from bhype_core.vm.services import open_datastore

pytestmark = [pytest.mark.guest, pytest.mark.slow]

HELPER = Path(__file__).with_name("console_as_user.py")
BOOT_TIMEOUT = 180
VM_NAME = "cpvm"


def host_python() -> str:
    """A python3 of this version that any account may run (the test's own may sit in root's
    home, as pyenv's does here)."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (sys.executable, f"/usr/bin/{name}", f"/usr/local/bin/{name}"):
        path = Path(candidate).resolve()
        if path.is_file() and all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents]):
            return candidate
    raise AssertionError(f"no {name} that other accounts may run (install the distribution's {name})")


def run_as(user, *args: str) -> dict:
    """The helper's JSON report, run as ``user`` (uid, primary gid, supplementary groups)."""
    site_packages = next(p for p in sys.path if p.endswith("site-packages") and p.startswith(sys.prefix))
    result = subprocess.run(
        [host_python(), str(HELPER), site_packages, *args],
        user=user.uid, group=user.gid, extra_groups=os.getgrouplist(user.name, user.gid),
        cwd="/", env={"PATH": "/usr/bin:/bin", "HOME": "/"},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def split_host(local_user, tiny_guest):
    """Root worker + a running guest; yields what the test needs to act as the API user."""
    root = Path(tempfile.mkdtemp(prefix="bhype-cp-", dir="/tmp"))
    os.chmod(root, 0o711)  # the accounts may pass through to the data directory, no more
    api = local_user()  # its own primary group: the data directory's and the broker's group
    config = root / "bhype.toml"
    config.write_text(
        f'[core]\ndata_dir = "{root / "data"}"\ndriver = "qemu"\nlog_level = "info"\n'
        # Only the core and the web UI: the feature plugins' start-up jobs and samplers
        # (service probes, metrics, heartbeats) have nothing to do with the broker under test.
        f'disabled_plugins = {json.dumps(sorted(feature_plugins()))}\n'
        f'[qemu]\naccel = "tcg"\nmachine = "pc"\n'
        f'[auth]\napi_user = "{api.name}"\n'
        f'[queue]\nbackend = "sqlite"\n'
    )
    os.chmod(config, 0o644)
    pm = make_plugin_manager(load_entrypoints=False)
    for module, name in ((core_models, "core_models"), (core_drivers, "core_drivers"), (core_storage, "core_storage")):
        pm.register_plugin(module, name)
    runtime = build_runtime(load_settings(config), pm)
    upgrade(runtime)  # as root: the shared layout (data dir root:<api group> 1770)
    spec = validate_spec({
        "name": VM_NAME, "memory": "128M", "graphics": {"vnc": True},
        "boot": {"mode": "grub", "kernel": str(tiny_guest.kernel), "initrd": str(tiny_guest.initrd),
                 "cmdline": tiny_guest.append(f"bhype.hostname={VM_NAME}")},
    })  # fmt: skip
    store = open_datastore(runtime)
    store.create_vm_dir(VM_NAME)
    with Session(runtime.engine) as db:
        db.add(VM(name=VM_NAME, uuid=str(spec.uuid), owner="alice", datastore="default", spec=spec.to_data()))
        db.commit()
    driver = select_driver(runtime)
    vm_dir = store.vm_dir(VM_NAME)
    worker = None
    try:
        status = driver.start(spec, vm_dir)
        deadline = time.monotonic() + BOOT_TIMEOUT
        log = vm_dir / "serial.log"
        while READY_MARKER not in (log.read_bytes().decode(errors="replace") if log.exists() else ""):
            assert time.monotonic() < deadline, "the guest did not boot"
            time.sleep(0.5)
        worker = subprocess.Popen(
            [sys.executable, "-m", "bhype_core.tasks.worker", "--config", str(config), "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        broker = root / "data" / "console.sock"
        deadline = time.monotonic() + 120
        while not broker.is_socket():
            assert worker.poll() is None, f"the worker ended: {worker.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, "the worker published no console broker"
            time.sleep(0.2)
        yield {"config": config, "api": api, "vnc": status.consoles["vnc"]["unix"], "broker": broker,
               "worker": worker, "users": local_user}  # fmt: skip
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGINT)  # graceful: the broker removes its socket
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if driver.status(spec, vm_dir).active:
            driver.force_stop(spec, vm_dir)
        runtime.engine.dispose()
        shutil.rmtree(root, ignore_errors=True)


def test_api_user_reaches_the_consoles_only_through_the_root_worker(split_host):
    host = split_host
    args = (str(host["config"]), VM_NAME, host["vnc"], str(host["broker"]))
    broker_mode = os.stat(host["broker"])
    assert (broker_mode.st_uid, broker_mode.st_gid, broker_mode.st_mode & 0o777) == (0, host["api"].gid, 0o660)

    api = run_as(host["api"], *args)
    assert api["uid"] == host["api"].uid
    # QEMU's own socket stays root's: not even the API user connects to it ...
    assert api["direct"]["errno"] == errno.EACCES, api["direct"]
    # ... but the bridge, as the API user, gets VNC and serial through the worker's broker.
    assert "ok" in api["bridge"], api["bridge"]
    report = api["bridge"]["ok"]
    assert report["routed"] and report["password"] is None
    assert report["banner"].startswith("RFB 003.")
    assert "privsep-42 0" in report["serial"]  # the guest's root shell answered
    assert report["mux_open"]
    assert api["broker_locate"]["ok"]["unix"] == host["vnc"]

    # An account sharing the API user's group reaches the socket, but not the API user's uid:
    # the broker refuses it by its peer credentials.
    intruder = host["users"](groups=[host["api"].primary_group])
    answer = run_as(intruder, *args)
    assert answer["direct"]["errno"] == errno.EACCES
    assert answer["broker_connect"] == {"ok": True}
    assert answer["broker_locate"]["error"] == "ConsoleBrokerUnavailable"
    assert "forbidden_peer" in answer["broker_locate"]["message"]
    assert "ok" not in answer.get("bridge", {})  # nor does it read the API user's database

    # Any other local account is refused at the socket itself.
    outsider = host["users"]()
    answer = run_as(outsider, *args)
    assert answer["direct"]["errno"] == errno.EACCES
    assert answer["broker_connect"]["errno"] == errno.EACCES
    assert answer["broker_locate"]["error"] == "ConsoleBrokerUnavailable"

    host["worker"].send_signal(signal.SIGINT)
    host["worker"].wait(timeout=60)
    assert not host["broker"].exists()  # the broker removes its socket when the worker stops
