"""The tiny test guest as tests see it: :class:`GuestImage`, its markers and the ``tiny_guest`` fixture.

The image itself (Debian's cloud kernel plus a busybox initramfs) is built by the dev/test-only
distribution ``bhype-testimages`` (:mod:`bhype_testimages.tiny_image`), which is not part of
the production wheel; the fixture imports it on first use. What the guest does is driven by the
kernel command line: ``bhype.hostname=NAME`` (a cloud-init NoCloud ``cidata`` disk's
``local-hostname`` wins), ``bhype.ignore_acpi=1`` (the ACPI power button is ignored, like a hung
guest) and ``bhype.reboot_after=N``. It prints ``BHYPE-GUEST-READY hostname=… acpid=on|off`` on
the serial port when it is up, runs a shell on the serial port and one on tty1 (VGA over VNC).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bhype_core.testing import guest_builds
from bhype_core.testing.parts import excluded_parts, missing

READY_MARKER = "BHYPE-GUEST-READY"
# "console=ttyS0 console=tty0": kernel messages on both; the last console= gets /dev/console.
DEFAULT_CMDLINE = "console=ttyS0 console=tty0"


@dataclass(frozen=True)
class GuestImage:
    """A bootable kernel + initramfs pair and the command line to boot it with."""

    kernel: Path
    initrd: Path
    cmdline: str
    kernel_version: str
    directory: Path

    def append(self, *extra: str) -> str:
        """The recommended command line plus ``extra`` words (``bhype.hostname=web1``)."""
        return " ".join((self.cmdline, *extra))

    def template_toml(self, title: str = "bHype tiny test guest", kernel: str | None = None) -> str:
        """An admin VM template booting this image: grub mode with a host kernel (QEMU
        ``-kernel``; grub-bhyve ``-r host`` on FreeBSD), VNC and serial, one NIC on user
        networking, no disk. ``kernel`` replaces the image's (a missing one: a VM that fails)."""
        return f"""\
title = "{title}"
os_type = "linux"
notes = "busybox initramfs; prints {READY_MARKER} on the serial port"

[spec]
cpus = 1
memory = "256M"
disks = []
nics = [{{}}]

[spec.boot]
mode = "grub"
kernel = "{kernel or self.kernel}"
initrd = "{self.initrd}"
cmdline = "{self.cmdline}"

[spec.graphics]
vnc = true
resolution = "800x600"
"""


def build_guest(what: str, builder: str) -> GuestImage:
    """The image ``bhype_testimages.<builder>`` builds (``"tiny_image.tiny_guest_image"``), from
    the cache or from the build started when collection ended (:mod:`.guest_builds`). A missing
    builder package or a failed build is a failed test, unless the run says ``--without guests``
    (:func:`bhype_core.testing.parts.missing`)."""
    if "guests" in excluded_parts():
        missing("guests", f"{what} not built")
    image = guest_builds.result(what, builder)
    if isinstance(image, str):
        missing("guests", image)
    assert isinstance(image, GuestImage), image
    return image


@pytest.fixture(scope="session")
def tiny_guest() -> Iterator[GuestImage]:
    """The tiny bootable guest (kernel, initrd, recommended ``cmdline``), built on first use and
    cached under ``$BHYPE_TEST_CACHE``. Boot it with ``-accel tcg`` (nested KVM hangs here).

    A guest that cannot be built fails the test, unless the run says ``--without guests``."""
    yield build_guest(*guest_builds.TINY)
