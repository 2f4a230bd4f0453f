"""``plugin_api.write_atomic``: a file replaced in one step, never through a planted symlink."""

from __future__ import annotations

import os
import stat

import pytest

from bhype_core.plugin_api import UnsafeFile, write_atomic


def test_it_replaces_the_content_with_the_mode_asked_for(tmp_path):
    target = tmp_path / "rsyncd.secrets"
    target.write_text("old\n")
    os.chmod(target, 0o644)
    old_umask = os.umask(0o000)
    try:
        write_atomic(target, b"alice:secret\n", mode=0o600)
    finally:
        os.umask(old_umask)
    assert target.read_text() == "alice:secret\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rsyncd.secrets"]  # no temporary left


def test_a_symlink_at_the_path_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("root's file\n")
    link = tmp_path / "rsyncd.conf"
    link.symlink_to(victim)
    write_atomic(link, b"[mod]\n")
    assert victim.read_text() == "root's file\n"
    assert not link.is_symlink() and link.read_text() == "[mod]\n"


def test_a_symlinked_directory_or_a_directory_target_is_refused(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "linked").symlink_to(real)
    with pytest.raises(UnsafeFile):
        write_atomic(tmp_path / "linked" / "file", b"x")
    assert list(real.iterdir()) == []
    (tmp_path / "adir").mkdir()
    with pytest.raises(UnsafeFile):
        write_atomic(tmp_path / "adir", b"x")
    assert (tmp_path / "adir").is_dir()
