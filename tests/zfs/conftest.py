"""ZFS plugin fixtures: a runtime with only the zfs plugin, and the FreeBSD tool stand-ins."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import bhype_zfs.plugin
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings

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
