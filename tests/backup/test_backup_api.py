"""``GET /api/v1/backup/status`` through the real app, with the host's real rsync."""

from __future__ import annotations

import re
import shutil

from fastapi.testclient import TestClient

from bhype_backup.status import parse_rsync_version
from bhype_core.api.app import create_app

# rsync 3.2.7 as packaged by FreeBSD ports (net/rsync), first two lines of `rsync --version`.
FREEBSD_RSYNC_VERSION = """rsync  version 3.2.7  protocol version 31
Copyright (C) 1996-2022 by Andrew Tridgell, Wayne Davison, and others.
"""


def status(runtime) -> dict:
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.get("/api/v1/backup/status")
    assert response.status_code == 200, response.text
    return response.json()


def test_only_the_backup_router_is_mounted(backup_runtime):
    runtime = backup_runtime()
    assert runtime.registry.routers.names() == ["backup"]
    paths = set(create_app(runtime=runtime).openapi()["paths"])
    assert "/api/v1/backup/status" in paths
    assert not any(path.startswith("/api/v1/zfs") for path in paths)


def test_status_with_the_hosts_rsync_and_targets(backup_runtime):
    body = status(backup_runtime(targets=[
        {"name": "nas", "destination": "backup@nas.example.net:/srv/bhype"},
        {"name": "usb", "destination": "/mnt/usb/bhype", "keep": 3},
    ]))
    rsync = body["rsync"]
    assert rsync["found"] is True, rsync  # rsync is a test prerequisite (tools/install-test-deps)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", rsync["version"])
    assert rsync["protocol"] >= 30  # rsync 3.x speaks protocol 30 and later
    assert body["targets_count"] == 2
    assert body["targets"] == [
        {"name": "nas", "kind": "ssh", "destination": "backup@nas.example.net:/srv/bhype", "keep": 7},
        {"name": "usb", "kind": "local", "destination": "/mnt/usb/bhype", "keep": 3},
    ]


def test_version_matches_what_rsync_itself_prints(backup_runtime):
    import subprocess

    first_line = subprocess.run(["rsync", "--version"], capture_output=True, text=True, check=True).stdout
    assert status(backup_runtime())["rsync"]["version"] in first_line.splitlines()[0]


def test_missing_rsync_is_reported(backup_runtime, tmp_path):
    missing = str(tmp_path / "no-rsync")
    body = status(backup_runtime(rsync_command=missing))
    assert body["rsync"]["found"] is False and missing in body["rsync"]["error"]
    assert body["targets_count"] == 0


def test_a_program_that_is_not_rsync_is_reported(backup_runtime):
    # GNU echo(1) answers --version too, with a line rsync would never print.
    body = status(backup_runtime(rsync_command=shutil.which("echo")))
    assert body["rsync"]["found"] is False
    assert body["rsync"]["error"].startswith("unrecognised rsync --version output: ")


def test_parse_rsync_version_sample():
    assert parse_rsync_version(FREEBSD_RSYNC_VERSION) == ("3.2.7", 31)
