"""The root worker never follows what the API user (or a VM owner) could plant (issue 11).

For each place the worker takes a file from: a symlink to a root-only file, a FIFO and a hard
link to a root-only file are planted, the real task (or the worker-side step) runs, and it
must fail saying what is wrong while the root-only file keeps its mode and content. Before the
fix, ``iso.import`` made the symlink's target world-readable (``os.replace`` + ``chmod``) and a
FIFO hung the worker.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest
from _netkit import run_queued, task_context
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.cloudinit import account_keys
from bhype_core.db.task_models import FAILED, SUCCEEDED
from bhype_core.iso_fetch import download
from bhype_core.isos import partial_path, uploads_dir
from bhype_core.safe_files import UnsafeFile, adopt, chmod_regular, open_regular, read_bytes
from bhype_core.tasks import store
from bhype_core.testing import act_as
from bhype_core.vm.services import open_datastore

SECRET = b"root-only secret\n"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGx0ZXN0a2V5Zm9ydGVzdHNvbmx5MDAwMDAwMDAwMDAw test@host"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A 0600 file standing for a root-only file such as /etc/shadow."""
    path = tmp_path / "secret"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def untouched(path: Path) -> bool:
    info = os.lstat(path)
    return stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and path.read_bytes() == SECRET


def plant(kind: str, where: Path, secret: Path) -> None:
    """Put a ``symlink`` to, a ``hardlink`` of ``secret``, or a ``fifo``, at ``where``."""
    where.unlink(missing_ok=True)
    if kind == "symlink":
        where.symlink_to(secret)
    elif kind == "hardlink":
        os.link(secret, where)
    else:
        os.mkfifo(where, 0o600)


@pytest.fixture
def client(network_runtime):
    app = create_app(runtime=network_runtime)
    with TestClient(app) as client:
        client.app_ref = app
        yield client


@pytest.mark.parametrize("kind", ["symlink", "fifo", "hardlink"])
def test_iso_import_refuses_a_planted_staged_file(client, network_runtime, secret, kind) -> None:
    act_as(client.app_ref, "alice", "operator")
    data = os.urandom(4096)
    answer = client.put("/api/v1/isos/boot.iso", params={"sha256": hashlib.sha256(data).hexdigest()}, content=data)
    assert answer.status_code == 202, answer.text
    (staged,) = uploads_dir(network_runtime).iterdir()
    plant(kind, staged, secret)  # the API user swaps its staged upload before the worker runs

    run_queued(network_runtime)
    task = store.get_task(network_runtime.engine, answer.json()["task_id"])
    assert task.state == FAILED
    expected = "hard links" if kind == "hardlink" else "is not a regular file"
    assert expected in task.error["message"] and str(staged) in task.error["message"]
    assert untouched(secret)
    library = open_datastore(network_runtime).iso_path("boot.iso").parent
    assert not library.exists() or sorted(os.listdir(library)) == []


def test_iso_import_still_moves_a_genuine_upload(client, network_runtime) -> None:
    act_as(client.app_ref, "alice", "operator")
    data = os.urandom(4096)
    answer = client.put("/api/v1/isos/boot.iso", content=data)
    assert answer.status_code == 202, answer.text  # once seen answering otherwise: say why
    run_queued(network_runtime)
    assert store.get_task(network_runtime.engine, answer.json()["task_id"]).state == SUCCEEDED
    iso = open_datastore(network_runtime).iso_path("boot.iso")
    info = os.lstat(iso)
    assert stat.S_IMODE(info.st_mode) == 0o644 and info.st_nlink == 1 and iso.read_bytes() == data
    assert list(uploads_dir(network_runtime).iterdir()) == []


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_iso_fetch_refuses_a_planted_partial_file(network_runtime, secret, kind) -> None:
    store_ = open_datastore(network_runtime)
    target = store_.iso_path("net.iso")
    target.parent.mkdir(parents=True, exist_ok=True)
    plant(kind, partial_path(target), secret)
    context = task_context(network_runtime, "iso.fetch")
    # The partial is opened before any connection is made: no server is needed to prove it.
    with pytest.raises(UnsafeFile, match="is not a regular file"):
        download(context, "http://192.0.2.1/net.iso", target, 1 << 20, 1, 1.0)
    assert untouched(secret)


@pytest.mark.parametrize("kind", ["symlink", "fifo", "hardlink"])
def test_authorized_keys_are_never_followed(tmp_path, secret, kind) -> None:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    plant(kind, home / ".ssh" / "authorized_keys", secret)
    if kind == "hardlink":  # a hard link is the same file: regular and root's, like sshd accepts
        assert account_keys("anyone", home=home) == []
    else:
        with pytest.raises(UnsafeFile, match=r"\.ssh/authorized_keys is not a regular file"):
            account_keys("anyone", home=home)
    assert untouched(secret)


def test_a_symlinked_ssh_directory_is_refused(tmp_path, secret) -> None:
    elsewhere = tmp_path / "root-ssh"
    elsewhere.mkdir()
    (elsewhere / "authorized_keys").write_text(KEY + "\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".ssh").symlink_to(elsewhere)
    with pytest.raises(UnsafeFile, match="is not a directory"):
        account_keys("anyone", home=home)
    (home / ".ssh").unlink()
    (home / ".ssh").mkdir()
    (home / ".ssh" / "authorized_keys").write_text(KEY + "\n")
    assert account_keys("anyone", home=home) == [KEY]


def test_vm_file_install_replaces_a_planted_symlink(network_runtime, secret, tmp_path) -> None:
    store_ = open_datastore(network_runtime)
    store_.create_vm_dir("web1")
    vm_dir = Path(store_.vm_dir("web1"))
    plant("symlink", vm_dir / "uefi-vars.fd", secret)
    plant("symlink", vm_dir / ".uefi-vars.fd.partial", secret)
    template = tmp_path / "template.fd"
    template.write_bytes(b"\0" * 4096)
    installed = store_.install_vm_file("web1", template, "uefi-vars.fd")
    assert not installed.is_symlink() and installed.read_bytes() == b"\0" * 4096
    assert untouched(secret)


def test_primitives_refuse_links_fifos_and_foreign_owners(tmp_path, secret) -> None:
    link, fifo = tmp_path / "link", tmp_path / "fifo"
    plant("symlink", link, secret)
    plant("fifo", fifo, secret)
    for path in (link, fifo):
        with pytest.raises(UnsafeFile, match="is not a regular file"):
            chmod_regular(path, 0o644)
        with pytest.raises(UnsafeFile):
            read_bytes(path, 100)
    with pytest.raises(UnsafeFile, match="belongs to uid"):
        read_bytes(secret, 100, owners=[os.getuid() + 1])
    with pytest.raises(UnsafeFile, match="longer than"):
        read_bytes(secret, 3)
    target_dir = tmp_path / "library"
    target_dir.mkdir()
    with pytest.raises(UnsafeFile, match="belongs to uid"):
        adopt(secret, target_dir / "x", mode=0o644, owners=[os.getuid() + 1])
    assert untouched(secret) and os.listdir(target_dir) == []


def test_a_refused_file_is_never_truncated(tmp_path, secret) -> None:
    # O_TRUNC is applied after the checks: a hard link of someone else's file stays whole.
    link = tmp_path / "link"
    plant("hardlink", link, secret)
    with pytest.raises(UnsafeFile, match="hard links"):
        open_regular(link, os.O_WRONLY | os.O_TRUNC, single_link=True)
    assert untouched(secret)
