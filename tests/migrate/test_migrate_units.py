"""The pure parts of a move: argument checks, the spec a copy gets, checksum comparison, the
rsync argv a move runs (through the core's shared builder)."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from bhype_core.errors import ValidationErrors
from bhype_migrate.checksums import checksum_tree, mismatches, regular_files
from bhype_migrate.plan import move_options, transfer_spec
from bhype_migrate.transfer import move_argv

SPEC = {"name": "web", "uuid": "0b7f7e2c-6f4e-4a55-9d59-0e8f2f1a0c11", "tags": ["prod"],
        "nics": [{"model": "virtio-net", "mac": "58:9c:fc:00:00:01", "switch": "lan"}],
        "graphics": {"vnc": True, "password": "secret12"}}


def test_a_move_keeps_identity_and_a_copy_gets_a_new_one() -> None:
    assert transfer_spec(SPEC, None) == SPEC
    copy = transfer_spec(SPEC, "web2")
    assert copy["name"] == "web2" and "uuid" not in copy
    assert copy["nics"][0]["mac"] is None and copy["nics"][0]["switch"] == "lan"
    assert copy["graphics"]["password"] is None and copy["tags"] == ["prod"]
    assert SPEC["nics"][0]["mac"] == "58:9c:fc:00:00:01"  # the source's spec is untouched


@pytest.mark.parametrize(("arguments", "path"), [
    ({"mode": "hot"}, "mode"),
    ({"transport": "scp"}, "transport"),
    ({"options": {"as": "web2"}}, "as"),  # a copy needs keep_source
    ({"keep_source": True, "options": {"as": "web"}}, "as"),
    ({"options": {"bogus": 1}}, "bogus"),
])
def test_bad_move_arguments_are_refused_with_their_path(arguments: dict, path: str) -> None:
    values = {"mode": "cold", "transport": "rsync", "keep_source": False, "start": False, "options": {}}
    values.update(arguments)
    with pytest.raises(ValidationErrors) as raised:
        move_options("web", "b", values["mode"], values["transport"], values["keep_source"], values["start"],
                     values["options"])
    assert [error.path for error in raised.value.errors] == [path]


def test_the_digest_skips_holes_and_zero_blocks_but_sees_every_byte(tmp_path: Path) -> None:
    from bhype_migrate.checksums import sha256_file

    sparse, dense = tmp_path / "sparse.img", tmp_path / "dense.img"
    with open(sparse, "wb") as handle:  # 64 MiB with two written spots, the rest a hole
        handle.truncate(64 * 2**20)
        handle.seek(5 * 2**20 + 100)
        handle.write(b"x" * 5000)
        handle.seek(40 * 2**20)
        handle.write(b"y")
    dense.write_bytes(sparse.read_bytes())  # the same bytes, zeros written out
    assert os.stat(sparse).st_blocks * 512 < 2**20 < os.stat(dense).st_blocks * 512
    assert sha256_file(sparse) == sha256_file(dense) and sha256_file(sparse).startswith("sparse-sha256:")
    with open(dense, "r+b") as handle:  # one byte changed inside a zero block
        handle.seek(60 * 2**20 + 7)
        handle.write(b"\x01")
    assert sha256_file(dense) != sha256_file(sparse)
    longer = tmp_path / "longer.img"
    longer.write_bytes(sparse.read_bytes() + bytes(10))  # a longer zero tail changes it too
    assert sha256_file(longer) != sha256_file(sparse)
    seen: list[int] = []
    sha256_file(sparse, seen.append)
    assert sum(seen) <= 2 * 2**20  # only the two data blocks were read


def test_checksums_find_missing_extra_and_changed_files(tmp_path: Path) -> None:
    (tmp_path / "disk0.img").write_bytes(b"a" * 1000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "nvram").write_bytes(b"n")
    (tmp_path / "link").symlink_to(tmp_path / "disk0.img")
    files = regular_files(tmp_path)
    assert files == ["disk0.img", "sub/nvram"]
    sums = checksum_tree(tmp_path, files)
    assert mismatches(sums, dict(sums)) == []
    changed = {**sums, "disk0.img": "0" * 64}
    del changed["sub/nvram"]
    changed["extra"] = "1" * 64
    assert mismatches(sums, changed) == ["sub/nvram: missing", "extra: unexpected file", "disk0.img: checksum differs"]


def test_the_move_argv_uses_the_pinned_key_and_the_shared_builder() -> None:
    from bhype_core.plugin_api import SshTransport

    peer = SimpleNamespace(transport=SshTransport(key_file="/d/migrate/id_ed25519", known_hosts="/d/migrate/peer-b.kh"),
                           remote=lambda path: f"root@10.0.0.2:{path}")
    argv = move_argv(peer, "/ds/vms/web", "/ds2/.bhype-incoming-x", delta=False)
    assert argv[0] == "rsync" and argv[-2:] == ["/ds/vms/web/", "root@10.0.0.2:/ds2/.bhype-incoming-x/"]
    assert "--sparse" in argv and "--mkpath" in argv and "--no-specials" in argv and "--no-whole-file" not in argv
    shell = argv[argv.index("-e") + 1]
    assert "StrictHostKeyChecking=yes" in shell and "UserKnownHostsFile=/d/migrate/peer-b.kh" in shell
    assert "--no-whole-file" in move_argv(peer, "/ds/vms/web", "/x/.bhype-incoming-x", delta=True)
