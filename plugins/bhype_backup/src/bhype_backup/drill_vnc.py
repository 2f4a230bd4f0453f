"""A drill's "VNC screen changing" sign of life: a minimal RFB 3.8 client (RFC 6143) that asks
for whole raw frames and says when the screen differs from the first one it saw.

Only what a VM's own VNC console (QEMU's, or bhyve's fbuf) offers without a password is
spoken: security type None (§7.2.1), the server's pixel format as it is, Raw encoding (§7.7.1).
"""

from __future__ import annotations

import hashlib
import os
import select
import struct
import time
from collections.abc import Callable

VERSION = b"RFB 003.008\n"
SECURITY_NONE = 1
RAW = 0


class RfbError(Exception):
    """The console did not speak RFB as expected."""


class Reader:
    """Exact reads from a descriptor with a deadline."""

    def __init__(self, fd: int, deadline: float) -> None:
        self.fd, self.deadline, self.buffer = fd, deadline, bytearray()

    def read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the VNC console did not answer in time")
            ready, _, _ = select.select([self.fd], [], [], min(left, 1.0))
            if not ready:
                continue
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                raise RfbError("the VNC console closed")
            self.buffer += chunk
        data, self.buffer = bytes(self.buffer[:size]), self.buffer[size:]
        return data


def handshake(fd: int, reader: Reader) -> tuple[int, int, int]:
    """Version, security None, ClientInit (shared), ServerInit; returns width, height and
    bytes per pixel (RFC 6143 §7.1-7.3)."""
    if not reader.read(12).startswith(b"RFB 003."):
        raise RfbError("not an RFB server")
    os.write(fd, VERSION)
    count = reader.read(1)[0]
    if count == 0:
        length = struct.unpack(">I", reader.read(4))[0]
        raise RfbError(f"the VNC console refused: {reader.read(length).decode(errors='replace')}")
    if SECURITY_NONE not in reader.read(count):
        raise RfbError("the VNC console wants a password (drills need one without)")
    os.write(fd, bytes([SECURITY_NONE]))
    if reader.read(4) != b"\x00\x00\x00\x00":
        raise RfbError("the VNC console refused the connection")
    os.write(fd, b"\x01")  # shared: other viewers stay connected
    width, height = struct.unpack(">HH", reader.read(4))
    bits = reader.read(16)[0]  # pixel format: bits-per-pixel first
    name_length = struct.unpack(">I", reader.read(4))[0]
    reader.read(name_length)
    os.write(fd, struct.pack(">BxHi", 2, 1, RAW))  # SetEncodings: Raw only
    return width, height, bits // 8


def frame(fd: int, reader: Reader, width: int, height: int, depth: int) -> str:
    """Request the whole screen (non-incremental) and return its sha256."""
    os.write(fd, struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
    digest = hashlib.sha256()
    while True:
        kind = reader.read(1)[0]
        if kind == 0:  # FramebufferUpdate
            reader.read(1)
            rects = struct.unpack(">H", reader.read(2))[0]
            for _ in range(rects):
                x, y, w, h, encoding = struct.unpack(">HHHHi", reader.read(12))
                if encoding == RAW:
                    digest.update(struct.pack(">HHHH", x, y, w, h))
                    digest.update(reader.read(w * h * depth))
                elif encoding == -223:  # DesktopSize pseudo-encoding: a new size, no pixels
                    width, height = w, h
                else:
                    raise RfbError(f"unexpected encoding {encoding}")
            return digest.hexdigest()
        if kind == 1:  # SetColourMapEntries
            reader.read(1)
            _, count = struct.unpack(">HH", reader.read(4))
            reader.read(6 * count)
        elif kind == 2:  # Bell
            continue
        elif kind == 3:  # ServerCutText
            reader.read(3)
            reader.read(struct.unpack(">I", reader.read(4))[0])
        else:
            raise RfbError(f"unexpected server message {kind}")


def wait_for_change(fd: int, timeout: float, cancelled: Callable[[], bool] = lambda: False,
                    interval: float = 2.0) -> tuple[bool, str]:
    """Watch the screen until it differs from the first frame or ``timeout`` passes.

    :returns: whether it changed, and a line saying what was seen (for the drill excerpt).
    """
    deadline = time.monotonic() + timeout
    reader = Reader(fd, deadline)
    try:
        width, height, depth = handshake(fd, reader)
        first = frame(fd, reader, width, height, depth)
        frames = 1
        while time.monotonic() < deadline and not cancelled():
            time.sleep(min(interval, max(deadline - time.monotonic(), 0)))
            current = frame(fd, reader, width, height, depth)
            frames += 1
            if current != first:
                return True, f"VNC screen {width}x{height} changed after {frames} frames"
    except TimeoutError:
        pass
    except (RfbError, OSError) as exc:
        return False, f"VNC console: {exc}"
    return False, "the VNC screen did not change"
