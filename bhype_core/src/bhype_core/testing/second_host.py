"""Several bHype hosts on one machine for tests: each in its own network namespace with its own
data directory, SQLite database and queue, API process, worker process and (optionally) a real
sshd, all joined by veth pairs to a bridge in a "lan" namespace (so a link can be cut per host).

Nothing touches the root namespace's links: the test process reaches a host's API from a
thread that entered the host's namespace (setns(2) applies to the calling thread only).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bhype_core.commands.vm_client import VmApi
from bhype_core.testing.netns import in_ns, veth_into
from bhype_core.testing.parts import missing
from bhype_core.testing.queue import READY_LINE

T = TypeVar("T")
CLONE_NEWNET = 0x40000000  # setns(2)
API_PORT = 8080
SSH_PORT = 22
START_TIMEOUT = 120.0


def in_netns(netns: str, call: Callable[[], T]) -> T:
    """Run ``call()`` in a new thread that entered network namespace ``netns`` first (sockets it
    opens live there); returns its result or raises its error."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
        finally:
            os.close(fd)
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class NetnsApi(VmApi):
    """:class:`VmApi` whose requests are made from inside a host's network namespace."""

    netns: str = ""

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        return in_netns(self.netns, lambda: VmApi.request(self, method, path, body, **query))


def netns_api(netns: str, url: str, token: str | None) -> NetnsApi:
    """An API client for ``url`` reached from inside ``netns``."""
    api = NetnsApi(url, token)
    api.netns = netns
    return api


@dataclass
class BhypeHost:
    """One bHype host of a test: its namespace, address, files, processes and admin token."""

    name: str
    netns: str
    address: str
    root: Path
    raw_config: dict[str, dict[str, Any]]
    env: dict[str, str] = field(default_factory=dict)
    admin_token: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "bhype.toml"

    @property
    def url(self) -> str:
        return f"http://{self.address}:{API_PORT}"

    @property
    def authorized_keys(self) -> Path:
        """The test sshd's ``AuthorizedKeysFile`` (empty at first: a peer adds its key)."""
        return self.root / "sshd" / "authorized_keys"

    def api(self, token: str | None = None) -> NetnsApi:
        """This host's API as its admin (or with ``token``), from inside its namespace."""
        return netns_api(self.netns, self.url, token or self.admin_token)

    def log(self, what: str) -> str:
        """What process ``what`` (``api``, ``worker``, ``sshd``) wrote."""
        path = self.root / f"{what}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, what: str, argv: list[str]) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BHYPE_")}
        env.update(PYTHONUNBUFFERED="1", **self.env)
        with open(self.root / f"{what}.log", "ab") as log_file:
            process = subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], stdin=subprocess.DEVNULL,
                                       stdout=log_file, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.processes[what] = process
        return process

    def _wait_log(self, what: str, text: str, seen: int = 0, timeout: float = START_TIMEOUT) -> None:
        """Wait until ``text`` is in process ``what``'s log more than ``seen`` times (a
        restarted process appends to the same log)."""
        deadline = time.monotonic() + timeout
        process = self.processes[what]
        while self.log(what).count(text) <= seen:
            if process.poll() is not None:
                raise AssertionError(f"{self.name} {what} exited ({process.returncode}):\n{self.log(what)[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} {what}: no {text!r} in {timeout} s:\n{self.log(what)[-4000:]}")
            time.sleep(0.1)

    def start_worker(self, env: dict[str, str] | None = None) -> None:
        """Start this host's worker process (waits until it consumes)."""
        marker = self.log("worker").count(READY_LINE)
        saved = dict(self.env)
        self.env.update(env or {})
        try:
            self._spawn("worker", [sys.executable, "-m", "bhype_core.tasks.worker", "--config", str(self.config)])
        finally:
            self.env = saved
        deadline = time.monotonic() + START_TIMEOUT
        while self.log("worker").count(READY_LINE) <= marker:
            assert self.processes["worker"].poll() is None, f"{self.name} worker exited:\n{self.log('worker')[-4000:]}"
            assert time.monotonic() < deadline, f"{self.name} worker not ready:\n{self.log('worker')[-4000:]}"
            time.sleep(0.1)

    def start_api(self) -> None:
        """Start ``bhype serve`` on ``address:8080`` in the namespace (waits until it answers)."""
        bhype = str(Path(sys.executable).with_name("bhype"))
        seen = self.log("api").count("Application startup complete")
        self._spawn("api", [bhype, "--config", str(self.config), "serve", "--host", self.address,
                            "--port", str(API_PORT)])
        self._wait_log("api", "Application startup complete", seen)

    def start_sshd(self) -> None:
        """A real sshd on port 22 of this host's address (root, key auth only)."""
        from bhype_core.testing.sshd import _write_config

        directory = self.root / "sshd"
        directory.mkdir(parents=True, exist_ok=True)
        host_key = directory / "ssh_host_ed25519_key"
        if not host_key.exists():  # a restarted sshd keeps its host key (peers pinned it)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True)
        self.authorized_keys.touch()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        config = _write_config(directory, self.address, SSH_PORT, "root", host_key, self.authorized_keys,
                               f"{self.netns}-sshd")
        listening = f"Server listening on {self.address} port {SSH_PORT}"
        seen = self.log("sshd").count(listening)
        self._spawn("sshd", ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)])
        self._wait_log("sshd", listening, seen)

    def stop(self, what: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Stop process ``what`` (by its pid) with ``sig``; SIGKILL after ``timeout``."""
        process = self.processes.get(what)
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(sig)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout)

    def kill(self, what: str) -> None:
        """``kill -9`` process ``what``: no chance to clean up. For ``sshd`` its sessions die
        too (each calls setsid(), so they are found by parent and by their environment)."""
        process = self.processes.get(what)
        extra: list[int] = []
        if what == "sshd" and process is not None:
            from bhype_core.testing.sshd import _descendants, _marked

            extra = _descendants(process.pid) + _marked(f"{self.netns}-sshd")
        self.stop(what, signal.SIGKILL)
        for pid in extra:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def runtime(self) -> Any:
        """A runtime over this host's settings (for reading its database in assertions)."""
        from bhype_core.config import load_settings
        from bhype_core.runtime import build_runtime

        return build_runtime(load_settings(self.config))


@dataclass
class Lan:
    """The bridge namespace joining the hosts; :meth:`cut`/:meth:`mend` take a host's link down/up."""

    netns: str
    hosts: list[BhypeHost] = field(default_factory=list)

    def port_of(self, host: BhypeHost) -> str:
        return f"l{self.hosts.index(host)}"

    def cut(self, host: BhypeHost) -> None:
        """Take ``host``'s link down (the cable pulled)."""
        in_ns(self.netns, "ip", "link", "set", self.port_of(host), "down")

    def mend(self, host: BhypeHost) -> None:
        """Bring ``host``'s link up again."""
        in_ns(self.netns, "ip", "link", "set", self.port_of(host), "up")


def host_config(root: Path, sections: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A host's raw configuration: everything under ``root``, SQLite database and queue, a
    separate worker process; ``sections`` override (``auth`` names the role groups)."""
    raw: dict[str, dict[str, Any]] = {
        "core": {"data_dir": str(root / "data")},
        "queue": {"backend": "sqlite", "in_process_worker": False},
        "tasks": {"poll_interval": 0.2},
        # No privileged auth daemon per host: the (root) API checks accounts itself.
        "auth": {"backend": "in-process"},
        "vm": {"datastores": {"default": {"path": str(root / "ds")}}},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return raw


def toml_text(raw: dict[str, Any], prefix: str = "") -> str:
    """``raw`` (nested tables of strings, numbers, booleans, lists) as TOML; a JSON scalar or
    array is also a valid TOML value."""
    import json

    lines, tables = [], []
    for key, value in raw.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    text = (f"[{prefix}]\n" if prefix and lines else "") + "".join(f"{line}\n" for line in lines)
    for key, value in tables:
        text += "\n" + toml_text(value, f"{prefix}.{key}" if prefix else key)
    return text


@contextmanager
def host_lan() -> Iterator[Callable[..., BhypeHost]]:
    """``with host_lan() as create:``, then ``create(name, sshd=False, datastore_size=None,
    **sections) -> BhypeHost``: a bHype host (``datastore_size``: its datastore on a tmpfs of
    that size) in its own namespace (address ``10.77.0.<n>``), migrated, with an admin token,
    its API and worker running (and sshd when asked). All hosts share one lan bridge;
    everything (processes, namespaces, mounts, the kit-made admin account) is removed on exit.
    ``create.lan`` cuts and mends links; ``create.admin`` is the admin account's name. Needs
    root and iproute2 (usable outside pytest: benchmarks)."""
    from bhype_core.testing.accounts import Roles
    from bhype_core.testing.users import LocalUsers

    run_id = secrets.token_hex(3)
    namespaces: list[str] = []
    mounts: list[Path] = []

    def netns(tag: str) -> str:
        name = f"bht-{run_id}-{tag}"
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        namespaces.append(name)
        in_ns(name, "ip", "link", "set", "lo", "up")
        return name

    with LocalUsers() as users:
        roles = Roles(users, users.group(), users.group())
        admin = roles.admin().name
        lan = Lan(netns("lan"))
        in_ns(lan.netns, "ip", "link", "add", "br0", "type", "bridge")
        in_ns(lan.netns, "ip", "link", "set", "br0", "up")

        def create(name: str, *, sshd: bool = False, datastore_size: str | None = None,
                   **sections: dict[str, Any]) -> BhypeHost:
            number = len(lan.hosts) + 1
            short = Path(f"/tmp/bh-{os.getpid()}-{number}-{name}")  # VM sockets need short paths (unix(7))
            short.mkdir(exist_ok=True)
            sections = {**sections, "auth": {"backend": "in-process", **roles.auth_section(),
                                             **sections.get("auth", {})}}
            host = BhypeHost(name, netns(name), f"10.77.0.{number}", short, host_config(short, sections))
            lan.hosts.append(host)
            port = lan.port_of(host)
            veth_into(lan.netns, port, host.netns, f"{host.address}/24")
            in_ns(lan.netns, "ip", "link", "set", port, "master", "br0")
            host.config.write_text(toml_text(host.raw_config))
            if datastore_size:  # a small file system to fill; mounted before the processes start
                # (``ip netns exec`` gives each process a copy of the mount table as it is then).
                (short / "ds").mkdir()
                subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={datastore_size}", "tmpfs", str(short / "ds")],
                               check=True)
                mounts.append(short / "ds")
            _migrate_and_token(host, admin)
            if sshd:
                host.start_sshd()
            host.start_api()
            host.start_worker()
            return host

        create.lan = lan  # type: ignore[attr-defined]
        create.admin = admin  # type: ignore[attr-defined]
        try:
            yield create
        finally:
            for host in reversed(lan.hosts):
                for what in ("worker", "api", "sshd"):
                    if what == "sshd":
                        host.kill("sshd")
                    else:
                        host.stop(what, timeout=20)
            for host in lan.hosts:  # VMs started there outlive the worker, as on a real host
                kill_processes_under(host.root)
            for mount in mounts:
                subprocess.run(["umount", "-l", str(mount)], check=False)
            for host in lan.hosts:
                shutil.rmtree(host.root, ignore_errors=True)
            for name in reversed(namespaces):
                subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


def kill_processes_under(root: Path) -> list[int]:
    """SIGKILL every process whose command line names a path under ``root`` (a test host's VM
    supervisors and hypervisors, which outlive its worker on purpose); returns their pids."""
    needle = os.fsencode(f"{root}/")
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            command = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in command:
            pids.append(int(entry))
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


@pytest.fixture
def bhype_hosts() -> Iterator[Callable[..., BhypeHost]]:
    """:func:`host_lan` for a test: ``bhype_hosts(name, sshd=False, datastore_size=None,
    **sections)``; fails without root or iproute2, unless the run says ``--without netns``."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        missing("netns", "several bHype hosts need root and iproute2 (network namespaces)")
    with host_lan() as create:
        yield create


def _migrate_and_token(host: BhypeHost, admin: str) -> None:
    """Migrate the host's database and make its admin token (as ``bhype`` would)."""
    from bhype_core.api.tokens import TokenStore
    from bhype_core.db.migrate import upgrade

    runtime = host.runtime()
    upgrade(runtime)
    host.admin_token = TokenStore(runtime.engine).create(admin, "admin", "test").secret
    runtime.engine.dispose()
