"""``bhype vm create --cloud-image --ssh-key``, ``bhype image list`` and ``bhype template info``
against a real uvicorn server and worker (issue 14): the template's image, once in the library,
is written onto the first disk and the keys land in the VM's cloud-init section."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from bhype_core import cli
from bhype_core.builtins import isos as core_isos
from bhype_core.builtins import network as core_network
from bhype_core.testing.api_server import served_cli
from bhype_core.vm.services import open_datastore

DEBIAN = "debian-13-genericcloud-amd64.qcow2"
PATTERN = bytes(range(256)) * 4096  # 1 MiB
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKey me@laptop"


@pytest.fixture
def server(make_vm_runtime, short_dir, monkeypatch) -> Iterator[dict]:
    runtime = make_vm_runtime(("core_network", core_network), ("core_isos", core_isos), queue={"backend": "sqlite"},
                              tasks={"poll_interval": 0.2})
    with served_cli(runtime, short_dir, monkeypatch, (("alice", "operator"),), as_user="alice") as server:
        yield server


def bhype(server, capsys, *args: str) -> tuple[int, str, str]:
    sys.stdin = io.StringIO("")
    try:
        status = cli.main(["--config", str(server["config"]), *args])
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return status, out, err


def test_create_from_the_cloud_image_with_a_key(server, capsys, tmp_path):
    status, out, _ = bhype(server, capsys, "template", "info", "debian")
    assert status == 0 and f"cloud image: {DEBIAN} from https://cloud.debian.org/" in out
    status, out, _ = bhype(server, capsys, "image", "list")
    assert any(line.split() == ["debian", DEBIAN, "no", "debian"] for line in out.splitlines())

    status, _, err = bhype(server, capsys, "vm", "create", "c1", "-t", "debian", "--cloud-image", "--wait")
    assert status != 0 and "run `bhype image fetch debian` first" in err

    target = open_datastore(server["runtime"]).iso_path(DEBIAN)
    target.parent.mkdir(parents=True, exist_ok=True)
    raw = tmp_path / "x.raw"
    raw.write_bytes(PATTERN)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(target)], check=True)
    key_file = tmp_path / "id.pub"
    key_file.write_text(KEY + "\n")
    status, out, err = bhype(server, capsys, "vm", "create", "c1", "-t", "debian", "--cloud-image", "--memory", "256M",
                             "--disk", "8M", "--ssh-key", str(key_file), "--wait")
    assert status == 0, err
    status, out, _ = bhype(server, capsys, "vm", "info", "c1", "--json")
    vm = json.loads(out)
    assert vm["spec"]["cloud_init"]["ssh_keys"] == [KEY]
    disk = open_datastore(server["runtime"]).vm_dir("c1") / "disk0.img"
    with open(disk, "rb") as handle:
        assert handle.read(len(PATTERN)) == PATTERN
    status, out, _ = bhype(server, capsys, "image", "fetch", "debian")
    assert status == 0 and "already in the library" in out
