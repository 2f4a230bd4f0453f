"""A running ZFS test host: the ZFS image booted in QEMU with blank disks, reached over SSH.

The ``zfs_host`` fixture boots one guest per test session (TCG, ``-cpu qemu64,+rdrand`` so
the first ``zpool create`` does not wait for entropy), with raw disk files on
``virtio-blk-pci`` devices whose ``serial=`` gives stable ``/dev/disk/by-id/virtio-<serial>``
names, and dropbear forwarded to ``127.0.0.1:<free port>`` (QEMU user networking with
``restrict=on``: the guest reaches nothing but the forwarded port). Commands go through the
foundation's :class:`~bhype_core.host.ssh.SSHRunner` with a throwaway key.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bhype_core.errors import CommandError
from bhype_core.host.runner import LocalRunner
from bhype_core.host.ssh import SSHRunner
from bhype_core.testing import guest_builds
from bhype_core.testing.guest_image import GuestImage, build_guest
from bhype_core.testing.ports import free_port
from bhype_core.testing.qemu_guest import GuestFiles, QemuGuest, qemu_argv, short_workdir

# What the image's init script prints on the serial port once SSH is up (the image is built by
# bhype_testimages.zfs_image, a dev/test-only distribution).
READY_MARKER = "BHYPE-ZFS-READY"

DISK_SERIALS = ("bhype-disk0", "bhype-disk1", "bhype-disk2", "bhype-disk3")
DISK_SIZE = 512 * 1024 * 1024
# The guest's host key is new on every boot: never record it anywhere.
SSH_OPTIONS = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null")


@dataclass
class ZfsHost:
    """How to reach the ZFS test host, in the terms of the ``[runner]`` settings.

    ``target``/``identity``/``options`` map to ``runner.target``, ``runner.ssh_identity`` and
    ``runner.ssh_options``; ``disks`` are the virtio serial numbers of its blank disks.
    """

    host: str
    port: int
    user: str
    identity: Path
    options: tuple[str, ...]
    disks: tuple[str, ...]
    guest: QemuGuest = field(repr=False)
    _runner: SSHRunner | None = field(default=None, repr=False)

    @property
    def target(self) -> str:
        """``ssh://root@127.0.0.1:PORT``, the form ``runner.target`` takes."""
        return f"ssh://{self.user}@{self.host}:{self.port}"

    def disk_path(self, serial: str) -> str:
        """The guest's stable path for a disk (udev's ``60-persistent-storage.rules``)."""
        return f"/dev/disk/by-id/virtio-{serial}"

    def runner(self, default_timeout: float = 120.0) -> SSHRunner:
        """A new :class:`SSHRunner` for this host (callers close it)."""
        return SSHRunner(
            self.host,
            port=self.port,
            user=self.user,
            identity=self.identity,
            options=self.options,
            default_timeout=default_timeout,
        )

    @property
    def shared_runner(self) -> SSHRunner:
        """One runner shared by the session (its SSH control connection stays open)."""
        if self._runner is None:
            self._runner = self.runner()
        return self._runner

    def reset(self) -> None:
        """Destroy every pool and wipe every disk, so the next test starts from blank disks."""
        run = self.shared_runner.run
        for pool in run(["zpool", "list", "-H", "-o", "name"]).stdout.split():
            run(["zpool", "destroy", "-f", pool])
        for serial in self.disks:
            disk = self.disk_path(serial)
            size_mib = int(run(["blockdev", "--getsize64", disk]).stdout) // 2**20
            # ZFS keeps two labels at the start and two at the end of a vdev; a whole-disk
            # vdev is partition 1, which ends before the 8 MiB partition 9. Zeroing 4 MiB at the
            # start and 16 MiB at the end removes all four labels and both GPT copies.
            # (Not `zpool labelclear`: it exits 255 on a blank disk, which ssh reserves.)
            zero = ["dd", "if=/dev/zero", f"of={disk}", "bs=1M", "conv=fsync"]
            run([*zero, "count=4"])
            run([*zero, "count=16", f"seek={size_mib - 16}"])
            run(["blockdev", "--rereadpt", disk], check=False)
        run(["udevadm", "settle"])

    def close(self) -> None:
        """Close the shared runner and stop the guest."""
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        self.guest.stop()


def make_key(directory: Path) -> tuple[Path, str]:
    """A throwaway ed25519 key pair; returns the private key path and ``TYPE:BASE64`` of the
    public key (the form the guest's init script reads from ``bhype.ssh_key=``)."""
    key = directory / "id_ed25519"
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bhype-test", "-f", str(key)]
    LocalRunner().run(argv, timeout=60)
    kind, blob = key.with_suffix(".pub").read_text().split()[:2]
    return key, f"{kind}:{blob}"


def zfs_guest_argv(
    files: GuestFiles, image: GuestImage, disks: list[tuple[str, Path]], port: int, ssh_key: str
) -> list[str]:
    """The QEMU argv for the ZFS host: 2 vCPUs, 2 GiB, disks with serials, SSH forwarded."""
    extra = [
        "-netdev", f"user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22",
        "-device", "virtio-net-pci,netdev=net0",
    ]  # fmt: skip
    for index, (serial, path) in enumerate(disks):
        # QEMU 7.2 rejects serial= on -drive if=virtio: it belongs on the device.
        extra += ["-drive", f"file={path},format=raw,if=none,id=disk{index},cache=unsafe"]
        extra += ["-device", f"virtio-blk-pci,drive=disk{index},serial={serial}"]
    append = image.append(f"bhype.ssh_key={ssh_key}")
    return qemu_argv(
        files, image.kernel, image.initrd, append, memory_mb=2048, cpus=2, cpu="qemu64,+rdrand",
        no_reboot=True, extra=extra,
    )  # fmt: skip


def boot_zfs_host(image: GuestImage, workdir: Path, boot_timeout: float = 600.0) -> ZfsHost:
    """Boot the ZFS host with fresh blank disks and wait until SSH answers.

    :raises AssertionError: the guest did not come up (with its serial log tail).
    """
    key, public = make_key(workdir)
    disks = []
    for serial in DISK_SERIALS:
        path = workdir / f"{serial}.raw"
        with path.open("wb") as handle:
            handle.truncate(DISK_SIZE)  # sparse
        disks.append((serial, path))
    for attempt in range(3):
        port = free_port()
        files = GuestFiles(workdir / f"boot{attempt}")
        guest = QemuGuest.start(files, zfs_guest_argv(files, image, disks, port, public))
        try:
            guest.wait_for_serial(READY_MARKER, timeout=boot_timeout)
            break
        except AssertionError:
            guest.stop()
            # Another process took the port between free_port() and QEMU's bind: try again.
            if "host forwarding" not in guest.qemu_output() or attempt == 2:
                raise
    host = ZfsHost("127.0.0.1", port, "root", key, SSH_OPTIONS, DISK_SERIALS, guest)
    _wait_for_ssh(host, timeout=120)
    return host


def _wait_for_ssh(host: ZfsHost, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            host.shared_runner.run(["true"], timeout=30)
            return
        except CommandError as exc:
            if time.monotonic() > deadline or host.guest.process.poll() is not None:
                raise AssertionError(f"SSH to the ZFS host never answered: {exc}") from exc
            time.sleep(0.5)


@pytest.fixture(scope="session")
def zfs_host() -> Iterator[ZfsHost]:
    """A booted ZFS test host for the whole session (see :class:`ZfsHost`).

    The image is built on first use (5-10 minutes, by ``bhype_testimages.zfs_image``) and
    cached outside the repository. A failed build fails the tests, unless the run says
    ``--without guests``.
    """
    image = build_guest(*guest_builds.ZFS)
    with short_workdir("bhype-zfs-") as workdir:
        host = boot_zfs_host(image, workdir)
        try:
            yield host
        finally:
            host.close()


@pytest.fixture
def fresh_zfs_host(zfs_host: ZfsHost) -> ZfsHost:
    """The session's ZFS host with no pools and blank disks."""
    zfs_host.reset()
    return zfs_host


def reap_senders(runner: Any, *starts: str) -> None:
    """End (by pid) what a stopped pipeline left in the guest: a ``zfs send`` whose receiver
    refused the stream, a receive whose sender was cancelled (and the throttle feeding it).
    The guest's dropbear keeps such a channel open when the local ssh side is gone, where a
    real host's local ``zfs send`` dies of the broken pipe and a remote ``zfs receive`` gets
    end-of-file; either way the receive is interrupted, which is what is tested."""
    starts = starts or ("zfs send",)
    for line in runner.run(["ps", "-o", "pid,args"]).stdout.splitlines():
        pid, _, args = line.strip().partition(" ")
        if pid.isdigit() and args.startswith(starts):
            runner.run(["kill", pid], check=False)


def guest_sha256(runner: Any, path: str) -> str:
    """The sha256 of ``path`` in the guest (a zvol device: after udev has settled)."""
    runner.run(["udevadm", "settle"], check=False)
    return runner.run(["sha256sum", path]).stdout.split()[0]
