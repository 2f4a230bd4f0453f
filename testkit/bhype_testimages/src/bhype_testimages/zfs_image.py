"""The ZFS test host image: Debian's cloud kernel plus an initramfs with real OpenZFS, cached.

The "small and fast" recipe of the Linux test-host reference: ``spl.ko``/``zfs.ko`` are
compiled from Debian's ``zfs-dkms`` source (bookworm-backports ``contrib``) with the machine's
gcc against the cloud kernel's extracted headers, stripped, and packed with busybox, the
``zfs``/``zpool`` tools and their libraries, ``systemd-udevd`` (whole-disk ``zpool create``
waits for udev) and dropbear into a zstd initramfs. The build takes minutes; the cache entry
is keyed on the kernel ABI, the zfs version and a hash of the init script.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

from bhype_core.host.runner import LocalRunner
from bhype_core.testing.guest_image import GuestImage
from bhype_testimages import debian, guest_cache
from bhype_testimages.initramfs import Initramfs, library_closure, module_closure, module_index
from bhype_testimages.tiny_image import add_base_files, add_busybox, add_modules, image_from_entry

KIND = "zfs-guest"
DEFAULT_CMDLINE = "console=ttyS0 panic=-1"
KERNEL_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "spl", "zfs")
USERLAND_PACKAGES = ("zfsutils-linux", "udev", "dropbear-bin")
BINARIES = (
    "sbin/zfs",
    "sbin/zpool",
    "sbin/zdb",
    "sbin/zstream",
    "bin/udevadm",
    "lib/udev/zvol_id",
    "lib/udev/ata_id",
    "lib/udev/scsi_id",
    "usr/sbin/dropbear",
    "usr/bin/dropbearkey",
)
# Block-device rules only: by-id names (virtio-<serial>), zvol links, ZFS's own rules.
UDEV_RULES = (
    "50-udev-default.rules",
    "60-block.rules",
    "60-persistent-storage.rules",
    "60-zvol.rules",
    "69-vdev.rules",
    "90-zfs.rules",
)
LIBRARY_DIRS = ("lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu")

INIT_SCRIPT = r"""#!/bin/sh
# bHype ZFS test host: modules, udev, network, dropbear, then busybox init.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /run /tmp /var/log /var/run /root/.ssh /etc/dropbear
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
serial=/dev/ttyS0
say() { echo "$*" > "$serial"; }
arg() {
    for word in $(cat /proc/cmdline); do
        case "$word" in "$1="*) echo "${word#*=}"; return ;; esac
    done
}

while read -r module; do
    insmod "$module" || say "bhype-init: insmod $module failed"
done < /etc/bhype/modules

name=$(arg bhype.hostname)
hostname "${name:-zfs-host}"

# libzfs waits for partitions in udev's database: without udevd, whole-disk zpool create
# fails with "failed to detect device partitions".
/lib/systemd/systemd-udevd --daemon
udevadm trigger --action=add
udevadm settle --timeout=60

# QEMU user networking (slirp): the guest is always 10.0.2.15/24, gateway 10.0.2.2.
ip link set lo up
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2

# The test's throwaway public key arrives on the command line as TYPE:BASE64.
key=$(arg bhype.ssh_key)
[ -n "$key" ] && echo "${key%%:*} ${key#*:}" > /root/.ssh/authorized_keys
chmod 700 /root/.ssh
chmod 600 /root/.ssh/authorized_keys 2> /dev/null
dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key > /dev/null 2>&1
dropbear -r /etc/dropbear/dropbear_ed25519_host_key -p 22 -s

say "BHYPE-ZFS-READY zfs=$(cat /sys/module/zfs/version 2> /dev/null)"
exec /sbin/init
"""

INITTAB = """\
ttyS0::respawn:-/bin/sh
::shutdown:/bin/sync
"""


def script_digest() -> str:
    """A hash of what this module puts into the image (part of the cache key)."""
    parts = (INIT_SCRIPT, INITTAB, *KERNEL_MODULES, *USERLAND_PACKAGES, *BINARIES, *UDEV_RULES)
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:12]


def zfs_guest_image(root: Path | None = None) -> GuestImage:
    """The cached ZFS test host image, built first (several minutes) if there is none.

    Set ``BHYPE_TEST_REBUILD=1`` to build again from the current Debian packages.
    """
    entry = guest_cache.cached_entry(root or guest_cache.cache_root(), KIND, f"_{script_digest()}", build)
    return image_from_entry(entry, DEFAULT_CMDLINE)


def build(root: Path, kind_dir: Path, suffix: str) -> Path:
    """Download, compile and pack the image into a new cache entry; return the entry."""
    timings: dict[str, float] = {}
    mark = time.monotonic()
    sources = debian.bookworm_sources(backports_contrib=True)
    archive = debian.DebianArchive(root / "apt" / "bookworm-zfs", sources)
    with guest_cache.build_lock(root, "apt"):  # the .deb directory is shared with other guests
        abi = archive.current_cloud_kernel()
        zfs_version = archive.show("zfs-dkms")["Version"]
        headers = f"linux-headers-{abi}"
        kbuild = ("linux-headers-", "linux-kbuild-")
        support = [dep for dep in archive.depends(headers) if dep.startswith(kbuild)]
        packages = [f"linux-image-{abi}", headers, *support, "zfs-dkms", "busybox-static"]
        debs = archive.download(packages, root / "apt" / "debs")
        userland = archive.download_closure(list(USERLAND_PACKAGES))
    timings["download"] = time.monotonic() - mark

    with guest_cache.staging_dir(kind_dir) as staging:
        mark = time.monotonic()
        tree, rootfs = staging / "build", staging / "rootfs"
        for deb in debs.values():
            debian.extract(deb, tree)
        for deb in userland:
            debian.extract(deb, rootfs)
        timings["extract"] = time.monotonic() - mark

        mark = time.monotonic()
        modules = compile_zfs_modules(tree, abi, staging / "modules")
        timings["compile"] = time.monotonic() - mark

        mark = time.monotonic()
        image = Initramfs()
        add_busybox(image, tree / "bin" / "busybox")
        index = module_index([tree / "lib" / "modules" / abi, modules])
        add_modules(image, tree, _relocate(module_closure(index, KERNEL_MODULES), modules, tree, abi))
        add_base_files(image)
        add_userland(image, rootfs)
        image.add_data("/etc/inittab", INITTAB)
        image.add_data("/init", INIT_SCRIPT, mode=0o755)
        image.write(staging / "initrd.img", "zstd")
        (tree / "boot" / f"vmlinuz-{abi}").rename(staging / "vmlinuz")
        shutil.rmtree(tree)
        shutil.rmtree(rootfs)
        shutil.rmtree(modules)
        timings["pack"] = time.monotonic() - mark

        manifest = {
            "kernel": "vmlinuz",
            "initrd": "initrd.img",
            "kernel_version": abi,
            "zfs_version": zfs_version,
            "packages": sorted(path.name for path in [*debs.values(), *userland]),
            "script_digest": suffix.lstrip("_"),
            "build_seconds": {name: round(value, 1) for name, value in timings.items()},
        }
        entry = kind_dir / (guest_cache.safe_key(abi, "zfs" + zfs_version) + suffix)
        return guest_cache.publish(staging, entry, manifest)


def compile_zfs_modules(tree: Path, abi: str, out: Path) -> Path:
    """Build ``spl.ko`` and ``zfs.ko`` from the extracted ``zfs-dkms`` source against the
    extracted headers (the configure flags of its ``dkms.conf``), strip their debug info
    (zfs.ko 94 MB -> 9 MB) and put them in ``out``.

    :raises CommandError: configure or make failed (the error carries the output tail).
    """
    sources = sorted((tree / "usr" / "src").glob("zfs-*"))
    if not sources:
        raise LookupError("zfs-dkms did not provide /usr/src/zfs-*")
    source = sources[-1]
    common = _headers_common(tree, abi)
    build_dir = tree / "usr" / "src" / f"linux-headers-{abi}"
    # The arch headers' Makefile includes the common tree by absolute path (/usr/src/...):
    # point it at the extracted copy.
    (build_dir / "Makefile").write_text(f"include {common}/Makefile\n")
    runner = LocalRunner(default_timeout=3600)
    configure = [
        "./configure",
        "--disable-dependency-tracking",
        "--prefix=/usr",
        "--with-config=kernel",
        f"--with-linux={common}",
        f"--with-linux-obj={build_dir}",
    ]
    runner.run(configure, cwd=source)
    runner.run(["make", f"-j{os.cpu_count() or 2}"], cwd=source)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("spl.ko", "zfs.ko"):
        shutil.copy(source / "module" / name, out / name)
        runner.run(["strip", "--strip-debug", str(out / name)], timeout=300)
    return out


def _headers_common(tree: Path, abi: str) -> Path:
    makefile = (tree / "usr" / "src" / f"linux-headers-{abi}" / "Makefile").read_text()
    match = re.search(r"/usr/src/(linux-headers-[^/\s]+)/Makefile", makefile)
    if match:
        return tree / "usr" / "src" / match.group(1)
    candidates = sorted((tree / "usr" / "src").glob("linux-headers-*-common"))
    if not candidates:
        raise LookupError(f"no linux-headers-*-common tree next to linux-headers-{abi}")
    return candidates[-1]


def _relocate(modules: list[Path], built: Path, tree: Path, abi: str) -> list[Path]:
    """Move freshly built modules to ``lib/modules/<abi>/extra`` inside ``tree`` (where
    DKMS would install them) so every module has a path relative to ``tree``."""
    extra = tree / "lib" / "modules" / abi / "extra"
    extra.mkdir(parents=True, exist_ok=True)
    placed = []
    for module in modules:
        if built in module.parents:
            target = extra / module.name
            shutil.copy(module, target)
            module = target
        placed.append(module)
    return placed


def add_userland(image: Initramfs, rootfs: Path) -> None:
    """The ZFS tools, udev, dropbear and every library they load, at their Debian paths."""
    binaries = [rootfs / path for path in BINARIES]
    for binary in binaries:
        image.add_file(binary.relative_to(rootfs).as_posix(), binary, mode=0o755)
    libraries = library_closure(rootfs, binaries, LIBRARY_DIRS)
    # glibc dlopen()s libgcc_s for thread cancellation (zfs send | recv); ldd does not show it.
    libraries.append(rootfs / "lib" / "x86_64-linux-gnu" / "libgcc_s.so.1")
    for library in libraries:
        image.add_file(library.relative_to(rootfs).as_posix(), library, mode=0o755)
    loader = "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    image.add_file(loader, rootfs / loader)
    image.add_symlink("lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    image.add_symlink("lib/systemd/systemd-udevd", "/bin/udevadm")
    image.add_symlink("sbin/udevadm", "/bin/udevadm")
    for rule in UDEV_RULES:
        image.add_file(f"lib/udev/rules.d/{rule}", rootfs / "lib" / "udev" / "rules.d" / rule, mode=0o644)
    image.add_symlink("etc/mtab", "/proc/self/mounts")
    image.add_dir("etc/zfs")
    image.add_dir("root/.ssh", mode=0o700)
