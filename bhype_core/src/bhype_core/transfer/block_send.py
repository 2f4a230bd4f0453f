"""The sending end of a block-range copy (:mod:`bhype_core.transfer.dirty_copy`), run on this
host as ``python …/block_send.py PLAN`` (standard library only): reads the planned blocks of an image
and writes them on stdout as :mod:`block_receive` records, hashing each (``null``: all zero).

``PLAN`` (JSON): ``image``, ``block`` (bytes), ``blocks`` (offsets; ``null``: every block
holding data, found with lseek(2) ``SEEK_DATA``/``SEEK_HOLE`` — a first copy into a new sparse
image, where all-zero blocks are left out) and ``result``, where the hashes go (JSON per block
offset). Progress on stderr: ``SENT <bytes>`` lines.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import struct
import sys

RECORD = struct.Struct(">QIB")
DATA, ZERO, END = 0, 1, 2
REPORT_EVERY = 8 * 1024 * 1024


def data_blocks(fd: int, size: int, block: int) -> list[int]:
    """Start offsets of the ``block``-aligned blocks holding data (every block when the file
    system cannot tell holes apart)."""
    blocks: list[int] = []
    position = 0
    while position < size:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break
            return list(range(0, size, block))
        end = os.lseek(fd, start, os.SEEK_HOLE)
        current = start - start % block
        while current < end:
            if not blocks or blocks[-1] != current:
                blocks.append(current)
            current += block
        position = end
    return blocks


def send(plan: dict, out) -> dict[str, str | None]:
    block = int(plan["block"])
    fd = os.open(plan["image"], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    hashes: dict[str, str | None] = {}
    try:
        size = os.fstat(fd).st_size
        first = plan.get("blocks") is None
        offsets = data_blocks(fd, size, block) if first else [int(o) for o in plan["blocks"]]
        sent = reported = 0
        for offset in offsets:
            if offset >= size:
                continue
            data = os.pread(fd, min(block, size - offset), offset)
            if data.count(0) == len(data):
                hashes[str(offset)] = None
                if not first:  # a new image is all zero already
                    out.write(RECORD.pack(offset, len(data), ZERO))
                continue
            hashes[str(offset)] = hashlib.sha256(data).hexdigest()
            out.write(RECORD.pack(offset, len(data), DATA))
            out.write(data)
            sent += len(data)
            if sent - reported >= REPORT_EVERY:
                reported = sent
                sys.stderr.write(f"SENT {sent}\n")
                sys.stderr.flush()
        out.write(RECORD.pack(0, 0, END))
        out.flush()
        sys.stderr.write(f"SENT {sent}\n")
    finally:
        os.close(fd)
    return hashes


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as handle:
        plan = json.load(handle)
    hashes = send(plan, sys.stdout.buffer)
    fd = os.open(plan["result"], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(hashes, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
