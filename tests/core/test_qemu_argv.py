"""The qemu-system-x86_64 argv builder: golden checks plus real QEMU accepting what it builds.

Expectations follow qemu(1), ``qemu-system-x86_64 -device <model>,help`` on QEMU 7.2 and
shared/reference/linux-test-host.md; the PCI addresses mirror the bhyve slot layout.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from bhype_core.drivers.qemu_argv import (
    QemuResources,
    disk_serial,
    exit_status_for_shutdown,
    find_ovmf,
    qemu_argv,
)
from bhype_core.spec import validate_spec
from bhype_core.templates import load_templates
from bhype_core.testing.parts import require_program

UUID = "6a0c9f0e-2b3d-4c55-9a1e-0c2d3e4f5a6b"
MAC = "58:9c:fc:0a:1b:2c"


def has_run(argv: list[str], part: list[str]) -> bool:
    return any(argv[i : i + len(part)] == part for i in range(len(argv) - len(part) + 1))


def test_kernel_boot_test_guest():
    # The shape of the tiny test guest (reference linux-test-host: TCG, direct kernel boot,
    # console=ttyS0 console=tty0, -vga std, QMP on a UNIX socket, VNC on a UNIX socket).
    spec = validate_spec(
        {
            "name": "tiny", "uuid": UUID, "memory": "256M",
            "boot": {"mode": "grub", "kernel": "/cache/vmlinuz", "initrd": "/cache/initrd.gz",
                     "cmdline": "console=ttyS0 console=tty0"},
            "nics": [{"mac": MAC}], "graphics": {"vnc": True, "password": ""},
        }
    )  # fmt: skip
    res = QemuResources(
        qmp_socket="/run/t/qmp.sock", vnc_socket="/run/t/vnc.sock", serial_socket="/run/t/serial.sock",
        serial_log="/run/t/serial.log", hostfwd={0: ["tcp:127.0.0.1:2222-:22"]},
    )  # fmt: skip
    assert qemu_argv(spec, res) == [
        "qemu-system-x86_64", "-name", "bhype-tiny", "-uuid", UUID,
        "-nodefaults", "-no-user-config", "-machine", "q35", "-accel", "tcg",
        "-smp", "cpus=1,sockets=1,cores=1,threads=1", "-m", "256M", "-rtc", "base=utc",
        # -no-reboot: a guest reboot ends the process like bhyve's exit status 0 (reference 1.7)
        "-no-reboot", "-display", "none",
        "-qmp", "unix:/run/t/qmp.sock,server=on,wait=off",
        "-kernel", "/cache/vmlinuz", "-initrd", "/cache/initrd.gz", "-append", "console=ttyS0 console=tty0",
        "-netdev", "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22",
        "-device", f"virtio-net-pci,netdev=net0,mac={MAC},addr=0x14",  # bhyve NIC slot 20
        "-object", "rng-random,id=rng0,filename=/dev/urandom",
        "-device", "virtio-rng-pci,rng=rng0,addr=0x1c",  # bhyve slot 28
        "-device", "VGA,addr=0x1d,xres=1024,yres=768",  # the -vga std device at the fbuf slot 29
        "-vnc", "unix:/run/t/vnc.sock",  # empty password: no password=on
        "-device", "qemu-xhci,id=xhci,addr=0x1e", "-device", "usb-tablet,bus=xhci.0",
        "-chardev", "socket,id=serial0,path=/run/t/serial.sock,server=on,wait=off,logfile=/run/t/serial.log",
        "-serial", "chardev:serial0",
    ]  # fmt: skip


def test_kernel_cmdline_gets_a_serial_console_like_grub_bhyve():
    spec = validate_spec({"name": "k", "boot": {"mode": "grub", "kernel": "/k", "cmdline": "quiet"}})
    assert has_run(qemu_argv(spec, QemuResources(qmp_socket="/q")), ["-append", "console=ttyS0 quiet"])


def test_windows_uefi_with_ahci_e1000_tap_and_tcp_vnc():
    spec = load_templates().build_spec(
        "windows10",
        {
            "name": "win",
            "uuid": UUID,
            "nics": [{"mac": MAC}],
            "cdrom": "win.iso",
            "graphics": {"password": "pw"},
        },
    )
    res = QemuResources(
        qmp_socket="/q", disk_paths=["/vm/win/disk0.img"], taps=["tap3"], vnc_port=5907,
        cdrom_path="/iso/win,10.iso", firmware_code="/usr/share/OVMF/OVMF_CODE_4M.fd",
        firmware_vars="/vm/win/vars.fd",
    )  # fmt: skip
    argv = qemu_argv(spec, res)
    assert has_run(argv, ["-rtc", "base=localtime"])  # Windows keeps local time (bhyve: no -u)
    # OVMF as two pflash units, the code read-only (qemu(1) -drive if=pflash)
    code = "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd"
    assert has_run(argv, ["-drive", code, "-drive", "if=pflash,format=raw,unit=1,file=/vm/win/vars.fd"])
    # CD at slot 3 on its own AHCI controller; a comma in a file name is doubled (qemu(1)).
    assert has_run(argv, ["-drive", "if=none,id=cd0,media=cdrom,readonly=on,format=raw,file=/iso/win,,10.iso",
                          "-device", "ahci,id=ahci3,addr=0x3",
                          "-device", "ide-cd,bus=ahci3.0,drive=cd0,bootindex=1"])  # fmt: skip
    # ahci-hd disk at slot 4, serial= on the device, boots before the CD.
    assert has_run(argv, ["-device", "ahci,id=ahci4,addr=0x4",
                          "-device", "ide-hd,bus=ahci4.0,drive=disk0,serial=disk0,bootindex=0"])  # fmt: skip
    assert has_run(argv, ["-netdev", "tap,id=net0,ifname=tap3,script=no,downscript=no",
                          "-device", f"e1000,netdev=net0,mac={MAC},addr=0x14"])  # fmt: skip
    assert "virtio-rng-pci,rng=rng0,addr=0x1c" not in argv  # the template turns rng off
    # VNC display 7 = port 5907 on loopback; the password is set later over QMP.
    assert has_run(argv, ["-vnc", "127.0.0.1:7,password=on"])


def test_cloud_init_seed_is_a_virtio_scsi_cd_at_the_bhyve_seed_slot():
    spec = validate_spec({"name": "c", "boot": "uefi-csm", "cloud_init": {}, "disks": [{"size": "1G"}]})
    argv = qemu_argv(spec, QemuResources(qmp_socket="/q", disk_paths=["/d"], cloud_init_iso="/vm/c/cidata.iso"))
    # A CD to the guest (scsi-cd) on virtio-scsi at slot 2 (bhyve's seed slot): cloud kernels
    # without AHCI read it, and the first virtio-blk disk stays the guest's first disk.
    assert has_run(argv, ["-drive", "if=none,id=seed,media=cdrom,readonly=on,format=raw,file=/vm/c/cidata.iso",
                          "-device", "virtio-scsi-pci,id=seedscsi,addr=0x2",
                          "-device", "scsi-cd,bus=seedscsi.0,drive=seed"])  # fmt: skip
    assert "bootindex" not in "".join(a for a in argv if "seed" in a)  # never a boot device


def test_nvme_and_virtio_disks_carry_serial_and_block_size():
    spec = validate_spec(
        {
            "name": "d",
            "boot": "uefi-csm",
            "disks": [
                {"size": "1G", "volume": "a-rather-long-volume-name"},
                {"size": "1G", "bus": "nvme", "sectorsize": 4096},
            ],
        }
    )
    argv = qemu_argv(spec, QemuResources(qmp_socket="/q", disk_paths=["/a", "/b"]))
    serial = disk_serial("a-rather-long-volume-name")
    assert len(serial) <= 20
    # QEMU 7.2 rejects serial= on -drive if=virtio: it belongs on -device virtio-blk-pci.
    assert f"virtio-blk-pci,drive=disk0,serial={serial},bootindex=0,addr=0x4" in argv
    assert "nvme,drive=disk1,serial=disk1,logical_block_size=4096,physical_block_size=4096,addr=0x5" in argv
    assert "if=none,id=disk0,format=raw,discard=unmap,file=/a" in argv


def test_resource_errors():
    spec = validate_spec({"name": "u", "nics": [{}]})
    with pytest.raises(ValueError, match="OVMF"):
        qemu_argv(spec, QemuResources(qmp_socket="/q"))
    bios = validate_spec({"name": "u", "boot": "uefi-csm", "nics": [{}]})
    with pytest.raises(ValueError, match="127.0.0.1"):  # never forward from other addresses
        qemu_argv(bios, QemuResources(qmp_socket="/q", hostfwd={0: ["tcp:0.0.0.0:2222-:22"]}))
    with pytest.raises(ValueError, match="not a user-networking NIC"):
        qemu_argv(
            bios, QemuResources(qmp_socket="/q", taps=["tap0"], hostfwd={0: ["tcp:127.0.0.1:2222-:22"]})
        )
    with pytest.raises(ValueError, match="vnc"):
        qemu_argv(
            validate_spec({"name": "v", "boot": "uefi-csm", "graphics": {"vnc": True}}),
            QemuResources(qmp_socket="/q", vnc_port=22),
        )


def test_legacy_modes_use_seabios_and_extras_come_last():
    # uefi-csm / bhyveload / grub-from-disk: no pflash, no -kernel (SeaBIOS boots the disk).
    for mode in ("uefi-csm", "bhyveload", "grub"):
        spec = validate_spec(
            {"name": "l", "boot": mode, "disks": [{"size": "1G"}], "extra": {"qemu": ["-cpu", "max"]}}
        )
        argv = qemu_argv(spec, QemuResources(qmp_socket="/q", disk_paths=["/d"], start_paused=True))
        assert not any("pflash" in a for a in argv) and "-kernel" not in argv
        assert argv[-3:] == ["-S", "-cpu", "max"]


def test_exit_status_for_shutdown_reasons():
    # QMP SHUTDOWN "reason" -> bhyve(8) EXIT STATUS: 0 rebooted, 1 powered off, 3 triple fault, 4 error
    assert exit_status_for_shutdown("guest-reset") == 0
    assert exit_status_for_shutdown("guest-shutdown") == 1
    assert exit_status_for_shutdown("host-qmp-quit") == 1
    assert exit_status_for_shutdown("guest-panic") == 3
    assert exit_status_for_shutdown("host-error") == 4


# --- real QEMU -----------------------------------------------------------------------------


class Qmp:
    """Minimal QMP client: one JSON object per line (qemu docs "QMP protocol")."""

    def __init__(self, path: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(timeout)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        self.stream = self.sock.makefile("rw")
        assert "QMP" in json.loads(self.stream.readline())
        self.call("qmp_capabilities")

    def call(self, command: str, **arguments):
        self.stream.write(json.dumps({"execute": command, "arguments": arguments}) + "\n")
        self.stream.flush()
        while True:
            reply = json.loads(self.stream.readline())
            if "return" in reply or "error" in reply:
                return reply
            # asynchronous events (e.g. SHUTDOWN after quit) are skipped


@pytest.fixture
def workdir():
    # Short path: UNIX socket names are limited to 108 bytes.
    path = Path(tempfile.mkdtemp(prefix="bq", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def free_vnc_port() -> int:
    for port in range(5990, 6100):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.fail("no free port for VNC between 5990 and 6099")


def run_paused(argv: list[str], qmp_path: Path):
    """Start QEMU, return (process, Qmp); the caller quits it."""
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        return process, Qmp(str(qmp_path))
    except OSError:
        process.kill()
        out, err = process.communicate(timeout=10)
        pytest.fail(f"QEMU did not start (exit {process.returncode}): {err}")


def quit_and_wait(process: subprocess.Popen, qmp: Qmp) -> None:
    qmp.call("quit")
    try:
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""


@pytest.mark.guest
@pytest.mark.parametrize("template", sorted(load_templates().names()))
def test_qemu_accepts_the_argv_of_every_template(workdir, template):
    """QEMU starts (paused, TCG) with each template's hardware; QMP shows the bhyve slot layout."""
    require_program("qemu-system-x86_64", "qemu-system-x86", part="guests")
    ovmf = find_ovmf()
    assert ovmf, "Debian's ovmf package provides /usr/share/OVMF"
    spec = load_templates().build_spec(template, {"name": "q", "disks": [{"size": "64M"}], "cdrom": "x.iso"})
    disk = workdir / "disk0.img"
    disk.write_bytes(b"")
    os.truncate(disk, 64 << 20)
    iso = workdir / "x.iso"
    iso.write_bytes(b"\0" * 2048)
    shutil.copy(ovmf[1], workdir / "vars.fd")
    res = QemuResources(
        qmp_socket=str(workdir / "qmp"), disk_paths=[str(disk)], cdrom_path=str(iso),
        vnc_socket=str(workdir / "vnc"), serial_socket=str(workdir / "serial"),
        serial_log=str(workdir / "serial.log"),
        firmware_code=ovmf[0], firmware_vars=str(workdir / "vars.fd"), start_paused=True,
    )  # fmt: skip
    process, qmp = run_paused(qemu_argv(spec, res), workdir / "qmp")
    try:
        assert qmp.call("query-status")["return"]["status"] == "prelaunch"  # -S: CPUs never ran
        slots = {d["slot"] for bus in qmp.call("query-pci")["return"] for d in bus["devices"]}
        expected = {0, 3, 4, 20, 31}  # host bridge, CD, disk0, nic0, q35's ICH9 functions
        if spec.rng:
            expected.add(28)
        if spec.graphics.vnc:
            expected |= {29, 30}
        assert slots == expected
        assert qmp.call("query-name")["return"]["name"] == "bhype-q"
        assert qmp.call("query-vnc")["return"]["enabled"] is spec.graphics.vnc
    finally:
        quit_and_wait(process, qmp)


@pytest.mark.guest
def test_qemu_vnc_listens_on_loopback_port_with_password(workdir):
    require_program("qemu-system-x86_64", "qemu-system-x86", part="guests")
    spec = validate_spec(
        {"name": "v", "boot": "uefi-csm", "memory": "64M", "graphics": {"vnc": True}, "nics": [{}]}
    )
    port = free_vnc_port()
    res = QemuResources(
        qmp_socket=str(workdir / "qmp"),
        vnc_port=port,
        hostfwd={0: ["tcp:127.0.0.1:0-:22"]},
        start_paused=True,
    )
    process, qmp = run_paused(qemu_argv(spec, res), workdir / "qmp")
    try:
        vnc = qmp.call("query-vnc")["return"]
        assert vnc["host"] == "127.0.0.1" and vnc["service"] == str(port) and vnc["auth"] == "vnc"
        assert qmp.call("set_password", protocol="vnc", password=spec.graphics.password) == {"return": {}}
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            assert conn.recv(12) == b"RFB 003.008\n"  # RFB handshake: the server speaks first
    finally:
        quit_and_wait(process, qmp)


def test_a_boot_from_the_cd_with_a_host_kernel_leaves_bootindex_0_to_the_kernel():
    # QEMU refuses two devices with one bootindex, and -kernel's option ROM takes 0: an install
    # boot of a host-kernel guest keeps the CD at 1 (found by the real install test).
    spec = validate_spec({"name": "k", "cdrom": "x.iso",
                          "boot": {"mode": "grub", "kernel": "/k/vmlinuz", "initrd": "/k/initrd"}})
    argv = qemu_argv(spec, QemuResources(qmp_socket="/q", cdrom_path="/iso/x.iso", boot_cd=True))
    assert "ide-cd,bus=ahci3.0,drive=cd0,bootindex=1" in argv
