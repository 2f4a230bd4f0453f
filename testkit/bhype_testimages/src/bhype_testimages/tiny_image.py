"""Builds the tiny test guest: Debian's cloud kernel plus a busybox initramfs, cached.

What the guest does is driven by the kernel command line (see :data:`INIT_SCRIPT`):
``bhype.hostname=NAME`` (a cloud-init NoCloud ``cidata`` disk's ``local-hostname`` wins),
``bhype.ignore_acpi=1`` (no acpid: the ACPI power button is ignored, like a hung guest) and
``bhype.reboot_after=N`` (the guest reboots itself N seconds after it is ready). It prints
``BHYPE-GUEST-READY hostname=… acpid=on|off`` on the serial port when it is up, runs a shell
on the serial port and one on tty1 (the VGA text console seen over VNC). The fixture that
hands it to tests (``tiny_guest``) and what tests see of it (:class:`GuestImage`,
``READY_MARKER``) live in :mod:`bhype_core.testing.guest_image`.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

from bhype_core.host.runner import LocalRunner
from bhype_core.testing.guest_image import DEFAULT_CMDLINE, GuestImage
from bhype_testimages import debian, guest_cache
from bhype_testimages.initramfs import Initramfs, module_closure, module_index

KIND = "tiny-guest"
# Power button (button, evdev for acpid), disks/NICs/serial on virtio, a cidata CD on PIIX IDE
# or virtio-scsi (where the QEMU driver attaches the seed).
TINY_MODULES = (
    "button",
    "evdev",
    "virtio_pci",
    "virtio_blk",
    "virtio_net",
    "virtio_console",
    "virtio_scsi",
    "sr_mod",
    "ata_piix",
    "isofs",
)

INIT_SCRIPT = r"""#!/bin/sh
# bHype tiny test guest: set up, announce readiness on the serial port, become busybox init.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/log /mnt
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
serial=/dev/ttyS0
say() { echo "$*" > "$serial"; }

while read -r module; do
    insmod "$module" 2> /dev/null || say "bhype-init: insmod $module failed"
done < /etc/bhype/modules

arg() {  # the value of NAME=value on the kernel command line
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1="*) echo "${word#*=}"; return ;; esac
    done
}

host=$(arg bhype.hostname)
# cloud-init NoCloud: a filesystem labelled cidata holding meta-data with local-hostname.
cidata=$(findfs LABEL=cidata 2> /dev/null || findfs LABEL=CIDATA 2> /dev/null)
if [ -n "$cidata" ] && mkdir -p /run/cidata && mount -o ro "$cidata" /run/cidata 2> /dev/null; then
    name=$(sed -n 's/^local-hostname:[[:space:]]*//p' /run/cidata/meta-data 2> /dev/null \
        | head -n 1 | tr -d "\"'\r ")
    [ -n "$name" ] && host=$name
fi
host=${host:-bhype-guest}
hostname "$host"
echo "$host" > /etc/hostname

acpi=on
if [ "$(arg bhype.ignore_acpi)" = 1 ]; then
    acpi=off
else
    # busybox acpid runs /etc/acpi/PWRF/00000080 for the power button (button/power PWRF).
    acpid -c /etc/acpi
fi

delay=$(arg bhype.reboot_after)
if [ -n "$delay" ]; then
    (sleep "$delay"; say "BHYPE-GUEST-REBOOTING"; reboot) &
fi

say "BHYPE-GUEST-READY hostname=$host acpid=$acpi"
echo "BHYPE-GUEST-READY hostname=$host acpid=$acpi" > /dev/tty1
exec /sbin/init
"""

INITTAB = """\
tty1::respawn:-/bin/sh
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/etc/bhype/shutdown
"""

ACPI_POWER_HANDLER = """#!/bin/sh
echo "BHYPE-GUEST-ACPI-POWEROFF" > /dev/ttyS0
exec /sbin/poweroff
"""

SHUTDOWN_SCRIPT = """#!/bin/sh
echo "BHYPE-GUEST-STOPPING" > /dev/ttyS0
sync
"""

PROFILE = """export PATH=/sbin:/bin:/usr/sbin:/usr/bin
PS1='\\h# '
"""


def image_from_entry(entry: Path, cmdline: str) -> GuestImage:
    """The image a cache entry holds, as its manifest describes it."""
    manifest = guest_cache.read_manifest(entry)
    return GuestImage(
        kernel=entry / manifest["kernel"],
        initrd=entry / manifest["initrd"],
        cmdline=cmdline,
        kernel_version=manifest["kernel_version"],
        directory=entry,
    )


def script_digest() -> str:
    """A hash of everything the initramfs takes from this module (part of the cache key)."""
    parts = (INIT_SCRIPT, INITTAB, ACPI_POWER_HANDLER, SHUTDOWN_SCRIPT, PROFILE, "\n".join(TINY_MODULES))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def tiny_guest_image(root: Path | None = None) -> GuestImage:
    """The cached tiny guest, built first if there is none for the current init script.

    Set ``BHYPE_TEST_REBUILD=1`` to ignore the cache and build from the current Debian kernel.
    """
    entry = guest_cache.cached_entry(root or guest_cache.cache_root(), KIND, f"_{script_digest()}", _build)
    return image_from_entry(entry, DEFAULT_CMDLINE)


def _build(root: Path, kind_dir: Path, suffix: str) -> Path:
    started = time.monotonic()
    archive = debian.DebianArchive(root / "apt" / "bookworm", debian.bookworm_sources())
    with guest_cache.build_lock(root, "apt"):  # the .deb directory is shared with other guests
        abi = archive.current_cloud_kernel()
        debs = archive.download([f"linux-image-{abi}", "busybox-static"], root / "apt" / "debs")
    busybox_version = debian.deb_field(debs["busybox-static"], "Version")
    with guest_cache.staging_dir(kind_dir) as staging:
        tree = staging / "tree"
        for deb in debs.values():
            debian.extract(deb, tree)
        image = Initramfs()
        add_busybox(image, tree / "bin" / "busybox")
        modules = module_closure(module_index([tree / "lib" / "modules" / abi]), TINY_MODULES)
        add_modules(image, tree, modules)
        add_base_files(image)
        image.add_data("/etc/inittab", INITTAB)
        image.add_data("/etc/acpi/PWRF/00000080", ACPI_POWER_HANDLER, mode=0o755)
        image.add_data("/etc/bhype/shutdown", SHUTDOWN_SCRIPT, mode=0o755)
        image.add_data("/init", INIT_SCRIPT, mode=0o755)
        image.write(staging / "initrd.img", "gzip")
        (tree / "boot" / f"vmlinuz-{abi}").rename(staging / "vmlinuz")
        shutil.rmtree(tree)
        manifest = {
            "kernel": "vmlinuz",
            "initrd": "initrd.img",
            "kernel_version": abi,
            "kernel_package": debs[f"linux-image-{abi}"].name,
            "busybox_version": busybox_version,
            "script_digest": suffix.lstrip("_"),
            "build_seconds": round(time.monotonic() - started, 1),
        }
        entry = kind_dir / (guest_cache.safe_key(abi, busybox_version) + suffix)
        return guest_cache.publish(staging, entry, manifest)


def add_busybox(image: Initramfs, busybox: Path) -> None:
    """Install the static busybox as ``/bin/busybox`` with a symlink for every applet."""
    image.add_file("/bin/busybox", busybox, mode=0o755)
    applets = LocalRunner().run([str(busybox), "--list-full"], timeout=30).stdout.split()
    for applet in applets:
        if applet != "bin/busybox":
            image.add_symlink(applet, "/bin/busybox")


def add_modules(image: Initramfs, tree: Path, modules: list[Path]) -> None:
    """Copy kernel modules at their usual paths and list them, in load order, in
    ``/etc/bhype/modules`` for the init script's ``insmod`` loop."""
    paths = []
    for module in modules:
        guest_path = "/" + str(module.relative_to(tree))
        image.add_file(guest_path, module, mode=0o644)
        paths.append(guest_path)
    image.add_data("/etc/bhype/modules", "".join(path + "\n" for path in paths))


def add_base_files(image: Initramfs) -> None:
    """Device nodes the kernel needs before devtmpfs, mount points and a root account."""
    image.add_char_device("/dev/console", 5, 1)
    image.add_char_device("/dev/null", 1, 3, mode=0o666)
    for directory in ("/proc", "/sys", "/run", "/tmp", "/mnt", "/root", "/var/log", "/usr/sbin"):
        image.add_dir(directory)
    image.add_data("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    image.add_data("/etc/group", "root:x:0:\n")
    image.add_data("/etc/shells", "/bin/sh\n")
    image.add_data("/etc/profile", PROFILE)
