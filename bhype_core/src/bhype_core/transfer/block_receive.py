"""The receiving end of a block-range copy (:mod:`bhype_core.transfer.dirty_copy`): writes the
ranges it reads on stdin into an image in place, reads each back and hashes what it reads.

It runs on the other host as ``python3 -c <this file's text> IMAGE SIZE MODE MANIFEST`` through
ssh, so it uses the standard library only and imports nothing from bHype. The image is opened
without following a symlink (``O_NOFOLLOW``), created (mode ``MODE``) when absent and given
length ``SIZE``. Records on stdin: ``>QIB`` offset, length, kind (0: data of that length
follows; 1: that range is all zero; 2: end). For every record the SHA-256 of the range as read
back after writing (``null`` for an all-zero range) is kept in ``MANIFEST`` (JSON, per block
offset; the image's per-block hashes across passes) and printed on stdout as JSON at the end,
after an ``fsync`` of the image.
"""

import hashlib
import json
import os
import struct
import sys

RECORD = struct.Struct(">QIB")
DATA, ZERO, END = 0, 1, 2


def read_exactly(stream, count):
    chunks, left = [], count
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise SystemExit("block receiver: the stream ended early")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def load_manifest(path, size, block):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    if data.get("size") != size or data.get("block") != block:
        return {}
    return dict(data.get("hashes") or {})


def save_manifest(path, size, block, hashes):
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    temporary = path + ".tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"size": size, "block": block, "hashes": hashes}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def main(argv):
    image, size, mode, manifest, block = argv[0], int(argv[1]), int(argv[2], 8), argv[3], int(argv[4])
    fd = os.open(image, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode & 0o7777)
    try:
        if os.fstat(fd).st_size != size:
            os.ftruncate(fd, size)
        hashes = load_manifest(manifest, size, block)
        answer, written = {}, 0
        stream = sys.stdin.buffer
        while True:
            offset, length, kind = RECORD.unpack(read_exactly(stream, RECORD.size))
            if kind == END:
                break
            if offset + length > size or kind not in (DATA, ZERO):
                raise SystemExit(f"block receiver: bad record {offset} {length} {kind}")
            if kind == DATA:
                data = read_exactly(stream, length)
                os.pwrite(fd, data, offset)
                written += length
            elif os.pread(fd, length, offset).count(0) != length:
                os.pwrite(fd, bytes(length), offset)
                written += length
            back = os.pread(fd, length, offset)
            digest = None if back.count(0) == len(back) else hashlib.sha256(back).hexdigest()
            answer[str(offset)] = digest
            if digest is None:
                hashes.pop(str(offset), None)
            else:
                hashes[str(offset)] = digest
        os.fsync(fd)
    finally:
        os.close(fd)
    save_manifest(manifest, size, block, hashes)
    json.dump({"hashes": answer, "written": written}, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
