"""Test helper: bHype's real app under uvicorn on loopback, with VMs started by the real QEMU
driver and recorded in the real VM table, for the console tests and the benchmark."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from sqlmodel import Session

import bhype_webui.plugin
from bhype_core.api.app import create_app
from bhype_core.builtins import drivers as core_drivers
from bhype_core.builtins import models as core_models
from bhype_core.builtins import storage as core_storage
from bhype_core.builtins import tasks as core_tasks
from bhype_core.builtins import vm_tasks as core_vms
from bhype_core.db.migrate import upgrade
from bhype_core.drivers.select import select_driver
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.spec import VMSpec, validate_spec
from bhype_core.testing import make_settings
from bhype_core.testing.api_auth import token_headers
from bhype_core.vm.models import VM
from bhype_core.vm.records import find_vm
from bhype_core.vm.services import open_datastore


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port) in a background thread."""

    def __init__(self, app: Any) -> None:
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="bhype-test-uvicorn", daemon=True)
        self.port = 0

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


class ConsoleLab:
    """A runtime (SQLite, QEMU driver under TCG), its app served by uvicorn, and VMs."""

    def __init__(self, **webui: Any) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bhype-wc-", dir="/tmp"))
        pm = make_plugin_manager(load_entrypoints=False)
        for module, name in (
            (core_models, "core_models"),
            (core_drivers, "core_drivers"),
            (core_storage, "core_storage"),
            # The VM API the console pages' power buttons call (tasks stay queued: no worker).
            (core_tasks, "core_tasks"),
            (core_vms, "core_vms"),
            (bhype_webui.plugin, "webui"),
        ):
            pm.register_plugin(module, name)
        settings = make_settings(
            self.root / "data",
            core={"driver": "qemu"},
            qemu={"accel": "tcg", "machine": "pc"},
            webui=webui,
            # Browser sessions below belong to names, not real accounts: no PAM re-check mid-test.
            auth={"account_recheck_interval": 3600},
        )
        self.runtime = build_runtime(settings, pm)
        upgrade(self.runtime)
        self.app = create_app(runtime=self.runtime)
        self.driver = select_driver(self.runtime)  # the worker's kind: a real runner
        self.specs: dict[str, VMSpec] = {}
        self.server = ServerThread(self.app).start()

    def headers(self, user: str, role: str = "operator") -> dict[str, str]:
        """A real API token for ``user``."""
        return token_headers(self.app, user, role, token_name=f"console-{time.monotonic_ns()}")

    def browser_session(self, user: str, role: str = "operator") -> list[dict[str, str]]:
        """A live session in the app's real session store, as the cookies a browser holds
        after logging in (login through PAM is tested in tests/auth)."""
        from bhype_core.api.cookies import csrf_cookie_name
        from bhype_core.api.session_store import (
            SessionRecord,
            new_csrf_token,
            new_session_secret,
            session_key,
        )

        secret, csrf, now = new_session_secret(), new_csrf_token(), time.time()
        auth = self.app.state.auth
        auth.sessions.create(SessionRecord(session_key(secret), user, role, csrf, now, now, now, "127.0.0.1"))
        return [
            {"name": auth.settings.cookie_name, "value": secret, "url": self.server.http},
            {"name": csrf_cookie_name(auth.settings), "value": csrf, "url": self.server.http},
        ]

    def create_vm(self, name: str, owner: str, image: Any, **spec: Any) -> VMSpec:
        """Record VM ``name`` for ``owner`` booting the tiny test guest."""
        boot = {
            "mode": "grub",
            "kernel": str(image.kernel),
            "initrd": str(image.initrd),
            "cmdline": image.append(f"bhype.hostname={name}"),
        }
        validated = validate_spec({"name": name, "memory": "128M", "boot": boot, **spec})
        store = open_datastore(self.runtime)
        store.create_vm_dir(name)
        with Session(self.runtime.engine) as db:
            db.add(
                VM(
                    name=name,
                    uuid=str(validated.uuid),
                    owner=owner,
                    datastore="default",
                    spec=validated.to_data(),
                )
            )
            db.commit()
        self.specs[name] = validated
        return validated

    def vm_dir(self, name: str) -> Path:
        return open_datastore(self.runtime).vm_dir(name)

    def start(self, name: str) -> Any:
        """Start VM ``name``; retried when another test process took the VNC port the driver
        had just found free (other sessions on this machine start guests too)."""
        from bhype_core.drivers.base import HypervisorFailed

        for attempt in range(5):
            try:
                return self.driver.start(self.specs[name], self.vm_dir(name))
            except HypervisorFailed as exc:
                if "Address already in use" not in str(exc) or attempt == 4:
                    raise
                time.sleep(1)
        raise AssertionError("unreachable")

    def serial_log(self, name: str) -> str:
        try:
            return (self.vm_dir(name) / "serial.log").read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def set_owner(self, name: str, owner: str) -> None:
        with Session(self.runtime.engine) as db:
            row = find_vm(db, name)
            assert row is not None
            row.owner = owner
            db.add(row)
            db.commit()

    def close(self) -> None:
        self.server.stop()
        for name, spec in self.specs.items():
            try:
                if self.driver.status(spec, self.vm_dir(name)).active:
                    self.driver.force_stop(spec, self.vm_dir(name))
            except Exception:  # noqa: BLE001 - clean up the rest regardless
                pass
        self.runtime.engine.dispose()
        shutil.rmtree(self.root, ignore_errors=True)
