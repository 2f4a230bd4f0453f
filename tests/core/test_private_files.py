"""Secrets at rest (issue 11): a fresh start makes the data directory 0700 and the embedded
database and queue (with their WAL side files) 0600 whatever the umask; looser existing files
are tightened with a log line; ``bhype doctor`` flags a loosened file and names the fix.
Before the fix both files were 0644 in a 0755 directory, readable by any local account."""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import bhype_core.builtins.doctor as core_doctor
import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.builtins.doctor_files import run_file_modes
from bhype_core.commands.doctor import doctor
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.private_files import ensure_private_sqlite
from bhype_core.runtime import build_runtime
from bhype_core.safe_files import UnsafeFile
from bhype_core.testing import make_settings
from bhype_core.testing.parts import missing


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common default umask (0022), under which SQLite alone makes 0644 files."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def start(data_dir: Path, **sections: dict):
    """What ``bhype serve``/``bhype worker`` do at start: the database (migrated) and the queue,
    with a message written to it."""
    pm = make_plugin_manager(load_entrypoints=False, plugins=[
        ("core_models", core_models), ("core_tasks", core_tasks), ("core_doctor", core_doctor),
    ])
    runtime = build_runtime(make_settings(data_dir, queue={"backend": "sqlite"}, **sections), pm)
    upgrade(runtime)
    runtime.queue.huey.storage.enqueue(b"message", 0)
    return runtime


def test_fresh_start_makes_everything_private(tmp_path, loose_umask) -> None:
    data = tmp_path / "data"
    runtime = start(data)
    try:
        with runtime.engine.connect():  # an open connection keeps -wal/-shm on disk
            names = sorted(p.name for p in data.iterdir() if "sqlite3" in p.name)
            assert {"bhype.sqlite3", "bhype.sqlite3-wal", "bhype.sqlite3-shm", "queue.sqlite3"} <= set(names)
            assert mode(data) == 0o700
            assert {name: mode(data / name) for name in names} == dict.fromkeys(names, 0o600)
    finally:
        runtime.engine.dispose()


def test_loose_files_are_tightened_at_start_with_a_log_line(tmp_path, loose_umask, caplog) -> None:
    data = tmp_path / "data"
    start(data).engine.dispose()
    data.chmod(0o755)
    for name in ("bhype.sqlite3", "queue.sqlite3"):
        (data / name).chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bhype.files"):
        start(data).engine.dispose()
    assert mode(data) == 0o700 and mode(data / "bhype.sqlite3") == 0o600 and mode(data / "queue.sqlite3") == 0o600
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"tightened {data} from 0755 to 0700" in m for m in messages)
    assert any(f"tightened {data / 'bhype.sqlite3'} from 0644 to 0600" in m for m in messages)


def test_doctor_flags_a_loosened_file_and_names_the_fix(tmp_path) -> None:
    data = tmp_path / "data"
    runtime = start(data)
    runtime.engine.dispose()
    text, status = doctor(runtime, as_json=True)
    (private,) = [c for c in json.loads(text)["checks"] if c["name"] == "private files"]
    assert private["ok"], private

    (data / "queue.sqlite3").chmod(0o644)
    text, status = doctor(runtime, as_json=True)
    (private,) = [c for c in json.loads(text)["checks"] if c["name"] == "private files"]
    assert status == 1 and not private["ok"]
    assert f"{data / 'queue.sqlite3'} is 0644 (wanted 0600)" in private["detail"]
    assert f"chmod 600 {data / 'queue.sqlite3'}" in private["fix"]


def test_a_symlinked_database_file_is_refused(tmp_path) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"x")
    secret.chmod(0o644)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bhype.sqlite3").symlink_to(secret)
    with pytest.raises(UnsafeFile, match="is not a regular file"):
        ensure_private_sqlite(tmp_path / "data" / "bhype.sqlite3")
    assert mode(secret) == 0o644


def test_doctor_flags_a_datastore_under_a_directory_the_api_user_owns(tmp_path) -> None:
    if os.geteuid() != 0:
        missing("root", "the check guards a root worker; chown needs root")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    settings = make_settings(data)
    (_, stores) = run_file_modes(settings)
    assert stores.name == "datastore directories" and stores.ok, stores

    os.chown(data, 4242424, 4242424)  # the data directory as production hands it to the API user
    (_, stores) = run_file_modes(settings)
    assert not stores.ok
    assert f"datastore default ({data / 'datastore'}): {data} is owned by uid 4242424" in stores.detail
    assert f"templates_dir ({data / 'templates'})" in stores.detail and "vm.datastores" in stores.fix


@pytest.fixture
def reachable_dir() -> Iterator[Path]:
    """A directory another account can pass through (pytest's own tmp_path is root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="bhype-pf-", dir="/tmp"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_account(uid: int, gid: int, action) -> int:
    """Run ``action()`` in a child process switched to ``uid``/``gid``; its exit status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 99
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            code = action()
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def test_shared_layout_lets_the_api_user_in_and_nobody_swap_roots_entries(reachable_dir, local_user) -> None:
    if os.geteuid() != 0:
        missing("root", "the shared layout is made by a root worker")
    api = local_user()
    data = reachable_dir / "data"
    runtime = start(data, auth={"api_user": api.name})
    runtime.engine.dispose()
    info = os.lstat(data)
    assert (info.st_uid, info.st_gid, mode(data)) == (0, api.gid, 0o1770)
    db = os.lstat(data / "bhype.sqlite3")
    assert (db.st_uid, mode(data / "bhype.sqlite3")) == (api.uid, 0o600)
    for name in ("run", "workers", "datastore", "templates"):
        assert os.lstat(data / name).st_uid == 0 and (data / name).is_dir() and not (data / name).is_symlink()

    def api_side() -> int:
        import sqlite3

        with sqlite3.connect(data / "bhype.sqlite3") as db:  # the API user opens and writes it
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("CREATE TABLE probe (x)")
        try:
            os.rename(data / "run", data / "elsewhere")  # swap root's entry for a symlink
        except PermissionError:
            return 0
        return 1

    assert as_account(api.uid, api.gid, api_side) == 0
    text, _ = doctor(runtime, as_json=True)
    (private,) = [c for c in json.loads(text)["checks"] if c["name"] == "private files"]
    assert private["ok"], private


def test_shared_layout_refuses_a_planted_root_entry(tmp_path, local_user) -> None:
    if os.geteuid() != 0:
        missing("root", "the shared layout is made by a root worker")
    api = local_user()
    data = tmp_path / "data"
    data.mkdir()
    (data / "run").symlink_to(tmp_path)
    with pytest.raises(UnsafeFile, match="run is not a directory owned by root"):
        start(data, auth={"api_user": api.name})
