"""Golden tests for the bhyve(8)/bhyveload(8)/grub-bhyve/bhyvectl(8) argv builders.

Every expected command line below is written by hand from bhyve(8) (Oct 2025 man page),
bhyveload(8), bhyvectl(8) and shared/reference/freebsd-host.md ("ref N.N"), plus the slot
layout documented in bhype_core/drivers/bhyve_argv.py; none is copied from the builder's output.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from bhype_core.drivers.bhyve_argv import (
    BhyveResources,
    bhyve_argv,
    bhyve_spec_errors,
    bhyvectl_argv,
    bhyvectl_destroy_argv,
    bhyveload_argv,
    fbuf_secrets,
    grub_bhyve_argv,
    grub_cfg,
    grub_device_map,
)
from bhype_core.errors import ValidationErrors
from bhype_core.spec import SpecContext, validate_spec
from bhype_core.templates import load_templates

# Values from the ref 1.1 "typical UEFI guest" example.
UUID = "6a0c9f0e-2b3d-4c55-9a1e-0c2d3e4f5a6b"
MAC = "58:9c:fc:0a:1b:2c"
DISK0 = "/dev/zvol/tank/vm/web1/disk0"
VARS = "/vm/web1/uefi-vars.fd"

RES = BhyveResources(disk_paths=[DISK0], taps=["tap12"], nmdm_id="-web1.1", vnc_port=5912, firmware_vars=VARS)

# ref 1.1/1.2: vm-bhyve's defaults -A -H -P -w, plus -u "RTC keeps UTC" unless utctime=no (Windows).
HEAD_UTC = ["/usr/sbin/bhyve", "-A", "-H", "-P", "-w", "-u"]
HEAD_LOCALTIME = ["/usr/sbin/bhyve", "-A", "-H", "-P", "-w"]
# bhyve(8) -U "Set the universally unique identifier (UUID) in the guest's SMBIOS".
SMBIOS_UUID = ["-U", UUID]
# bhyve(8) PCI EMULATION: hostbridge "usually configured at slot 0" (ref 1.3).
HOSTBRIDGE = ["-s", "0,hostbridge"]
# ref 1.3: disks from slot 4 (vm-bhyve start_slot=4).
VIRTIO_DISK0 = ["-s", f"4,virtio-blk,{DISK0}"]
# bhyve_argv layout: NICs from slot 20; ref 1.3: always an explicit stored mac=.
VIRTIO_NIC0 = ["-s", f"20,virtio-net,tap12,mac={MAC}"]
E1000_NIC0 = ["-s", f"20,e1000,tap12,mac={MAC}"]
RNG = ["-s", "28,virtio-rnd"]
# bhyve(8) fbuf "tcp=ip:port, w=, h=, ... password="; ref 9.3: bound to 127.0.0.1 only;
# slot 29 fbuf and 30 xhci tablet as TrueNAS 11 and the bhyve(8) UEFI example use.
VNC_1280X800 = ["-s", "29,fbuf,tcp=127.0.0.1:5912,w=1280,h=800,password=s3cret8", "-s", "30,xhci,tablet"]
# bhyve(8): the LPC bridge "can only be configured on bus 0" (slot 31, ref 1.3); ref 9.1:
# bhyve gets the A side of the nmdm pair.
LPC_COM1 = ["-s", "31,lpc", "-l", "com1,/dev/nmdm-web1.1A"]
# bhyve(8) "Boot ROM device backends: romfile[,varfile]"; ref 1.6 CODE image + per-VM vars copy.
BOOTROM = ["-l", f"bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI_CODE.fd,{VARS}"]
NAME = ["bhype-web1"]  # bhyve(8): vmname last; bhype-<name> (spec.instance_name)


def has_run(argv: list[str], part: list[str]) -> bool:
    """True when ``part`` appears in ``argv`` as consecutive elements."""
    return any(argv[i : i + len(part)] == part for i in range(len(argv) - len(part) + 1))


def cpu(n: int, sockets: int = 1, cores: int | None = None, threads: int = 1) -> list[str]:
    # bhyve(8) -c [[cpus=]numcpus][,sockets=n][,cores=n][,threads=n]; ref 1.1 spells all four.
    return ["-c", f"cpus={n},sockets={sockets},cores={cores or n},threads={threads}"]


def mem(size: str) -> list[str]:
    # bhyve(8) -m memsize[K|M|G|T]
    return ["-m", size]


# One expected command line per shipped template, built from that template's documented defaults.
# fmt: off
GOLDEN = {
    "debian": HEAD_UTC + cpu(2) + mem("2G") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0 + RNG
    + VNC_1280X800 + LPC_COM1 + BOOTROM + NAME,
    "ubuntu": HEAD_UTC + cpu(2) + mem("4G") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0 + RNG
    + VNC_1280X800 + LPC_COM1 + BOOTROM + NAME,
    "almalinux": HEAD_UTC + cpu(2) + mem("2G") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0 + RNG
    + VNC_1280X800 + LPC_COM1 + BOOTROM + NAME,
    "rocky": HEAD_UTC + cpu(2) + mem("2G") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0 + RNG
    + VNC_1280X800 + LPC_COM1 + BOOTROM + NAME,
    "fedora": HEAD_UTC + cpu(2) + mem("4G") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0 + RNG
    + VNC_1280X800 + LPC_COM1 + BOOTROM + NAME,
    # Serial-console guests: no fbuf, no tablet.
    "alpine": HEAD_UTC + cpu(1) + mem("512M") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0 + RNG
    + LPC_COM1 + BOOTROM + NAME,
    "freebsd-uefi": HEAD_UTC + cpu(2) + mem("2G") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0
    + RNG + LPC_COM1 + BOOTROM + NAME,
    "openbsd": HEAD_UTC + cpu(2) + mem("2G") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0 + RNG
    + LPC_COM1 + BOOTROM + NAME,
    "netbsd": HEAD_UTC + cpu(2) + mem("2G") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0 + RNG
    + LPC_COM1 + BOOTROM + NAME,
    # ref 1.1 second example: a bhyveload guest has no boot ROM and no framebuffer.
    "freebsd-bhyveload": HEAD_UTC + cpu(2) + mem("2G") + SMBIOS_UUID + HOSTBRIDGE + VIRTIO_DISK0 + VIRTIO_NIC0
    + RNG + LPC_COM1 + NAME,
    # ref 10 Windows sample: uefi, graphics, xhci mouse, e1000, ahci-hd, utctime=no (no -u).
    "windows10": HEAD_LOCALTIME + cpu(2) + mem("4G") + SMBIOS_UUID + HOSTBRIDGE + ["-s", f"4,ahci-hd,{DISK0}"]
    + E1000_NIC0 + VNC_1280X800 + LPC_COM1 + BOOTROM + NAME,
    # ref 1.3: nvme "NVMe disk (Windows without virtio drivers)".
    "windows11": HEAD_LOCALTIME + cpu(2) + mem("4G") + SMBIOS_UUID + HOSTBRIDGE + ["-s", f"4,nvme,{DISK0}"]
    + E1000_NIC0 + VNC_1280X800 + LPC_COM1 + BOOTROM + NAME,
    "windows-server": HEAD_LOCALTIME + cpu(4) + mem("4G") + SMBIOS_UUID + HOSTBRIDGE
    + ["-s", f"4,nvme,{DISK0}"] + E1000_NIC0 + VNC_1280X800 + LPC_COM1 + BOOTROM + NAME,
}
# fmt: on


@pytest.fixture(scope="module")
def catalog():
    return load_templates()


def build(catalog, template: str, **overrides):
    data = {"name": "web1", "uuid": UUID, "nics": [{"mac": MAC}], "graphics": {"password": "s3cret8"}}
    return catalog.build_spec(template, {**data, **overrides})


def test_golden_covers_every_shipped_template(catalog):
    assert set(GOLDEN) == set(catalog.names())


@pytest.mark.parametrize("template", sorted(GOLDEN))
def test_golden_argv_per_template(catalog, template):
    assert bhyve_argv(build(catalog, template), RES) == GOLDEN[template]


def test_bhyveload_boot(catalog):
    spec = build(
        catalog, "freebsd-bhyveload", boot={"mode": "bhyveload", "loader_env": {"autoboot_delay": "3"}}
    )
    # bhyveload(8) SYNOPSIS order -c cons-dev -d disk-path -e name=value -m mem-size vmname;
    # ref 2.1: same nmdm A side as bhyve, smbios.system.uuid like vm-bhyve, -m equal to bhyve's -m.
    assert bhyveload_argv(spec, RES) == [
        "/usr/sbin/bhyveload", "-c", "/dev/nmdm-web1.1A", "-d", DISK0,
        "-e", f"smbios.system.uuid={UUID}", "-e", "autoboot_delay=3", "-m", "2G", "bhype-web1",
    ]  # fmt: skip


def test_bhyveload_installs_from_the_iso(catalog):
    spec = build(catalog, "freebsd-bhyveload", cdrom="FreeBSD-14.2-RELEASE-amd64-disc1.iso")
    res = BhyveResources(
        disk_paths=[DISK0], taps=["tap12"], nmdm_id="-web1.1", cdrom_path="/vm/.iso/disc1.iso", boot_cd=True
    )
    # bhyveload(8) EXAMPLES: "boots off the ISO image" with -d release.iso; ref 2.1 "-d may be an ISO".
    assert has_run(bhyveload_argv(spec, res), ["-d", "/vm/.iso/disc1.iso"])
    # A normal boot with the ISO left attached loads from the disk (issue 14: not the ISO on
    # every reboot); the CD stays on the bus.
    assert has_run(bhyveload_argv(spec, replace(res, boot_cd=False)), ["-d", DISK0])
    # ref 1.1/1.3: install media at slot 3 (vm-bhyve install_slot=3), ahci-cd, read-only.
    assert has_run(
        bhyve_argv(spec, res), HOSTBRIDGE + ["-s", "3,ahci-cd,/vm/.iso/disc1.iso,ro"] + VIRTIO_DISK0
    )


def test_uefi_csm_boot_uses_the_csm_image(catalog):
    spec = build(catalog, "debian", boot="uefi-csm", graphics={"vnc": True, "password": "", "vga": "on"})
    res = BhyveResources(disk_paths=[DISK0], taps=["tap12"], nmdm_id="-web1.1", vnc_port=5912)
    argv = bhyve_argv(spec, res)
    # ref 1.6: uefi-csm -> BHYVE_UEFI_CSM.fd (no NVRAM file needed).
    assert argv[-3:] == ["-l", "bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI_CSM.fd", "bhype-web1"]
    # bhyve(8) fbuf vga=on "along with the CSM BIOS capability"; empty password = none.
    assert has_run(argv, ["-s", "29,fbuf,tcp=127.0.0.1:5912,w=1280,h=800,vga=on", "-s", "30,xhci,tablet"])


def test_grub_boot_from_disk(catalog):
    spec = build(catalog, "debian", boot="grub", graphics={"vnc": False})
    res = BhyveResources(
        disk_paths=[DISK0], taps=["tap12"], nmdm_id="-web1.1", device_map="/vm/web1/device.map"
    )
    # ref 2.2 example: grub-bhyve -m <map> -r hd0,msdos1 -M 1024M -c /dev/nmdm-deb1.1A deb1, with
    # the root vm-bhyve uses (hd0,1), which exists on GPT disks too (test_grub_root.py).
    assert grub_bhyve_argv(spec, res) == [
        "/usr/local/sbin/grub-bhyve", "-m", "/vm/web1/device.map", "-r", "hd0,1",
        "-M", "2048M", "-c", "/dev/nmdm-web1.1A", "bhype-web1",
    ]  # fmt: skip
    assert grub_device_map(spec, res) == f"(hd0) {DISK0}\n"
    # ref 2.2: the bhyve step after grub-bhyve has no boot ROM.
    assert bhyve_argv(spec, res) == (
        HEAD_UTC
        + cpu(2)
        + mem("2G")
        + SMBIOS_UUID
        + HOSTBRIDGE
        + VIRTIO_DISK0
        + VIRTIO_NIC0
        + RNG
        + LPC_COM1
        + NAME
    )


def test_grub_install_from_cd_maps_cd0(catalog):
    spec = build(catalog, "debian", boot="grub", graphics={"vnc": False}, cdrom="debian.iso")
    res = BhyveResources(
        disk_paths=[DISK0],
        taps=["tap12"],
        nmdm_id="-web1.1",
        cdrom_path="/vm/.iso/debian.iso",
        device_map="/m",
        boot_cd=True,
    )
    # ref 2.2: vm-bhyve writes (cd0) and (hd0) for installs and uses root cd0.
    assert grub_device_map(spec, res) == f"(hd0) {DISK0}\n(cd0) /vm/.iso/debian.iso\n"
    assert has_run(grub_bhyve_argv(spec, res), ["-r", "cd0"])
    # A normal boot with the ISO still attached starts from the disk (issue 14).
    assert has_run(grub_bhyve_argv(spec, replace(res, boot_cd=False)), ["-r", "hd0,1"])


def test_grub_boot_of_a_host_kernel():
    spec = validate_spec(
        {
            "name": "tiny", "uuid": UUID, "memory": "256M",
            "boot": {
                "mode": "grub", "kernel": "/cache/vmlinuz", "initrd": "/cache/initrd.gz", "cmdline": "quiet",
            },
        }
    )  # fmt: skip
    res = BhyveResources(nmdm_id="7", device_map="/vm/tiny/device.map", grub_dir="/vm/tiny/grub")
    # ref 2.2: -r <root-dev> "host" reads the host file system, -d the directory holding grub.cfg.
    assert grub_bhyve_argv(spec, res) == [
        "/usr/local/sbin/grub-bhyve", "-m", "/vm/tiny/device.map", "-r", "host", "-d", "/vm/tiny/grub",
        "-M", "256M", "-c", "/dev/nmdm7A", "bhype-tiny",
    ]  # fmt: skip
    assert grub_cfg(spec) == (
        "set timeout=0\n"
        'menuentry "bhype" {\n'
        "    linux (host)/cache/vmlinuz quiet\n"
        "    initrd (host)/cache/initrd.gz\n"
        "}\n"
    )


def test_several_disks_and_nics_keep_fixed_slots():
    spec = validate_spec(
        {
            "name": "web1", "uuid": UUID, "cpus": {"sockets": 2, "cores": 2, "threads": 2}, "memory": "1536M",
            "disks": [{"size": "20G"}, {"size": "1T", "bus": "nvme", "sectorsize": 4096},
                      {"size": "10G", "bus": "ahci-hd", "sectorsize": 512}],
            "nics": [{"mac": MAC}, {"model": "e1000", "mac": "58:9c:fc:00:00:02"}],
            "rng": False, "serial": False, "cdrom": "x.iso",
        }
    )  # fmt: skip
    res = BhyveResources(
        disk_paths=[DISK0, "/vm/web1/disk1.img", "/vm/web1/disk2.img"], taps=["tap12", "tap13"],
        cdrom_path="/vm/.iso/x.iso", cloud_init_iso="/vm/web1/seed.iso", firmware_vars=VARS,
    )  # fmt: skip
    assert bhyve_argv(spec, res) == (
        HEAD_UTC
        + cpu(8, sockets=2, cores=2, threads=2)
        + mem("1536M")
        + SMBIOS_UUID
        + HOSTBRIDGE
        + ["-s", "2,ahci-cd,/vm/web1/seed.iso,ro"]  # cloud-init seed at slot 2 (module layout)
        + ["-s", "3,ahci-cd,/vm/.iso/x.iso,ro"]  # ref 1.3 install media at slot 3
        + ["-s", f"4,virtio-blk,{DISK0}"]
        + ["-s", "5,nvme,/vm/web1/disk1.img,sectsz=4096"]  # bhyve(8) NVMe backend option sectsz=
        + ["-s", "6,ahci-hd,/vm/web1/disk2.img,sectorsize=512"]  # bhyve(8) block option sectorsize=
        + ["-s", f"20,virtio-net,tap12,mac={MAC}", "-s", "21,e1000,tap13,mac=58:9c:fc:00:00:02"]
        + ["-s", "31,lpc"]  # no com1 without a serial console, no virtio-rnd when rng is off
        + BOOTROM
        + NAME
    )


def test_vnc_wait_vga_and_no_tablet(catalog):
    spec = build(catalog, "openbsd", graphics={"vnc": True, "wait": True, "tablet": False, "password": "pw"})
    argv = bhyve_argv(spec, RES)
    # bhyve(8) fbuf option order rfb, w, h, vga, wait, password; the openbsd template sets no
    # resolution, so the spec default 1024x768 (also bhyve's own default) applies.
    assert "29,fbuf,tcp=127.0.0.1:5912,w=1024,h=768,vga=off,wait,password=pw" in argv
    assert "30,xhci,tablet" not in argv


def test_extra_options_go_before_the_name(catalog):
    spec = build(catalog, "debian", extra={"bhyve": ["-S", "-s", "7,passthru,2/0/0"]})
    # bhyve(8) SYNOPSIS: options, then vmname last.
    assert bhyve_argv(spec, RES)[-6:] == BOOTROM + ["-S", "-s", "7,passthru,2/0/0", "bhype-web1"]


def test_bhyve_rules_on_top_of_the_spec(catalog):
    spec = build(catalog, "freebsd-bhyveload", graphics={"vnc": True})
    with pytest.raises(ValidationErrors) as info:
        bhyve_argv(spec, RES)
    assert [e.path for e in info.value.errors] == ["graphics.vnc"]
    # the same rules plug into validation as a context check
    with pytest.raises(ValidationErrors):
        validate_spec(
            {"name": "x", "boot": "bhyveload", "graphics": {"vnc": True}},
            SpecContext(checks=[bhyve_spec_errors]),
        )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-s", "4,virtio-rnd"], "PCI slot 4 is already used by disks.0"),
        (["-s31,lpc"], "PCI slot 31 is already used by the LPC bridge"),
        (["-s", "0:20:0,virtio-rnd"], "PCI slot 20 is already used by nics.0"),
        (["-s", "x,virtio-rnd"], "invalid -s slot"),
        (["-s"], "needs a value"),
        (["web2"], "unexpected argument"),
    ],
)
def test_extra_options_are_checked(catalog, extra, message):
    errors = bhyve_spec_errors(build(catalog, "debian", extra={"bhyve": extra}))
    assert len(errors) == 1 and errors[0][0].startswith("extra.bhyve.") and message in errors[0][1]


def test_free_slots_and_other_buses_are_allowed_for_extras(catalog):
    assert (
        bhyve_spec_errors(
            build(catalog, "debian", extra={"bhyve": ["-s", "7,passthru,2/0/0", "-s", "1:4:0,e1000"]})
        )
        == []
    )


def test_resources_must_match_the_spec(catalog):
    spec = build(catalog, "debian")
    with pytest.raises(ValueError, match="disk paths"):
        bhyve_argv(spec, BhyveResources(taps=["tap12"], nmdm_id="1", vnc_port=5900, firmware_vars=VARS))
    with pytest.raises(ValueError, match="vnc_port"):
        bhyve_argv(spec, BhyveResources(disk_paths=[DISK0], taps=["tap12"], nmdm_id="1", firmware_vars=VARS))
    with pytest.raises(ValueError, match="firmware_vars"):
        bhyve_argv(spec, BhyveResources(disk_paths=[DISK0], taps=["tap12"], nmdm_id="1", vnc_port=5900))
    with pytest.raises(ValueError, match="commas"):
        bhyve_argv(
            spec,
            BhyveResources(
                disk_paths=["/vm/a,b"], taps=["tap12"], nmdm_id="1", vnc_port=5900, firmware_vars=VARS
            ),
        )


def test_loaders_refuse_other_boot_modes(catalog):
    with pytest.raises(ValueError):
        bhyveload_argv(build(catalog, "debian"), RES)
    with pytest.raises(ValueError):
        grub_bhyve_argv(build(catalog, "debian"), RES)


def test_bhyvectl():
    # bhyvectl(8) / ref 3.1: bhyvectl --vm=NAME --destroy | --force-poweroff | --force-reset
    assert bhyvectl_destroy_argv("bhype-web1") == ["/usr/sbin/bhyvectl", "--vm=bhype-web1", "--destroy"]
    assert bhyvectl_argv("bhype-web1", "force-poweroff") == [
        "/usr/sbin/bhyvectl",
        "--vm=bhype-web1",
        "--force-poweroff",
    ]
    with pytest.raises(ValueError):
        bhyvectl_argv("--all", "destroy")


def test_long_vm_names_get_a_short_bhyve_name():
    spec = validate_spec({"name": "a-very-long-virtual-machine-name-for-testing"})
    name = bhyve_argv(spec, BhyveResources(nmdm_id="1", firmware_vars=VARS))[-1]
    # ref 1.2: keep bhyve VM names to 31 characters on 13/14.
    assert len(name) <= 31 and name.startswith("bhype-a-very-long")


def test_vnc_password_goes_to_a_secrets_file_not_the_command_line(catalog):
    # Issue 11: a password in bhyve's argv is readable by every local account through ps(1).
    spec = build(catalog, "openbsd", graphics={"vnc": True, "password": "pw"})
    argv = bhyve_argv(spec, replace(RES, secrets_file="/vm/web1/vnc.conf"))
    assert argv[argv.index("-k") + 1] == "/vm/web1/vnc.conf" and argv.index("-k") < argv.index("-s")
    assert not any("pw" in arg.split(",") or "password=" in arg for arg in argv)
    assert fbuf_secrets(spec) == "pci.0.29.0.password=pw\n"  # bhyve_config(5) node of slot 29
    without = build(catalog, "openbsd", graphics={"vnc": True, "password": ""})
    assert "-k" not in bhyve_argv(without, replace(RES, secrets_file="/vm/web1/vnc.conf"))
