"""Two bHype hosts whose ZFS datastores are two pools of the session's one OpenZFS guest.

Each host is real on this machine: its own data directory, SQLite database and queue, its own
``bhype serve`` (API on a free port of 127.0.0.1) and worker process, the same accounts
(admins) on both, its own admin token. What they share is the ZFS guest: each host's
``[runner]`` drives it over SSH (as a remote datastore host is driven), host ``a`` keeps its
VMs in pool ``tank`` (``tank/bhype``), host ``b`` in pool ``bpool`` (``bpool/bhype``, the
guest's second disk). Host ``b``'s SSH for a move's data path is the guest's own dropbear
(``127.0.0.1:<forwarded port>``): ``zfs send`` runs in the guest through a's runner, its
stream comes out on this machine and goes into ``ssh -i <a's key> … zfs receive`` with the
host key a pinned at ``peer add`` — the same commands as between two real hosts, the two ends
being one machine.

Unlike :mod:`bhype_core.testing.second_host` the hosts live in this machine's network
namespace: the guest's SSH port is forwarded to 127.0.0.1 here, which another namespace
cannot reach. Nothing here cuts links (the rsync fault tests do that).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bhype_core.commands.vm_client import VmApi
from bhype_core.testing.ports import free_port
from bhype_core.testing.second_host import BhypeHost, host_config, toml_text

POOLS = {"a": "tank", "b": "bpool"}


@dataclass
class LocalHost(BhypeHost):
    """A :class:`BhypeHost` in this machine's network namespace (API on ``127.0.0.1:port``)."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, token: str | None = None) -> VmApi:  # type: ignore[override]
        return VmApi(self.url, token or self.admin_token)

    def _spawn(self, what: str, argv: list[str]) -> Any:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BHYPE_")}
        env.update(PYTHONUNBUFFERED="1", **self.env)
        with open(self.root / f"{what}.log", "ab") as log_file:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                                       env=env, start_new_session=True)
        self.processes[what] = process
        return process

    def start_api(self) -> None:
        bhype = str(Path(sys.executable).with_name("bhype"))
        seen = self.log("api").count("Application startup complete")
        self._spawn("api", [bhype, "--config", str(self.config), "serve", "--host", "127.0.0.1",
                            "--port", str(self.port)])
        self._wait_log("api", "Application startup complete", seen)


def guest_sections(zfs_host: Any, pool: str, control_dir: Path) -> dict[str, dict[str, Any]]:
    """A host's settings: commands on the guest, its ZFS datastore ``<pool>/bhype``; only the
    core's built-ins, zfs and migrate.

    The guest's dropbear drops connections beyond a few unauthenticated ones at once (and a
    handshake is slow under TCG), so every process of both hosts shares one SSH master
    connection to it (``ControlPath`` in ``control_dir``: ssh(1) takes the first value of an
    option, and ``ssh_options`` come before the runner's own). Only how commands reach the
    guest is shared; the data path (``ssh -i <a's key> … zfs receive``) opens its own
    connections, as between two real hosts."""
    import importlib.metadata as metadata

    keep = {"zfs", "migrate"}
    disabled = sorted({ep.name for ep in metadata.entry_points(group="bhype")
                       if not ep.name.startswith("core_") and ep.name not in keep})
    return {
        "core": {"platform": "linux", "disabled_plugins": disabled},
        "runner": {"target": zfs_host.target, "ssh_identity": str(zfs_host.identity),
                   "ssh_options": [*zfs_host.options, f"ControlPath={control_dir}/%C"], "default_timeout": 300},
        "zfs": {"pool": pool, "platform": "linux"},
        "vm": {"datastores": {"zfs": {"backend": "zfs", "dataset": f"{pool}/bhype"}}, "default_datastore": "zfs"},
        "migrate": {"peer_task_timeout": 600},
    }


def make_pools(zfs_host: Any) -> None:
    """Blank disks, then ``tank`` (disk 0) and ``bpool`` (disk 1), each with bHype's layout."""
    zfs_host.reset()
    run = zfs_host.shared_runner.run
    for index, pool in enumerate(POOLS.values()):
        run(["zpool", "create", "-f", "-m", f"/{pool}", "-O", "compression=lz4", pool,
             zfs_host.disk_path(zfs_host.disks[index])])
        for dataset in ("bhype", "bhype/vms", "bhype/isos", "bhype/templates"):
            run(["zfs", "create", f"{pool}/{dataset}"])


def _migrate_and_token(host: BhypeHost, admin: str) -> None:
    from bhype_core.api.tokens import TokenStore
    from bhype_core.db.migrate import upgrade

    runtime = host.runtime()
    upgrade(runtime)
    host.admin_token = TokenStore(runtime.engine).create(admin, "admin", "test").secret
    runtime.runner.close()
    runtime.engine.dispose()


@contextmanager
def zfs_hosts(zfs_host: Any) -> Iterator[Callable[[str], LocalHost]]:
    """``create(name)`` → host ``a`` or ``b`` (see the module docstring), API and worker up;
    everything (processes, files, accounts) is removed on exit."""
    from bhype_core.testing.accounts import Roles
    from bhype_core.testing.users import LocalUsers

    hosts: list[LocalHost] = []
    control_dir = Path(tempfile.mkdtemp(prefix="bhz-ssh-"))  # 0700: whoever reaches the socket runs commands
    with LocalUsers() as users:
        roles = Roles(users, users.group(), users.group())
        admin = roles.admin().name

        def create(name: str) -> LocalHost:
            root = Path(f"/tmp/bhz-{os.getpid()}-{name}")
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir()
            sections = guest_sections(zfs_host, POOLS[name], control_dir)
            sections["auth"] = {"backend": "in-process", **roles.auth_section()}
            host = LocalHost(name, "", "127.0.0.1", root, host_config(root, sections), port=free_port())
            host.config.write_text(toml_text(host.raw_config))
            hosts.append(host)
            _migrate_and_token(host, admin)
            host.start_api()
            host.start_worker()
            return host

        create.admin = admin  # type: ignore[attr-defined]
        try:
            yield create
        finally:
            for host in reversed(hosts):
                for what in ("worker", "api"):
                    host.stop(what, timeout=20)
            for host in hosts:
                shutil.rmtree(host.root, ignore_errors=True)
            for socket in control_dir.iterdir():  # the shared master (ControlPersist) ends
                subprocess.run(["ssh", "-o", f"ControlPath={socket}", "-O", "exit", "x"], check=False,
                               capture_output=True)
            shutil.rmtree(control_dir, ignore_errors=True)


def authorize(zfs_host: Any, public_key: str) -> None:
    """Let ``public_key`` (a host's migrate key) log in to the guest's dropbear as root."""
    line = public_key.strip() + "\n"
    zfs_host.shared_runner.run(["sh", "-c", "cat >> /root/.ssh/authorized_keys"], input=line.encode())
