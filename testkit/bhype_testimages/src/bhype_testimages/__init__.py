"""bHype's test-image builders (development and test only, not part of any production wheel).

Two guest images, built from Debian packages once per machine and cached outside the
repository (``$BHYPE_TEST_CACHE``, default ``~/.cache/bhype-test``):

- :mod:`bhype_testimages.tiny_image`: Debian's cloud kernel plus a busybox initramfs;
- :mod:`bhype_testimages.zfs_image`: the same kernel with real OpenZFS, udev and dropbear.

Building blocks: :mod:`~bhype_testimages.debian` (a private apt configuration),
:mod:`~bhype_testimages.initramfs` (newc cpio, module and library closures) and
:mod:`~bhype_testimages.guest_cache` (lock, private build directory, atomic publishing, build
log). The pytest fixtures that boot these images (``tiny_guest``, ``zfs_host``) stay in the
core's test kit, :mod:`bhype_core.testing`, which imports this package when a test asks for one.
"""

__version__ = "0.1.0"
