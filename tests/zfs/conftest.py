"""ZFS plugin fixtures: a runtime with only the zfs plugin, and the FreeBSD tool stand-ins."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import bhype_zfs.plugin
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings

from .helpers import guest_settings

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def zfs_runtime(tmp_path, plugin_manager, register_plugin):
    """``zfs_runtime(**zfs_section)`` → a runtime whose only plugin is ``zfs``."""
    register_plugin(bhype_zfs.plugin, "zfs")

    def build(**zfs):
        return build_runtime(make_settings(tmp_path / "data", zfs=zfs), plugin_manager)

    return build


@pytest.fixture
def fake_zfs_tools(tmp_path) -> dict[str, str]:
    """Executable copies of the zfs/zpool stand-ins with their samples (mode bits survive any checkout)."""
    target = tmp_path / "fake-tools"
    shutil.copytree(FIXTURES, target)
    for name in ("fake-zfs", "fake-zpool"):
        (target / name).chmod(0o755)
    return {"zfs_command": str(target / "fake-zfs"), "zpool_command": str(target / "fake-zpool")}


# ------------------------------------------------------------------------------------------
# Real OpenZFS in the session's test guest (bhype_core.testing.zfs_guest), reached over SSH.

DISKS_FOR_TANK = 2  # a mirror of the guest's first two disks; tests that build pools use fresh_zfs_host


@pytest.fixture(scope="module")
def tank(zfs_host):
    """Pool ``tank`` (mirror, mounted at /tank) with bHype's layout, for one test module.

    Tests in the module use their own VM and dataset names, so they never see each other's
    leftovers; the pool is destroyed (holds and all) when the module ends.
    """
    zfs_host.reset()
    run = zfs_host.shared_runner.run
    disks = [zfs_host.disk_path(serial) for serial in zfs_host.disks[:DISKS_FOR_TANK]]
    run(["zpool", "create", "-m", "/tank", "-O", "compression=lz4", "-O", "atime=off", "tank", "mirror", *disks])
    for dataset in ("tank/bhype", "tank/bhype/vms", "tank/bhype/isos", "tank/bhype/templates"):
        run(["zfs", "create", dataset])
    yield zfs_host
    run(["zpool", "destroy", "-f", "tank"], check=False)


@pytest.fixture
def guest_runtime(zfs_host, tmp_path, plugin_manager, register_plugin):
    """``guest_runtime(with_core_vms=True, data="data", **sections)`` → a migrated runtime
    (SQLite in ``tmp_path/<data>``: another ``data`` is another host's database) with the core's
    models, VM records and drivers plus the zfs plugin, running every host command on the guest."""
    from bhype_core.builtins import drivers, models, vm_tasks
    from bhype_core.db.migrate import upgrade

    register_plugin(models, "core_models")
    register_plugin(vm_tasks, "core_vms")
    register_plugin(drivers, "core_drivers")
    register_plugin(bhype_zfs.plugin, "zfs")
    built = []

    def build(with_core_vms: bool = True, data: str = "data", **sections):
        if not with_core_vms:
            plugin_manager.unregister(name="core_vms")
        runtime = build_runtime(guest_settings(tmp_path / data, zfs_host, **sections), plugin_manager)
        upgrade(runtime)
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        runtime.runner.close()
        runtime.engine.dispose()
