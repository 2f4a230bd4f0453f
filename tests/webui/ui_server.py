"""Test helper: a real ``bhype serve`` process (embedded SQLite queue with its in-process worker,
QEMU driver under TCG, PAM in-process as root) on a free loopback port, configured in a
temporary directory with two admin templates: the tiny test guest, and one whose kernel is
missing (its VMs fail to start, for the failure popup)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bhype_core.testing.ports import free_port

MISSING_KERNEL = "/nonexistent/bhype-test/vmlinuz-missing"


class BhypeServer:
    """``bhype serve`` as a child of the test; :meth:`stop` ends it and every VM it left running."""

    def __init__(self, guest: Any, *, pam_service: str, admin_group: str, operator_group: str) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bhw-", dir="/tmp"))  # unix socket paths stay short
        templates = self.root / "templates"
        templates.mkdir()
        (templates / "tiny.toml").write_text(
            guest.template_toml())
        (templates / "broken.toml").write_text(
            guest.template_toml("Kernel missing (fails to start)", kernel=MISSING_KERNEL))
        self.config = self.root / "bhype.toml"
        self.config.write_text(f"""\
[core]
data_dir = "{self.root / 'data'}"
driver = "qemu"

[queue]
backend = "sqlite"

[tasks]
poll_interval = 0.2

[qemu]
accel = "tcg"

[vm]
templates_dir = "{templates}"
stop_timeout = 90

[vm.datastores.default]
path = "{self.root / 'ds'}"

[auth]
backend = "in-process"
pam_service = "{pam_service}"
admin_groups = ["{admin_group}"]
operator_groups = ["{operator_group}"]
failure_min_seconds = 0.2

[webui]
stream_poll_seconds = 0.3
""")
        self.log_path = self.root / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> BhypeServer:
        """Start ``bhype serve`` and wait until it answers ``/api/v1/health``."""
        bhype = Path(sys.executable).with_name("bhype")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BHYPE_")}
        env["PYTHONUNBUFFERED"] = "1"
        for _ in range(3):  # another process may take the free port before we bind it
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    [str(bhype), "--config", str(self.config), "serve", "--host", "127.0.0.1",
                     "--port", str(self.port)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                )
            deadline = time.monotonic() + timeout
            while self.process.poll() is None and time.monotonic() < deadline:
                if self._healthy():
                    return self
                time.sleep(0.2)
            if self.process.poll() is None:
                break
            if "address already in use" not in self.log().lower():
                break
        self.stop()
        raise AssertionError(f"bhype serve did not come up:\n{self.log()[-4000:]}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def serial_log(self, vm: str) -> str:
        """What VM ``vm``'s guest wrote on its serial port so far."""
        path = self.root / "ds" / "vms" / vm / "serial.log"
        return path.read_bytes().decode(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the server gracefully (SIGINT: its worker too), then power off any VM left."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._power_off_vms()

    def _power_off_vms(self) -> None:
        from sqlmodel import Session, select

        from bhype_core.config import load_settings
        from bhype_core.drivers.select import select_driver
        from bhype_core.runtime import build_runtime
        from bhype_core.spec import validate_spec
        from bhype_core.vm.models import VM
        from bhype_core.vm.services import open_datastore

        if not (self.root / "data").exists():
            return
        runtime = build_runtime(load_settings(self.config, environ={}))
        try:
            driver = select_driver(runtime)
            with Session(runtime.engine) as db:
                rows = list(db.exec(select(VM)).all())
            for row in rows:
                try:
                    driver.force_stop(validate_spec(row.spec), open_datastore(runtime).vm_dir(row.name))
                except Exception:  # noqa: BLE001 - best effort: stop the rest regardless
                    pass
        finally:
            if "engine" in runtime.__dict__:
                runtime.engine.dispose()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

