"""``GET /api/v1/zfs/status`` through the real app, with only the zfs plugin loaded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_zfs.status import parse_zfs_version, parse_zpool_list

FIXTURES = Path(__file__).parent / "fixtures"


def status(runtime) -> dict:
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.get("/api/v1/zfs/status")
    assert response.status_code == 200, response.text
    return response.json()


def test_only_the_zfs_router_is_mounted(zfs_runtime):
    runtime = zfs_runtime()
    assert runtime.registry.routers.names() == ["zfs"]
    assert runtime.registry.routers.plugin_of("zfs") == "zfs"
    paths = set(create_app(runtime=runtime).openapi()["paths"])
    assert "/api/v1/zfs/status" in paths
    assert not any(path.startswith("/api/v1/backup") for path in paths)


def test_status_reports_version_and_pool_health(zfs_runtime, fake_zfs_tools):
    body = status(zfs_runtime(pool="tank", **fake_zfs_tools))
    assert body["tools"] == {
        "found": True,
        "version": "2.2.4-FreeBSD_g256659204",
        "kernel_module_version": "2.2.4-FreeBSD_g256659204",
        "error": None,
    }
    assert body["pool"] == "tank"
    assert body["pool_status"] == {
        "name": "tank",
        "size_bytes": 3985729650688,
        "allocated_bytes": 1245233561600,
        "free_bytes": 2740496089088,
        "capacity_percent": 31,
        "health": "ONLINE",
    }
    assert body["pool_error"] is None


def test_unknown_pool_is_reported_with_zpools_message(zfs_runtime, fake_zfs_tools):
    body = status(zfs_runtime(pool="nosuch", **fake_zfs_tools))
    assert body["tools"]["found"] is True
    assert body["pool_status"] is None
    assert body["pool_error"] == "cannot open 'nosuch': no such pool"


def test_no_pool_configured_queries_no_pool(zfs_runtime, fake_zfs_tools):
    body = status(zfs_runtime(**fake_zfs_tools))
    assert body["pool"] is None and body["pool_status"] is None and body["pool_error"] is None


def test_missing_zfs_is_reported_not_raised(zfs_runtime, tmp_path):
    missing = str(tmp_path / "no-such-zfs")
    body = status(zfs_runtime(pool="tank", zfs_command=missing))
    assert body["tools"]["found"] is False
    assert missing in body["tools"]["error"]
    # Without zfs there is no point asking zpool: no pool error on top of the missing tool.
    assert body["pool_status"] is None and body["pool_error"] is None


def test_failing_zfs_is_reported_with_its_status(zfs_runtime):
    body = status(zfs_runtime(zfs_command=shutil.which("false")))
    assert body["tools"] == {"found": False, "version": None, "kernel_module_version": None,
                             "error": "exited with status 1"}


def test_this_hosts_zfs(zfs_runtime):
    """The default ``zfs`` on this machine: found exactly when it is installed."""
    body = status(zfs_runtime())
    assert body["tools"]["found"] is (shutil.which("zfs") is not None)
    if body["tools"]["found"]:
        assert body["tools"]["version"]
    else:
        assert "zfs" in body["tools"]["error"]


def test_parse_zfs_version_linux_and_unloaded_module():
    assert parse_zfs_version("zfs-2.1.11-1\nzfs-kmod-2.1.11-1\n") == ("2.1.11-1", "2.1.11-1")
    # zfs(8) prints only the userland line when the kernel module is not loaded.
    assert parse_zfs_version((FIXTURES / "zfs_version_freebsd.txt").read_text().splitlines()[0]) == (
        "2.2.4-FreeBSD_g256659204",
        None,
    )


def test_parse_zpool_list_refuses_unexpected_columns():
    (pool,) = parse_zpool_list((FIXTURES / "zpool_list_tank.txt").read_text())
    assert pool.health == "ONLINE" and pool.capacity_percent == 31
    with pytest.raises(ValueError, match="6 TAB-separated fields"):
        parse_zpool_list("tank\t1\t2\n")
