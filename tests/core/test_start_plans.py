"""Start plans (issue 14): a normal start boots the disk, an install start boots the ISO once and
then the disk, a rescue start boots the ISO first on every boot; ``graphics.wait`` holds only
the install boot unless it says ``"always"``.

Golden command lines for bhyve are written from bhyve(8) (revision of Oct 28, 2025: fbuf
``wait``, block option ``bootindex=``, fw_cfg type ``qemu``), bhyveload(8) and reference
freebsd-host.md 1.7/2.1/2.2 (vm-bhyve drops the install ISO after the first boot); for QEMU from
QEMU's "bootindex" documentation. The supervisor's switch after the first reboot runs for real
with the stand-in bhyve tools (``fake_bhyve/``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_supervisor_bhyve import FakeHost, host, make_spec, wait_for  # noqa: F401 (fixture)

from bhype_core.drivers.base import Attachments
from bhype_core.drivers.boot_plan import boot_plan, mode_errors
from bhype_core.drivers.qemu import QemuDriver
from bhype_core.host.runner import LocalRunner

ISO = "/vm/.iso/installer.iso"
DISK = "/vm/web1/disk0.img"


def fbuf(argv: list[str]) -> str:
    return next(arg for arg in argv if ",fbuf," in arg)


def uefi_vm(**extra: object):
    data: dict = {"cdrom": "installer.iso", "disks": [{"size": "1G"}],
                  "graphics": {"vnc": True, "password": "", "wait": True}, **extra}
    return make_spec("web1", **data)


def test_install_needs_an_iso_and_unknown_modes_are_refused():
    plain = make_spec("web1", disks=[{"size": "1G"}])
    assert mode_errors(plain, "install") == [
        ("mode", "an install start boots the VM's ISO, and VM web1 has none: attach one first (spec.cdrom)")]
    assert mode_errors(plain, "sideways")[0][0] == "mode"
    assert mode_errors(plain, "normal") == []
    with pytest.raises(ValueError, match="has none"):
        boot_plan(plain, "rescue")


def test_wait_holds_only_the_install_boot_unless_always():
    spec = uefi_vm()
    assert boot_plan(spec, "normal").first.wait is False
    install = boot_plan(spec, "install")
    assert install.first.wait is True and install.later.wait is False and install.changes
    always = uefi_vm(graphics={"vnc": True, "password": "", "wait": "always"})
    assert boot_plan(always, "normal").first.wait is True
    assert boot_plan(always, "install").later.wait is True


def test_bhyve_uefi_install_argv_then_the_disk_alone(tmp_path):
    driver = FakeHost(tmp_path).driver()
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    attached = Attachments(disk_paths=[DISK], cdrom_path=ISO, taps=[], start_mode="install")
    prepared = driver.prepare(uefi_vm(), vm_dir, attached, 5912)
    first, later = prepared.config["argv"], prepared.config["after_first_reboot"]["argv"]
    # ref 1.3: install media at slot 3; bhyve(8) fbuf "wait: only boot upon the initiation of a
    # VNC connection" for the install boot only (vm-bhyve strips it after the first run, ref 1.7).
    assert "3,ahci-cd,/vm/.iso/installer.iso,ro" in first
    assert fbuf(first) == "29,fbuf,tcp=127.0.0.1:5912,w=1024,h=768,wait"
    assert not any("ahci-cd" in arg for arg in later)
    assert fbuf(later) == "29,fbuf,tcp=127.0.0.1:5912,w=1024,h=768"
    # A normal start: the CD stays attached, nobody waits.
    normal = driver.prepare(uefi_vm(), vm_dir, Attachments(disk_paths=[DISK], cdrom_path=ISO), 5912)
    assert "3,ahci-cd,/vm/.iso/installer.iso,ro" in normal.config["argv"]
    assert fbuf(normal.config["argv"]) == "29,fbuf,tcp=127.0.0.1:5912,w=1024,h=768"
    assert "after_first_reboot" not in normal.config


def test_bhyve_uefi_rescue_boots_a_fresh_nvram_and_bootindex_only_where_supported(tmp_path):
    fake = FakeHost(tmp_path)
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    attached = Attachments(disk_paths=[DISK], cdrom_path=ISO, start_mode="rescue")
    prepared = fake.driver().prepare(uefi_vm(), vm_dir, attached, 5912)
    argv = prepared.config["argv"]
    # bhyve(8) "Boot ROM device backends: romfile[,varfile]": a throwaway copy of the template,
    # so the installed OS's boot entry in uefi-vars.fd cannot win over the CD at slot 3.
    assert f"bootrom,{fake.firmware}/BHYVE_UEFI_CODE.fd,{vm_dir}/rescue-vars.fd" in argv
    assert [c.argv for c in prepared.setup] == [
        ["cp", f"{fake.firmware}/BHYVE_UEFI_VARS.fd", f"{vm_dir}/rescue-vars.fd"]]
    assert "3,ahci-cd,/vm/.iso/installer.iso,ro" in argv and "-o" not in argv  # no bootindex by default
    assert "after_first_reboot" not in prepared.config  # the ISO first on every boot of the run
    # [bhyve] bootindex = true: bhyve(8) block option bootindex=, the bootorder over fw_cfg "qemu".
    indexed = fake.driver(bootindex=True).prepare(uefi_vm(), vm_dir, attached, 5912).config["argv"]
    assert "3,ahci-cd,/vm/.iso/installer.iso,ro,bootindex=1" in indexed
    assert f"4,virtio-blk,{DISK},bootindex=2" in indexed
    assert indexed[indexed.index("-o") + 1] == "lpc.fwcfg=qemu"
    # A normal start never gets bootindex (the NVRAM decides, as before).
    normal = fake.driver(bootindex=True).prepare(uefi_vm(), vm_dir, Attachments(disk_paths=[DISK], cdrom_path=ISO),
                                                 5912).config["argv"]
    assert "-o" not in normal and f"4,virtio-blk,{DISK}" in normal


def test_qemu_install_puts_the_cd_first_once_then_drops_it(tmp_path):
    driver = QemuDriver(LocalRunner(), run_dir=tmp_path / "run", accel="tcg")
    spec = make_spec("web1", cdrom="installer.iso", disks=[{"size": "1G"}], boot="uefi-csm")
    vm_dir = tmp_path / "vm"
    vm_dir.mkdir()
    config = driver.prepare(spec, vm_dir, Attachments(disk_paths=[DISK], cdrom_path=ISO, start_mode="install"),
                            None).config
    first, later = config["argv"], config["after_first_reboot"]["argv"]
    # QEMU "bootindex": the lowest index boots first.
    assert "ide-cd,bus=ahci3.0,drive=cd0,bootindex=0" in first
    assert "virtio-blk-pci,drive=disk0,serial=disk0,bootindex=1,addr=0x4" in first
    assert not any("cd0" in arg for arg in later)
    assert "virtio-blk-pci,drive=disk0,serial=disk0,bootindex=0,addr=0x4" in later
    rescue = driver.prepare(spec, vm_dir, Attachments(disk_paths=[DISK], cdrom_path=ISO, start_mode="rescue"),
                            None).config
    assert "ide-cd,bus=ahci3.0,drive=cd0,bootindex=0" in rescue["argv"] and "after_first_reboot" not in rescue
    normal = driver.prepare(spec, vm_dir, Attachments(disk_paths=[DISK], cdrom_path=ISO), None).config
    assert "ide-cd,bus=ahci3.0,drive=cd0,bootindex=1" in normal["argv"]


def test_bhyveload_install_loads_the_iso_once_then_the_disk(host: FakeHost) -> None:  # noqa: F811
    driver = host.driver()
    spec = make_spec("fbsd1", boot="bhyveload", disks=[{"size": "1G"}], graphics={"vnc": False},
                     cdrom="disc1.iso")
    vm_dir = host.vm_dir("fbsd1")
    disk, iso = vm_dir / "disk0.img", vm_dir / "disc1.iso"
    disk.write_bytes(b"")
    iso.write_bytes(b"")
    driver.start(spec, vm_dir, Attachments(disk_paths=[str(disk)], cdrom_path=str(iso), start_mode="install"))

    host.guest(spec, "reboot")  # the installer finished and rebooted: bhyve exits 0
    wait_for(lambda: driver.status(spec, vm_dir).restarts == 1 and len(host.calls("bhyve")) == 2)
    driver.force_stop(spec, vm_dir)

    loaders, runs = host.calls("bhyveload"), host.calls("bhyve")
    # bhyveload(8) -d: the ISO for the install boot (ref 2.1), the disk from the first reboot on.
    assert loaders[0][loaders[0].index("-d") + 1] == str(iso)
    assert loaders[1][loaders[1].index("-d") + 1] == str(disk)
    assert f"3,ahci-cd,{iso},ro" in runs[0] and not any("ahci-cd" in arg for arg in runs[1])
    state = (Path(vm_dir) / "supervisor.log").read_text()
    assert "the ISO is detached from now on" in state
