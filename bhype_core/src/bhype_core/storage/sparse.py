"""Sparse-aware file copy with progress: copies data extents, leaves holes as holes.

Extents are found with ``lseek(SEEK_DATA/SEEK_HOLE)`` (Linux lseek(2), FreeBSD lseek(2): both
report holes on UFS, ZFS, ext4, xfs and tmpfs); where the file system cannot tell (EINVAL,
ENXIO on an old kernel) every block is read and all-zero blocks are skipped instead of
written. Either way the destination is truncated to the source size, so trailing holes stay
holes and the copy has exactly the source's length.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator

CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for smooth progress

# (bytes done, bytes total)
ByteProgress = Callable[[int, int], None]


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of every data region of the open file ``fd`` of ``size`` bytes.

    Falls back to one extent covering the whole file when the OS or file system has no
    SEEK_DATA/SEEK_HOLE support (the caller then skips zero blocks itself).
    """
    seek_data = getattr(os, "SEEK_DATA", None)
    seek_hole = getattr(os, "SEEK_HOLE", None)
    if seek_data is None or seek_hole is None:
        if size:
            yield 0, size
        return
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, seek_data)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # lseek(2): no data at or after offset
                return
            if exc.errno == errno.EINVAL and offset == 0:  # not supported here
                yield 0, size
                return
            raise
        end = min(os.lseek(fd, start, seek_hole), size)
        if end > start:
            yield start, end - start
        offset = end


def _is_zero(block: bytes) -> bool:
    return not block.strip(b"\0")


def copy_sparse(
    src_fd: int,
    dst_fd: int,
    size: int,
    progress: ByteProgress | None = None,
    check: Callable[[], None] | None = None,
) -> int:
    """Copy ``size`` bytes from ``src_fd`` to the (empty) ``dst_fd`` without filling holes.

    :param progress: called with ``(bytes_done, size)`` after each chunk and once at the end;
        "done" counts skipped holes too, so progress reaches ``size``.
    :param check: called between chunks; raise from it to abort (task cancellation).
    :returns: the number of data bytes actually written.
    """
    written = 0
    done = 0
    for offset, length in data_extents(src_fd, size):
        done = offset  # everything before this extent was a hole
        end = offset + length
        position = offset
        while position < end:
            if check is not None:
                check()
            want = min(CHUNK, end - position)
            block = os.pread(src_fd, want, position)
            if not block:  # the source shrank under us: stop at what exists
                break
            if not _is_zero(block):
                view = memoryview(block)
                while view:
                    count = os.pwrite(dst_fd, view, position + (len(block) - len(view)))
                    view = view[count:]
                written += len(block)
            position += len(block)
            done = position
            if progress is not None:
                progress(done, size)
    # Trailing holes (and a source that is all hole) become the right length, still sparse.
    os.ftruncate(dst_fd, size)
    if progress is not None:
        progress(size, size)
    return written


def allocated_bytes(path: str | os.PathLike[str]) -> int:
    """Bytes a file really occupies on disk (``st_blocks`` is in 512-byte units on both OSes)."""
    return os.stat(path).st_blocks * 512
