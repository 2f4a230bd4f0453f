"""Console bridge throughput and added latency: bHype's bridges vs Debian's websockify vs raw
loopback TCP, all on 127.0.0.1 (issue 6, "Benchmarks").

Run: ``./dev bench console`` or ``.venv/bin/python benchmarks/bench_console.py [--mb N]``.

* serial: a TCP source streams N MB and closes (bytes counted at the client until EOF: a
  bridge that loses the tail shows as "lost"); 1-byte echo round trips for latency.
* vnc: a scripted RFB 3.8 server answers every FramebufferUpdateRequest with a full raw
  1024x768 frame (3 MiB); the client speaks RFB to it directly (raw TCP), through websockify,
  or through bHype's multiplexer (which does the handshake itself and requests the updates).

bHype's bridge runs in its own process (``--serve-bridge``): uvicorn with the real console
code (``WebSocketChannel``, the console hub, ``serve_serial``/``serve_vnc``); only ticket and
VM lookup are left out, as they happen once per connection. websockify runs as a process too.
Sources and clients share this process, the same for every path.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

from fastapi import WebSocket  # at module level: the route's annotation is resolved from here
from report import print_table

from bhype_core.testing.ports import free_port

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT, BPP = 1024, 768, 4
FRAME = WIDTH * HEIGHT * BPP
CHUNK = 64 * 1024


def wait_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


# --- sources (targets of every path) -------------------------------------------------------------


async def stream_source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, total: int) -> None:
    block = os.urandom(CHUNK)
    sent = 0
    while sent < total:
        writer.write(block[: min(CHUNK, total - sent)])
        sent += min(CHUNK, total - sent)
        await writer.drain()
    writer.close()  # close right after the last byte: the websockify trap


async def echo_source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    writer.close()


async def rfb_source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A VNC server (RFC 6143, 3.8, security None) sending a full raw frame per request, until
    the client goes away."""
    writer.write(b"RFB 003.008\n")
    await reader.readexactly(12)
    writer.write(b"\x01\x01")
    await reader.readexactly(1)
    writer.write(struct.pack(">I", 0))
    await reader.readexactly(1)
    pixel_format = bytes([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0])
    writer.write(struct.pack(">HH16sI", WIDTH, HEIGHT, pixel_format, 5) + b"bench")
    frame = struct.pack(">BxHHHHHi", 0, 1, 0, 0, WIDTH, HEIGHT, 0) + os.urandom(FRAME)
    try:
        while True:
            kind = (await reader.readexactly(1))[0]
            if kind == 0:
                await reader.readexactly(19)
            elif kind == 2:
                (count,) = struct.unpack(">xH", await reader.readexactly(3))
                await reader.readexactly(4 * count)
            elif kind == 3:
                await reader.readexactly(9)
                writer.write(frame)
                await writer.drain()
            else:
                raise RuntimeError(f"unexpected client message {kind}")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()


class Sources:
    """The three TCP sources, served from a background event loop."""

    def __init__(self, total: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.ports = {"stream": free_port(), "echo": free_port(), "rfb": free_port()}
        handlers = {
            "stream": lambda r, w: stream_source(r, w, total),
            "echo": echo_source,
            "rfb": rfb_source,
        }
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        for name, port in self.ports.items():
            asyncio.run_coroutine_threadsafe(
                asyncio.start_server(handlers[name], "127.0.0.1", port), self.loop
            ).result()


# --- bHype's bridge, in its own process -----------------------------------------------------------


def serve_bridge(port: int, targets: dict[str, int]) -> None:
    """uvicorn with the console bridge code, endpoints fixed to the benchmark sources."""
    import uvicorn
    from fastapi import FastAPI

    from bhype_webui.channel import WebSocketChannel
    from bhype_webui.console_session import serve_serial, serve_vnc
    from bhype_webui.hub import ConsoleHub
    from bhype_webui.upstream import Endpoint
    from bhype_webui.viewers import Viewer, new_viewer_id

    app = FastAPI()
    hub = ConsoleHub(30, 64 * 1024)

    async def allowed() -> None:
        return None

    @app.websocket("/{name}")
    async def bridge(websocket: WebSocket, name: str) -> None:
        channel = await WebSocketChannel.accept(websocket)
        kind = "vnc" if name == "rfb" else "serial"
        # A fresh multiplexer per connection (each benchmark connection is its own "VM").
        mux = await hub.attach(kind, new_viewer_id(), Endpoint(host="127.0.0.1", port=targets[name]), None)
        viewer = Viewer(new_viewer_id(), "bench", True)
        serve = serve_vnc if kind == "vnc" else serve_serial
        try:
            await serve(channel, mux, viewer, allowed, 3600)
        finally:
            mux.leave(viewer)
            mux.close("done")

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# --- clients ---------------------------------------------------------------------------------------


class TcpLink:
    def __init__(self, port: int) -> None:
        self.port = port

    async def __aenter__(self):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 20)
        return self

    async def __aexit__(self, *exc) -> None:
        self.writer.close()

    async def recv(self) -> bytes:
        data = await self.reader.read(1 << 20)
        if not data:
            raise EOFError
        return data

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()


class WsLink:
    def __init__(self, url: str) -> None:
        self.url = url

    async def __aenter__(self):
        from websockets.asyncio.client import connect

        self.ws = await connect(self.url, max_size=None, subprotocols=["binary"], compression=None)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def recv(self) -> bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            return await self.ws.recv()
        except ConnectionClosed:
            raise EOFError from None

    async def send(self, data: bytes) -> None:
        await self.ws.send(data)


async def measure_stream(link) -> tuple[float, int]:
    received = 0
    async with link:
        started = time.perf_counter()
        try:
            while True:
                received += len(await link.recv())
        except EOFError:
            pass
    return time.perf_counter() - started, received


async def measure_echo(link, rounds: int) -> list[float]:
    samples = []
    async with link:
        for _ in range(rounds):
            started = time.perf_counter()
            await link.send(b"x")
            await link.recv()
            samples.append(time.perf_counter() - started)
    return samples


async def measure_vnc(link, frames: int, speak_rfb: bool) -> tuple[float, int]:
    """Frames received in bytes; ``speak_rfb``: the client does handshake and requests itself
    (bHype's multiplexer does them for its viewers, which only greet it)."""
    buffer = bytearray()

    async def read(n: int) -> bytes:
        nonlocal buffer
        while len(buffer) < n:
            buffer += await link.recv()
        data, buffer = bytes(buffer[:n]), buffer[n:]
        return data

    async with link:
        await read(12)
        await link.send(b"RFB 003.008\n")
        count = (await read(1))[0]
        await read(count)
        await link.send(b"\x01")
        await read(4)
        await link.send(b"\x01")
        (name_length,) = struct.unpack(">20xI", await read(24))
        await read(name_length)
        started = time.perf_counter()
        received = 0
        request = struct.pack(">BBHHHH", 3, 1, 0, 0, WIDTH, HEIGHT)
        for _ in range(frames):
            if speak_rfb:
                await link.send(request)
            await read(16)
            await read(FRAME)
            received += FRAME
    return time.perf_counter() - started, received


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="MB streamed per serial throughput run")
    parser.add_argument("--frames", type=int, default=60, help="1024x768 raw frames per VNC run")
    parser.add_argument("--rounds", type=int, default=2000, help="echo round trips per latency run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path (the median is shown)")
    parser.add_argument("--serve-bridge", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--targets", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bridge:
        stream, echo, rfb = (int(p) for p in args.targets.split(","))
        serve_bridge(args.serve_bridge, {"stream": stream, "echo": echo, "rfb": rfb})
        return 0
    if shutil.which("websockify") is None:
        print("websockify not installed (Debian package websockify)", file=sys.stderr)
        return 1
    total = args.mb * 1_000_000
    sources = Sources(total)
    ports = sources.ports
    processes: list[subprocess.Popen] = []
    try:
        bridge_port = free_port()
        targets = f"{ports['stream']},{ports['echo']},{ports['rfb']}"
        processes.append(
            subprocess.Popen(
                [sys.executable, __file__, "--serve-bridge", str(bridge_port), "--targets", targets], cwd=HERE
            )
        )
        wait_port(bridge_port, processes[-1])
        websockify = {}
        for name, port in ports.items():
            websockify[name] = free_port()
            processes.append(
                subprocess.Popen(
                    ["websockify", f"127.0.0.1:{websockify[name]}", f"127.0.0.1:{port}"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            wait_port(websockify[name], processes[-1])

        def links(name: str) -> dict[str, object]:
            return {
                "raw TCP": lambda: TcpLink(ports[name]),
                "websockify": lambda: WsLink(f"ws://127.0.0.1:{websockify[name]}/"),
                "bHype bridge": lambda: WsLink(f"ws://127.0.0.1:{bridge_port}/{name}"),
            }

        rows = []
        base = {}
        for path, make in links("stream").items():
            runs = [asyncio.run(measure_stream(make())) for _ in range(args.repeat)]
            rate = statistics.median(received / seconds / 1e6 for seconds, received in runs)
            lost = sum(1 for _, received in runs if received != total)
            base.setdefault("rate", rate)
            rows.append(
                {
                    "path": path,
                    "MB/s": f"{rate:.0f}",
                    "vs raw TCP": f"{rate / base['rate']:.2f}x",
                    "runs with lost tail": f"{lost}/{args.repeat}",
                }
            )
        print_table(f"serial-style byte stream: {args.mb} MB, source closes right after the last byte", rows)

        rows = []
        for path, make in links("echo").items():
            samples = asyncio.run(measure_echo(make(), args.rounds))
            median = statistics.median(samples) * 1e6
            base.setdefault("echo", median)
            rows.append(
                {
                    "path": path,
                    "p50 µs": f"{median:.0f}",
                    "p99 µs": f"{sorted(samples)[int(len(samples) * 0.99)] * 1e6:.0f}",
                    "added p50 µs": f"{median - base['echo']:.0f}",
                }
            )
        print_table(f"1-byte echo round trip, {args.rounds} rounds", rows)

        rows = []
        for path, make in links("rfb").items():
            runs = [
                asyncio.run(measure_vnc(make(), args.frames, path != "bHype bridge"))
                for _ in range(args.repeat)
            ]
            seconds, received = sorted(runs)[len(runs) // 2]
            rate = received / seconds / 1e6
            base.setdefault("vnc", rate)
            rows.append(
                {
                    "path": path,
                    "frames/s": f"{args.frames / seconds:.1f}",
                    "MB/s": f"{rate:.0f}",
                    "vs raw TCP": f"{rate / base['vnc']:.2f}x",
                }
            )
        print_table(
            f"VNC: {args.frames} full raw {WIDTH}x{HEIGHT} frames (bHype: through the RFB multiplexer)", rows
        )
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        sources.loop.call_soon_threadsafe(sources.loop.stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
