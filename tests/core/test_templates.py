"""Shipped and admin OS templates (bhype_core.templates)."""

from __future__ import annotations

import json

import pytest

from bhype_core.errors import NotFound, ValidationErrors
from bhype_core.templates import load_templates, parse_template

# Issue 4, "OS templates": FreeBSD (UEFI and bhyveload), Debian, Ubuntu, AlmaLinux/Rocky, Fedora,
# Alpine, OpenBSD, NetBSD, Windows 10/11, Windows Server.
SHIPPED = {
    "freebsd-uefi", "freebsd-bhyveload", "debian", "ubuntu", "almalinux", "rocky", "fedora",
    "alpine", "openbsd", "netbsd", "windows10", "windows11", "windows-server",
}  # fmt: skip
LINUX = {"debian", "ubuntu", "almalinux", "rocky", "fedora", "alpine"}
WINDOWS = {"windows10", "windows11", "windows-server"}


@pytest.fixture(scope="module")
def catalog():
    return load_templates()


def test_every_shipped_template_loads(catalog):
    assert set(catalog.names()) == SHIPPED
    assert catalog.errors == {}
    assert all(t.source == "builtin" for t in catalog.list())


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_each_template_builds_a_valid_vm(catalog, name):
    spec = catalog.build_spec(name, {"name": "vm1"})
    assert spec.template == name
    assert spec.cpus.count >= 1 and len(spec.disks) == 1 and len(spec.nics) == 1
    assert spec.nics[0].mac and spec.disks[0].volume == "disk0"
    # bhyve's framebuffer only exists with a UEFI boot ROM (reference 9.2 / 2.3)
    assert not spec.graphics.vnc or spec.boot.mode in ("uefi", "uefi-csm")
    json.dumps(catalog.get(name).summary())


@pytest.mark.parametrize("name", sorted(WINDOWS))
def test_windows_templates_follow_vm_bhyve_sample(catalog, name):
    # Reference 10: Windows = loader=uefi, graphics=yes, xhci_mouse=yes, e1000 NIC, ahci-hd disk,
    # utctime=no; NVMe is the other disk bus Windows drives without extra drivers (reference 1.3).
    spec = catalog.build_spec(name, {"name": "win"})
    assert spec.os_type == "windows" and spec.boot.mode == "uefi"
    assert spec.clock == "localtime"
    assert spec.graphics.vnc and spec.graphics.tablet
    assert spec.nics[0].model == "e1000"
    assert spec.disks[0].bus in ("ahci-hd", "nvme")
    assert spec.cpus.sockets == 1  # Windows clients accept at most two sockets
    assert spec.memory >= 4 << 30
    assert "virtio" in catalog.get(name).notes


def test_windows10_uses_ahci_like_the_vm_bhyve_sample(catalog):
    assert catalog.build_spec("windows10", {"name": "w"}).disks[0].bus == "ahci-hd"


@pytest.mark.parametrize("name", sorted(LINUX))
def test_linux_templates_use_uefi_virtio_and_cloud_init(catalog, name):
    spec = catalog.build_spec(name, {"name": "lnx"})
    assert spec.os_type == "linux" and spec.boot.mode == "uefi" and spec.clock == "utc"
    assert spec.disks[0].bus == "virtio-blk" and spec.nics[0].model == "virtio-net"
    assert catalog.get(name).cloud_init


def test_bsd_templates(catalog):
    assert catalog.build_spec("freebsd-bhyveload", {"name": "f"}).boot.mode == "bhyveload"
    assert catalog.build_spec("freebsd-uefi", {"name": "f"}).boot.mode == "uefi"
    # bhyve(8) fbuf vga=off: "An example of such a guest is OpenBSD in UEFI mode"
    assert catalog.build_spec("openbsd", {"name": "o"}).graphics.vga == "off"
    assert not catalog.get("openbsd").cloud_init and not catalog.get("netbsd").cloud_init


def test_overrides_merge_tables_and_replace_lists(catalog):
    spec = catalog.build_spec(
        "windows10",
        {
            "name": "w",
            "memory": "8G",
            "graphics": {"resolution": "1920x1080"},
            "disks": [{"size": "100G"}, {"size": "10G"}],
        },
    )
    assert spec.memory == 8 << 30
    assert spec.graphics.vnc and spec.graphics.resolution == "1920x1080"  # merged, vnc kept
    assert [d.size for d in spec.disks] == [100 << 30, 10 << 30]
    assert [d.bus for d in spec.disks] == ["ahci-hd", "ahci-hd"]  # [defaults.disk] for added disks
    explicit = catalog.build_spec("windows10", {"name": "w", "disks": [{"size": "1G", "bus": "virtio-blk"}]})
    assert explicit.disks[0].bus == "virtio-blk"


def test_override_errors_name_the_field(catalog):
    with pytest.raises(ValidationErrors) as info:
        catalog.build_spec("openbsd", {"name": "o", "cloud_init": {"user_data": "#cloud-config"}})
    assert [e.path for e in info.value.errors] == ["cloud_init"]
    with pytest.raises(ValidationErrors) as info:
        catalog.build_spec("debian", {"name": "d", "disks": [{"size": "lots"}], "template": "ubuntu"})
    assert [e.path for e in info.value.errors] == ["template"]
    with pytest.raises(ValidationErrors) as info:
        catalog.build_spec("debian", {"name": "d", "disks": [{"size": "lots"}]})
    assert [e.path for e in info.value.errors] == ["disks.0.size"]


def test_unknown_template(catalog):
    with pytest.raises(NotFound):
        catalog.get("arch")
    with pytest.raises(ValidationErrors) as info:
        catalog.build_spec("arch", {"name": "a"})
    assert info.value.errors[0].path == "template"


ADMIN_TEMPLATE = """
title = "Tiny test guest"
os_type = "linux"
cloud_init = false

[defaults.nic]
model = "e1000"

[spec]
boot = { mode = "grub", kernel = "/var/cache/bhype/vmlinuz", cmdline = "console=ttyS0" }
memory = "256M"
nics = [{}]
"""


def test_admin_directory_adds_overrides_and_reports_broken_files(tmp_path):
    (tmp_path / "tiny.toml").write_text(ADMIN_TEMPLATE)
    (tmp_path / "debian.toml").write_text(ADMIN_TEMPLATE.replace("Tiny test guest", "Our Debian"))
    (tmp_path / "broken.toml").write_text('[spec]\nmemory = "lots"\n')
    (tmp_path / "notes.txt").write_text("ignored")
    catalog = load_templates(tmp_path)
    assert catalog.get("tiny").source == "admin"
    assert catalog.get("debian").title == "Our Debian"  # an admin file replaces the shipped one
    assert set(catalog.errors) == {str(tmp_path / "broken.toml")}
    assert "spec.memory" in catalog.errors[str(tmp_path / "broken.toml")]
    spec = catalog.build_spec("tiny", {"name": "t1"})
    assert spec.boot.kernel == "/var/cache/bhype/vmlinuz" and spec.nics[0].model == "e1000"


def test_missing_admin_directory_is_fine(tmp_path):
    assert set(load_templates(tmp_path / "nope").names()) == SHIPPED


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ('colour = "red"', "colour"),
        ('cloud_init = "yes"', "cloud_init"),
        ('[spec]\nname = "x"', "spec.name"),
        ('[spec]\nnics = [{ mac = "58:9c:fc:00:00:01" }]', "spec.nics.0.mac"),
        ('[spec]\ndisks = [{ size = "1G", bus = "scsi" }]', "spec.disks.0.bus"),
        ('os_type = "beos"', "os_type"),
        ("[defaults.cd]\nx = 1", "defaults"),
        ("spec = [", ""),
    ],
)
def test_parse_template_rejects_bad_files(text, path):
    with pytest.raises(ValidationErrors) as info:
        parse_template("custom", text)
    assert path in [e.path for e in info.value.errors]


def test_template_name_comes_from_a_valid_file_name():
    with pytest.raises(ValidationErrors):
        parse_template("../evil", "")
