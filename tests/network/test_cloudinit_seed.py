"""cloud-init NoCloud seeds: the files' contents, the ISO read back, and a real guest kernel
(Linux isofs in the tiny guest) taking its hostname from the seed."""

from __future__ import annotations

import email
import io
import json
import os
from pathlib import Path

import pycdlib
import pytest

from bhype_core.cloudinit import (
    MERGE_TYPE,
    SEED_FILE,
    account_keys,
    hostname_for,
    prepare_seed,
    seed_files,
    write_seed,
)
from bhype_core.errors import ValidationErrors
from bhype_core.spec import validate_spec
from bhype_core.testing.guest_image import GuestImage
from bhype_core.testing.qemu_guest import GuestFiles, QemuGuest, qemu_argv, short_workdir

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHvPqH8wVbd3o0h3W7lG4pN2Uo1e9yqAqQp3f2c5e1Zx alice@laptop"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAm3o9m0yT4rYQ1a2b3c4d5e6f7g8h9i0j1k2l3m4n5o bob@desk"


def spec(**cloud_init):
    return validate_spec({"name": "Web_1.prod", "owner": "alice", "nics": [{"switch": "lan"}, {}],
                          "cloud_init": cloud_init})


def read_seed(path: Path) -> dict[str, bytes]:
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        assert iso.pvd.volume_identifier.rstrip(b" ") == b"cidata"
        out = {}
        for child in iso.list_children(rr_path="/"):
            if child.is_file():
                name = child.rock_ridge.name().decode()
                buffer = io.BytesIO()
                iso.get_file_from_iso_fp(buffer, rr_path=f"/{name}")
                out[name] = buffer.getvalue()
        return out
    finally:
        iso.close()


def test_generated_seed_has_hostname_instance_id_keys_and_dhcp_per_mac(tmp_path: Path) -> None:
    vm = spec(ssh_keys=[KEY])
    files = read_seed(write_seed(vm, tmp_path))
    assert sorted(files) == ["meta-data", "network-config", "user-data"]
    meta = files["meta-data"].decode()
    assert f'instance-id: "{vm.uuid}"' in meta and 'local-hostname: "web-1-prod"' in meta
    user = files["user-data"].decode()
    assert user.startswith("#cloud-config\n")
    config = json.loads(user.split("\n", 1)[1])
    assert config == {"hostname": "web-1-prod", "ssh_authorized_keys": [KEY]}
    network = json.loads(files["network-config"])
    assert network["version"] == 2
    assert [e["match"]["macaddress"] for e in network["ethernets"].values()] == [n.mac for n in vm.nics]
    assert oct((tmp_path / SEED_FILE).stat().st_mode & 0o777) == "0o600"


def test_own_user_data_is_kept_and_keys_are_merged_as_a_second_part() -> None:
    own = "#cloud-config\npackages: [nginx]\n"
    files = seed_files(spec(user_data=own), [OTHER_KEY])
    message = email.message_from_bytes(files["user-data"])
    assert message.get_content_type() == "multipart/mixed"
    parts = [part for part in message.walk() if not part.is_multipart()]
    assert parts[0].get_payload(decode=True).decode() == own
    assert parts[1]["Merge-Type"] == MERGE_TYPE
    ours = json.loads(parts[1].get_payload(decode=True).decode().split("\n", 1)[1])
    assert ours["ssh_authorized_keys"] == [OTHER_KEY]


def test_own_user_data_without_keys_is_passed_through_unchanged() -> None:
    own = "#!/bin/sh\necho hi\n"
    assert seed_files(spec(user_data=own))["user-data"] == own.encode()


def test_given_meta_data_and_network_config_win() -> None:
    vm = spec(meta_data={"local-hostname": "custom"}, network_config="version: 1\nconfig: []\n")
    files = seed_files(vm)
    assert hostname_for(vm) == "custom"
    assert b'local-hostname: "custom"' in files["meta-data"]
    assert files["network-config"] == b"version: 1\nconfig: []\n"


def test_bad_ssh_key_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationErrors) as caught:
        spec(ssh_keys=["not a key"])
    assert caught.value.errors[0].path == "cloud_init.ssh_keys"


def test_account_keys_read_authorized_keys_without_options_or_comments(tmp_path: Path) -> None:
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "authorized_keys").write_text(f"# mine\n{KEY}\nfrom=\"10.0.0.1\" {OTHER_KEY}\n\n")
    assert account_keys("anyone", home=tmp_path) == [KEY]
    assert account_keys(None) == []
    assert account_keys("no-such-user-bhype") == []


def test_prepare_seed_builds_for_cloud_init_vms_and_removes_stale_ones(tmp_path: Path) -> None:
    vm = spec()
    path = prepare_seed(vm, tmp_path)
    assert path == str(tmp_path / SEED_FILE) and os.path.isfile(path)
    plain = validate_spec({"name": "plain"})
    assert prepare_seed(plain, tmp_path) is None
    assert not (tmp_path / SEED_FILE).exists()


@pytest.mark.guest
@pytest.mark.slow
def test_tiny_guest_takes_its_hostname_from_the_seed(tiny_guest: GuestImage, tmp_path: Path) -> None:
    vm = validate_spec({"name": "seeded", "cloud_init": {"meta_data": {"local-hostname": "from-the-seed"}}})
    seed = write_seed(vm, tmp_path)
    with short_workdir() as workdir:
        files = GuestFiles(workdir / "g")
        # The guest's kernel mounts the seed with its own isofs driver (PIIX IDE CD, sr_mod).
        drive = ["-drive", f"file={seed},media=cdrom,if=ide,readonly=on,format=raw"]
        argv = qemu_argv(files, tiny_guest.kernel, tiny_guest.initrd,
                         tiny_guest.append("bhype.hostname=from-the-cmdline"), extra=drive)
        with QemuGuest.start(files, argv) as guest:
            match = guest.wait_for_serial(r"BHYPE-GUEST-READY hostname=(\S+)", timeout=180)
            assert match.group(1) == "from-the-seed"
            # Type only once the serial shell is there: input sent before it reads is lost.
            guest.wait_for_serial(r"# ", timeout=60, start=match.end())
            guest.type_until("ls /run/cidata; cat /run/cidata/user-data\n", r"network-config", timeout=90)
            guest.wait_for_serial(r'"hostname": "from-the-seed"', timeout=60, start=match.end())
