"""Bytes per full-screen VNC update, raw vs Tight, from a real QEMU guest (issue 15), and the
multiplexer's Tight relay checked pixel for pixel.

Run: ``./dev bench console_tight`` or ``.venv/bin/python benchmarks/bench_console_tight.py
[--rounds N]``. Boots the test kit's tiny guest (built by the test run into
``~/.cache/bhype-test``; run a console test first if it is missing) under TCG with its VGA text
console on QEMU's VNC server, waits for the guest's ready marker, then, rounds interleaved:

* **raw**: a client asking for raw only requests a full update: its bytes and pixels;
* **Tight (server)**: a client asking for Tight (what the multiplexer asks for while every
  viewer speaks it) requests a full update: its bytes, decoded here (zlib) and compared with
  the raw pixels — lossless, so they must be equal;
* **Tight via the multiplexer**: bHype's ``VncMux`` with a first viewer, then a second one that
  joins after Tight rectangles flowed (the multiplexer reconnects and resets the zlib streams):
  each viewer's bytes are decoded as noVNC would and must equal the raw pixels.

Figures are bytes on the wire per full-screen update (server → bridge, bridge → browser).
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from report import print_table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "webui"))
from tight_decoder import TightDecoder  # noqa: E402  (the tests' decoder: one copy)

from bhype_core.testing.guest_image import DEFAULT_CMDLINE, READY_MARKER
from bhype_core.testing.qemu_guest import GuestFiles, qemu_argv
from bhype_webui import rfb
from bhype_webui.rfb_handshake import client_handshake
from bhype_webui.rfb_tight import TightState
from bhype_webui.rfb_updates import read_server_message
from bhype_webui.upstream import Endpoint, open_endpoint
from bhype_webui.viewers import Viewer
from bhype_webui.vnc_mux import VncMux

TIGHT_VIEWER = [rfb.ENCODING_TIGHT, rfb.ENCODING_RAW, rfb.PSEUDO_DESKTOP_SIZE, rfb.PSEUDO_LAST_RECT]


def kit_guest() -> tuple[Path, Path]:
    cache = os.environ.get("BHYPE_TEST_CACHE", str(Path.home() / ".cache" / "bhype-test"))
    found = sorted(glob.glob(f"{cache}/tiny-guest/*/manifest.json"))
    if not found:
        raise SystemExit(f"no tiny guest under {cache}/tiny-guest: run a console test first to build it")
    directory = Path(found[-1]).parent
    return directory / "vmlinuz", directory / "initrd.img"


async def full_update(endpoint: Endpoint, encodings: list[int]) -> tuple[int, bytes]:
    """Bytes of one full-screen update with ``encodings``, and the screen it decodes to."""
    stream = await open_endpoint(endpoint)
    try:
        desktop = await client_handshake(stream.readexactly, stream.write, None, encodings=encodings)
        await stream.write(rfb.fb_update_request(False, 0, 0, desktop.width, desktop.height))
        state = TightState()
        while True:
            message = await read_server_message(stream.readexactly, 4, None, (3, state))
            if message.kind == rfb.SERVER_FB_UPDATE:
                break
        decoder = TightDecoder(desktop.width, desktop.height)
        decoder.message(message.data)
        return len(message.data), bytes(decoder.fb)
    finally:
        stream.close()


async def through_mux(endpoint: Endpoint) -> tuple[list[int], list[bytes], int]:
    """Two Tight viewers on one multiplexer, the second joining late: for each, the bytes of
    its latest full update and the screen its whole byte stream decodes to; and the upstream
    connections used."""
    mux = VncMux("bench/vnc", await open_endpoint(endpoint), reopen=lambda: open_endpoint(endpoint))
    await mux.start(None)
    assert mux.desktop is not None
    viewers = [Viewer(f"v{i}", "bench", True) for i in range(2)]
    decoders = [TightDecoder(mux.desktop.width, mux.desktop.height) for _ in viewers]
    last = [0, 0]

    async def attach(index: int) -> None:
        mux.join(viewers[index])
        await mux.handle(viewers[index], rfb.set_encodings(TIGHT_VIEWER))
        await mux.handle(viewers[index], rfb.fb_update_request(False, 0, 0, mux.desktop.width, mux.desktop.height))

    async def drain(index: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = await asyncio.wait_for(viewers[index].take(), left)
            except TimeoutError:
                return
            data = item if isinstance(item, bytes) else b"".join(item or [])
            if data[:1] == bytes([rfb.SERVER_FB_UPDATE]):
                decoders[index].message(data)
                if struct.unpack_from(">H", data, 2)[0] and len(data) > 1000:
                    last[index] = len(data)

    try:
        await attach(0)
        await drain(0, 3)
        await attach(1)
        await asyncio.gather(drain(0, 4), drain(1, 4))
    finally:
        mux.close("done")
    return last, [bytes(d.fb) for d in decoders], mux.generation + 1


def wait_ready(files: GuestFiles, process: subprocess.Popen, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"QEMU exited: {files.qemu_log.read_text(errors='replace')[-2000:]}")
        if files.serial_log.exists() and READY_MARKER in files.serial_log.read_text(errors="replace"):
            return
        time.sleep(1)
    raise RuntimeError("the guest did not become ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    kernel, initrd = kit_guest()
    workdir = Path(tempfile.mkdtemp(prefix="bq-"))
    files = GuestFiles(workdir)
    argv = qemu_argv(files, kernel, initrd, DEFAULT_CMDLINE)
    with open(files.qemu_log, "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(files, process)
        time.sleep(2)  # the last lines reach the VGA console
        endpoint = Endpoint(unix=str(files.vnc))
        rows: dict[str, list[int]] = {"raw (server)": [], "Tight (server)": [], "Tight via multiplexer, viewer 1": [],
                                      "Tight via multiplexer, late viewer 2": []}
        screens: dict[str, list[bytes]] = {name: [] for name in rows}
        connections = []
        for _ in range(args.rounds):
            raw_bytes, screen = asyncio.run(full_update(endpoint, [rfb.ENCODING_RAW]))
            tight_bytes, tight_screen = asyncio.run(full_update(endpoint, TIGHT_VIEWER))
            rows["raw (server)"].append(raw_bytes)
            rows["Tight (server)"].append(tight_bytes)
            screens["raw (server)"].append(screen)
            screens["Tight (server)"].append(tight_screen)
            last, seen, used = asyncio.run(through_mux(endpoint))
            screens["raw (server)"].append(asyncio.run(full_update(endpoint, [rfb.ENCODING_RAW]))[1])
            connections.append(used)
            for name, size, decoded in zip(list(rows)[2:], last, seen, strict=True):
                rows[name].append(size)
                screens[name].append(decoded)
        # The guest's text cursor blinks: pixels that differ between raw captures are left out.
        raws = screens["raw (server)"]
        blinking = {i for shot in raws[1:] for i in range(0, len(shot), 3) if shot[i:i + 3] != raws[0][i:i + 3]}
        mismatches = {name: sum(any(i not in blinking and shot[i:i + 3] != raws[0][i:i + 3]
                                    for i in range(0, len(shot), 3)) for shot in shots)
                      for name, shots in screens.items()}
        raw = sorted(rows["raw (server)"])[len(rows["raw (server)"]) // 2]
        table = []
        for name, sizes in rows.items():
            median = sorted(sizes)[len(sizes) // 2]
            table.append({"path": name, "bytes per full-screen update (median)": f"{median:,}",
                          "vs raw": f"{median / raw:.3f}x", "decoded screens differing from raw":
                          f"{mismatches[name]}/{len(screens[name])}"})
        print_table(f"VNC full-screen update, tiny guest's VGA text console under TCG, {args.rounds} rounds; "
                    f"multiplexer upstream connections per round: {connections}; blinking-cursor pixels left out of "
                    f"the comparison: {len(blinking)}", table)
        digest = hashlib.sha256(screen).hexdigest()[:16]
        print(f"screen sha256 {digest}…", file=sys.stderr)
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
