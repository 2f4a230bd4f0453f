"""A host for backup tests: every installed plugin, a migrated SQLite database, the embedded
queue run in the test's thread, a directory datastore, and a real admin account (the worker
reads a task owner's role from their groups)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bhype_core.api.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.testing import make_settings
from bhype_core.testing.roles import role_account
from bhype_core.testing.tasks import run_queued

MiB = 2**20


@dataclass
class World:
    runtime: Any
    root: Path
    admin: Any

    def run(self, kind: str, arguments: dict[str, Any], user: str | None = None) -> Any:
        """Submit ``kind`` as the admin (or ``user``) and run the queue until it ends."""
        name = user or self.admin.name
        role = "admin" if name == self.admin.name else "operator"
        task = service.submit(self.runtime, Principal(name, role), kind, arguments)
        run_queued(self.runtime)
        return store.get_task(self.runtime.engine, task.id)

    def ok(self, kind: str, arguments: dict[str, Any], user: str | None = None) -> Any:
        """Like :meth:`run`, asserting success; returns the task's result."""
        task = self.run(kind, arguments, user)
        assert task.state == "succeeded", (task.state, task.error, self.log(task))
        return task.result

    def log(self, task: Any) -> list[str]:
        from bhype_core.plugin_api import show_task

        shown = show_task(self.runtime, Principal(self.admin.name, "admin"), task.id)
        return [line["message"] for line in (shown.get("log") or [])] if isinstance(shown, dict) else []

    def create_vm(self, name: str, disks: list[str] = ("8M",)) -> Path:
        """A stopped VM with disks written with a recognisable pattern; returns its directory."""
        spec = {"disks": [{"size": size} for size in disks], "nics": [{}], "memory": "64M"}
        result = self.ok("vm.create", {"name": name, "overrides": spec})
        for index, _ in enumerate(disks):
            write_pattern(self.disk(name, index), index + 1)
        return Path(result["vm_dir"])

    def disk(self, name: str, index: int = 0) -> Path:
        return self.root / "ds" / "vms" / name / f"disk{index}.img"


def write_pattern(path: Path, seed: int, offset: int = 0, length: int = 3 * MiB) -> None:
    """Write ``length`` pseudo-random bytes (seeded) at ``offset``, leaving the rest sparse."""
    import random

    data = random.Random(seed).randbytes(length)
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)
    os.utime(path, (os.path.getmtime(path) + 2, os.path.getmtime(path) + 2))


def make_world(tmp_path: Path, local_user: Any, **sections: Any) -> World:
    vm = {"datastores": {"default": {"path": str(tmp_path / "ds")}}, **sections.pop("vm", {})}
    settings = make_settings(tmp_path / "data", queue={"backend": "sqlite"}, qemu={"accel": "tcg"}, vm=vm,
                             **sections)
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=True))
    assert not runtime.pm.blocked, runtime.pm.blocked
    upgrade(runtime)
    admin = role_account(local_user, runtime, "admin")
    return World(runtime, tmp_path, admin)


def close_world(world: World) -> None:
    if "queue" in world.runtime.__dict__:
        world.runtime.queue.scheduler.lease.release()
    world.runtime.engine.dispose()
