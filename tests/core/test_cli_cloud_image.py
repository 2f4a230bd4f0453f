"""``bhype vm create --cloud-image --ssh-key``: key files and lines, and the errors a newcomer
meets before any request (the walkthrough in tests/e2e/test_first_vm_readme.py runs them for real)."""

from __future__ import annotations

import argparse

import pytest

from bhype_core.commands.vm import cloud_image_options, ssh_keys_from
from bhype_core.errors import ValidationErrors

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKeyKey me@laptop"


def test_ssh_keys_come_from_files_with_tilde_or_as_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "id_ed25519.pub").write_text(f"# a comment\n{KEY}\n\n")
    assert ssh_keys_from(["~/.ssh/id_ed25519.pub", KEY]) == [KEY, KEY]
    with pytest.raises(ValidationErrors) as caught:
        ssh_keys_from(["~/.ssh/missing.pub"])
    assert caught.value.errors[0].path == "--ssh-key"


class NoApi:
    def request(self, *args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("no request expected")


def test_cloud_image_needs_a_template_and_keys_alone_make_a_seed():
    with pytest.raises(ValidationErrors) as caught:
        cloud_image_options(NoApi(), argparse.Namespace(cloud_image=True, template=None, ssh_key=None), {})
    assert caught.value.errors[0].path == "--cloud-image"
    spec: dict = {"cloud_init": {"ssh_keys": ["x"]}}
    cloud_image_options(NoApi(), argparse.Namespace(cloud_image=False, template="debian", ssh_key=[KEY]), spec)
    assert spec == {"cloud_init": {"ssh_keys": ["x", KEY]}}
