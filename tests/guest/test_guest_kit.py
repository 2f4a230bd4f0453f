"""The guest-building kit's parts: apt output parsers, the cpio writer, closures, the cache lock."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bhype_core.drivers.qmp import QMPClient, QMPError
from bhype_core.testing.parts import require_program
from bhype_testimages import debian, guest_cache
from bhype_testimages.initramfs import Initramfs, module_closure, module_index, parse_ldso_list

FIXTURES = Path(__file__).parent / "fixtures"


def sample(name: str) -> str:
    return (FIXTURES / name).read_text()


# --- apt output (recorded from apt 2.6 on Debian 12; apt-cache(8)) ---------------------------


def test_policy_candidate_keeps_the_epoch() -> None:
    text = sample("apt-cache-policy-busybox-static.txt")
    assert debian.parse_policy_candidate(text, "busybox-static") == "1:1.35.0-4+deb12u1+b1"


def test_policy_for_an_unknown_package_names_it() -> None:
    with pytest.raises(LookupError, match="no-such-pkg"):
        debian.parse_policy_candidate("", "no-such-pkg")
    with pytest.raises(LookupError, match="gone"):
        debian.parse_policy_candidate("gone:\n  Installed: (none)\n  Candidate: (none)\n", "gone")


def test_cloud_kernel_is_resolved_from_the_meta_package() -> None:
    depends = debian.parse_depends(sample("apt-cache-depends-linux-image-cloud-amd64.txt"))
    assert depends == ["linux-image-6.1.0-56-cloud-amd64"]
    assert debian.cloud_kernel_abi(depends) == "6.1.0-56-cloud-amd64"
    with pytest.raises(LookupError):
        debian.cloud_kernel_abi(["linux-base", "initramfs-tools"])


def test_depends_skips_virtual_packages_and_other_relations() -> None:
    depends = debian.parse_depends(sample("apt-cache-depends-zfs-dkms.txt"))
    assert depends == ["dkms", "file", "libc6-dev", "lsb-release", "libpython3-stdlib", "debconf"]


def test_show_fields_and_download_file_name() -> None:
    fields = debian.parse_control(sample("apt-cache-show-zfs-dkms.txt"))
    assert (fields["Version"], fields["Architecture"]) == ("2.3.2-2~bpo12+2", "all")
    assert fields["Filename"].endswith("/zfs-dkms_2.3.2-2~bpo12+2_all.deb")
    name = debian.deb_filename("busybox-static", "1:1.35.0-4", "amd64")
    assert name == "busybox-static_1%3a1.35.0-4_amd64.deb"


def test_private_apt_options_never_point_at_the_machine_config(tmp_path: Path) -> None:
    options = debian.DebianArchive(tmp_path, debian.bookworm_sources(True)).options()
    values = dict(option.split("=", 1) for option in options[1::2])
    for key in ("Dir::Etc::sourcelist", "Dir::Etc::sourceparts", "Dir::State", "Dir::Cache"):
        assert values[key].startswith(str(tmp_path)), key
    lines = [source.line() for source in debian.bookworm_sources(backports_contrib=True)]
    assert any("bookworm-backports main contrib" in line for line in lines)
    assert any("bookworm-security main" in line for line in lines)


# --- ld.so --list (ldd(1) output format) ------------------------------------------------------


def test_ldso_list_parsing() -> None:
    found, missing = parse_ldso_list(sample("ldso-list-ssh.txt"))
    assert "/lib/x86_64-linux-gnu/libcrypto.so.3" in found
    assert "/lib64/ld-linux-x86-64.so.2" in found
    assert not any("vdso" in path for path in found)
    assert missing == []
    _, missing = parse_ldso_list("\tlibzfs.so.6 => not found\n\tlibc.so.6 => /lib/libc.so.6 (0x00007f)\n")
    assert missing == ["libzfs.so.6"]


# --- cpio newc writer, checked with GNU cpio ---------------------------------------------------


def test_initramfs_archive_lists_and_extracts_with_gnu_cpio(tmp_path: Path) -> None:
    require_program("cpio", "cpio")
    source = tmp_path / "payload"
    source.write_bytes(b"x" * 4097)
    source.chmod(0o750)
    image = Initramfs()
    image.add_data("/init", "#!/bin/sh\n", mode=0o755)
    image.add_file("/usr/lib/payload", source)
    image.add_symlink("/bin/sh", "/bin/busybox")
    image.add_char_device("/dev/console", 5, 1)
    archive = tmp_path / "initrd.gz"
    image.write(archive, "gzip")

    raw = subprocess.run(["gzip", "-dc", str(archive)], check=True, capture_output=True).stdout
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=raw, check=True, capture_output=True).stdout
    lines = {}
    for line in listing.decode().splitlines():
        lines[line.split()[-1] if "->" not in line else line.split()[-3]] = line
    assert set(lines) == {"bin", "bin/sh", "dev", "dev/console", "init", "usr", "usr/lib", "usr/lib/payload"}
    assert lines["dev/console"].startswith("crw-------") and "5,   1" in lines["dev/console"]
    assert lines["bin/sh"].startswith("lrwxrwxrwx") and lines["bin/sh"].endswith("-> /bin/busybox")
    assert lines["usr/lib/payload"].startswith("-rwxr-x---")

    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--quiet", "--no-absolute-filenames"], input=raw, cwd=out, check=True)
    assert (out / "usr/lib/payload").read_bytes() == b"x" * 4097
    assert (out / "init").read_text() == "#!/bin/sh\n"


def test_initramfs_refuses_paths_escaping_the_root() -> None:
    with pytest.raises(ValueError, match=r"\.\."):
        Initramfs().add_data("/etc/../../x", "")


# --- kernel module closure (depends= in .modinfo, see modinfo(8)) -----------------------------


def fake_module(directory: Path, name: str, depends: str) -> None:
    # The .modinfo section is NUL-separated key=value strings, as modinfo(8) reads them.
    directory.mkdir(parents=True, exist_ok=True)
    body = b"\x7fELF...\0license=GPL\0depends=" + depends.encode() + b"\0name=" + name.encode() + b"\0"
    (directory / f"{name}.ko").write_bytes(body)


def test_module_closure_orders_dependencies_first(tmp_path: Path) -> None:
    fake_module(tmp_path / "kernel/drivers/virtio", "virtio", "")
    fake_module(tmp_path / "kernel/drivers/virtio", "virtio_ring", "virtio")
    fake_module(tmp_path / "kernel/drivers/block", "virtio_blk", "virtio,virtio_ring")
    fake_module(tmp_path / "extra", "spl", "")
    fake_module(tmp_path / "extra", "zfs", "spl")
    index = module_index([tmp_path])

    order = [path.stem for path in module_closure(index, ["virtio_blk", "zfs"])]

    assert order == ["virtio", "virtio_ring", "virtio_blk", "spl", "zfs"]
    with pytest.raises(LookupError, match="ahci"):
        module_closure(index, ["ahci"])


# --- cache (locking and the build log: test_guest_cache.py) -----------------------------------


def test_failed_build_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with guest_cache.staging_dir(tmp_path / "demo") as staging:
            (staging / "half.img").write_bytes(b"x")
            raise RuntimeError("build broke")
    assert list((tmp_path / "demo").iterdir()) == []
    assert guest_cache.find_entry(tmp_path / "demo", "") is None


# --- QMP client failure paths (the happy path runs against real QEMU in test_tiny_guest) -------


def test_qmp_connect_to_a_missing_socket_times_out(tmp_path: Path) -> None:
    with pytest.raises(QMPError, match="cannot connect"):
        QMPClient(tmp_path / "absent.sock").connect(timeout=0.3)
