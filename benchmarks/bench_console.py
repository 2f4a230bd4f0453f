"""Console bridge throughput, CPU and added latency: bHype's bridge vs websockify (PyPI and
Debian) vs raw loopback TCP, in one run, rounds interleaved with the order rotated (issue 15).

Run: ``./dev bench console`` or ``.venv/bin/python benchmarks/bench_console.py [--mb N]
[--repeat R] [--websockify-pypi PATH]``. The PyPI websockify is the anchor the goals name; make
one with ``python3 -m venv /tmp/wsk && /tmp/wsk/bin/pip install websockify==0.13.0`` and pass
``--websockify-pypi /tmp/wsk/bin/websockify`` (or set ``BHYPE_BENCH_WEBSOCKIFY_PYPI``); Debian's
``websockify`` package is used when installed.

Three kinds of process, so no path pays for another's Python: the **source** (``--role
source``: a TCP byte stream of N MB that closes right after its last byte, a 1-byte echo, and a
scripted RFB 3.8 server sending full raw 1024x768 frames), the **bridge** under test (bHype's in
``--role bridge``: uvicorn with the real console code — ``WebSocketChannel``, the console hub,
``serve_serial``/``serve_vnc``; only ticket and VM lookup are left out, as they happen once per
connection — or websockify), and the **client** (``--role client``, one process per run). Every
byte is checked: the client hashes what it received (sha256) and compares it with the source's
deterministic data; a short or different stream counts as lost. The bridge's CPU time (user +
system, children included: websockify forks per connection) is read from /proc around each run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

from fastapi import WebSocket  # at module level: the route's annotation is resolved from here
from report import percentile, print_table

from bhype_core.testing.ports import free_port

HERE = Path(__file__).resolve().parent
WIDTH, HEIGHT, BPP = 1024, 768, 4
FRAME = WIDTH * HEIGHT * BPP
CHUNK = 64 * 1024
BASELINE = "bHype bridge (baseline)"
PATTERN_LENGTH = 1_000_003  # a prime: repeats never line up with chunk or frame boundaries


def pattern() -> bytes:
    """The source's bytes, repeated: the same in every process (seeded)."""
    return random.Random(15).randbytes(PATTERN_LENGTH)


def stream_bytes(total: int):
    """The stream the source sends, in chunks (cycling through :func:`pattern`)."""
    block, sent = pattern(), 0
    while sent < total:
        offset = sent % PATTERN_LENGTH
        piece = block[offset:offset + min(CHUNK, total - sent)]
        yield piece
        sent += len(piece)


def expected_stream_digest(total: int) -> str:
    digest = hashlib.sha256()
    for piece in stream_bytes(total):
        digest.update(piece)
    return digest.hexdigest()


def frame_pixels() -> bytes:
    return (pattern() * (FRAME // PATTERN_LENGTH + 1))[:FRAME]


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


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of ``pid`` (proc(5) /proc/PID/stat fields 14-17)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# --- the source process ----------------------------------------------------------------------------


async def stream_source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, total: int) -> None:
    for piece in stream_bytes(total):
        writer.write(piece)
        await writer.drain()
    writer.close()  # close right after the last byte: the websockify trap


async def echo_source(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
    frame = struct.pack(">BxHHHHHi", 0, 1, 0, 0, WIDTH, HEIGHT, 0) + frame_pixels()
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


def serve_sources(ports: dict[str, int], total: int) -> None:
    async def run() -> None:
        handlers = {"stream": lambda r, w: stream_source(r, w, total), "echo": echo_source, "rfb": rfb_source}
        servers = [await asyncio.start_server(handlers[name], "127.0.0.1", port) for name, port in ports.items()]
        await asyncio.gather(*(server.serve_forever() for server in servers))

    asyncio.run(run())


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
        self.writer.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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


def link_for(target: str):
    """``tcp:PORT`` or a ``ws://`` URL."""
    return TcpLink(int(target[4:])) if target.startswith("tcp:") else WsLink(target)


def run_client(kind: str, target: str, args: argparse.Namespace) -> dict:
    """One measurement in this (client) process, as JSON-ready data."""
    if kind == "stream":
        seconds, received, digest = asyncio.run(measure_stream(link_for(target)))
        return {"seconds": seconds, "bytes": received, "sha256": digest}
    if kind == "echo":
        return {"samples": asyncio.run(measure_echo(link_for(target), args.rounds))}
    seconds, received, bad = asyncio.run(measure_vnc(link_for(target), args.frames, args.speak_rfb))
    return {"seconds": seconds, "bytes": received, "bad_frames": bad}


async def measure_stream(link) -> tuple[float, int, str]:
    received, digest = 0, hashlib.sha256()
    async with link:
        started = time.perf_counter()
        try:
            while True:
                data = await link.recv()
                digest.update(data)
                received += len(data)
        except EOFError:
            pass
    return time.perf_counter() - started, received, digest.hexdigest()


async def measure_echo(link, rounds: int) -> list[float]:
    samples = []
    async with link:
        for _ in range(rounds):
            started = time.perf_counter()
            await link.send(b"x")
            await link.recv()
            samples.append(time.perf_counter() - started)
    return samples


async def measure_vnc(link, frames: int, speak_rfb: bool) -> tuple[float, int, int]:
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
        received, bad = 0, 0
        request = struct.pack(">BBHHHH", 3, 1, 0, 0, WIDTH, HEIGHT)
        expected = hashlib.sha256(frame_pixels()).digest()
        for _ in range(frames):
            if speak_rfb:
                await link.send(request)
            await read(16)
            bad += hashlib.sha256(await read(FRAME)).digest() != expected
            received += FRAME
    return time.perf_counter() - started, received, bad


def client(kind: str, target: str, args: argparse.Namespace, speak_rfb: bool = True) -> dict:
    """Run one measurement in a fresh client process."""
    argv = [sys.executable, __file__, "--role", "client", "--kind", kind, "--target", target, "--mb", str(args.mb),
            "--rounds", str(args.rounds), "--frames", str(args.frames)] + (["--speak-rfb"] if speak_rfb else [])
    done = subprocess.run(argv, cwd=HERE, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"client {kind} {target} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def start(argv: list[str], port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    process = subprocess.Popen(argv, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    wait_port(port, process)
    return process


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200, help="MB streamed per throughput run (default 200)")
    parser.add_argument("--frames", type=int, default=60, help="1024x768 raw frames per VNC run")
    parser.add_argument("--rounds", type=int, default=2000, help="echo round trips per latency run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per path, interleaved (default 5)")
    parser.add_argument("--websockify-pypi", default=os.environ.get("BHYPE_BENCH_WEBSOCKIFY_PYPI", ""),
                        help="websockify executable from PyPI (the anchor; see the module docstring)")
    parser.add_argument("--baseline-tree", default=os.environ.get("BHYPE_BENCH_CONSOLE_BASELINE", ""),
                        help="another bHype checkout (e.g. /work/main): its web UI bridge runs too, as "
                             "'bHype bridge (baseline)', for before/after figures from the same run")
    parser.add_argument("--role", choices=["main", "source", "bridge", "client"], default="main",
                        help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    parser.add_argument("--kind", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--speak-rfb", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    total = args.mb * 1_000_000
    if args.role == "source":
        stream, echo, rfb = (int(p) for p in args.ports.split(","))
        serve_sources({"stream": stream, "echo": echo, "rfb": rfb}, total)
        return 0
    if args.role == "bridge":
        port, stream, echo, rfb = (int(p) for p in args.ports.split(","))
        serve_bridge(port, {"stream": stream, "echo": echo, "rfb": rfb})
        return 0
    if args.role == "client":
        print(json.dumps(run_client(args.kind, args.target, args)))
        return 0

    anchors = {"websockify (PyPI)": args.websockify_pypi, "websockify (Debian)": shutil.which("websockify") or ""}
    if not anchors["websockify (PyPI)"]:
        print("websockify (PyPI) not given: --websockify-pypi or BHYPE_BENCH_WEBSOCKIFY_PYPI (see --help); "
              "the goals' anchor is missing from this run", file=sys.stderr)
    anchors = {name: path for name, path in anchors.items() if path}
    ports = {"stream": free_port(), "echo": free_port(), "rfb": free_port()}
    listed = ",".join(str(ports[name]) for name in ("stream", "echo", "rfb"))
    processes: dict[str, subprocess.Popen] = {}
    try:
        processes["source"] = start([sys.executable, __file__, "--role", "source", "--ports", listed,
                                     "--mb", str(args.mb)], ports["rfb"])
        bridge_port = free_port()
        processes["bHype bridge"] = start([sys.executable, __file__, "--role", "bridge", "--ports",
                                           f"{bridge_port},{listed}"], bridge_port)
        targets: dict[str, dict[str, str]] = {"raw TCP": {name: f"tcp:{port}" for name, port in ports.items()},
                                              "bHype bridge": {name: f"ws://127.0.0.1:{bridge_port}/{name}"
                                                               for name in ports}}
        if args.baseline_tree:
            # The same bridge role, importing the web UI plugin from the other checkout first.
            baseline_port = free_port()
            source = Path(args.baseline_tree, "plugins", "bhype_webui", "src").resolve()
            env = dict(os.environ, PYTHONPATH=str(source))
            processes[BASELINE] = start([sys.executable, __file__, "--role", "bridge", "--ports",
                                         f"{baseline_port},{listed}"], baseline_port, env)
            targets[BASELINE] = {name: f"ws://127.0.0.1:{baseline_port}/{name}" for name in ports}
        for label, executable in anchors.items():
            targets[label] = {}
            for name, port in ports.items():
                listen = free_port()
                processes[f"{label} {name}"] = start([executable, f"127.0.0.1:{listen}", f"127.0.0.1:{port}"], listen)
                targets[label][name] = f"ws://127.0.0.1:{listen}/"
        paths = list(targets)

        def bridge_pid(path: str, kind: str) -> int | None:
            process = processes.get(path if path in ("bHype bridge", BASELINE) else f"{path} {kind}")
            return process.pid if process is not None and path != "raw TCP" else None

        def measured(path: str, kind: str, speak_rfb: bool = True) -> tuple[dict, float | None]:
            pid = bridge_pid(path, kind)
            before = cpu_seconds(pid) if pid else 0.0
            result = client(kind, targets[path][kind], args, speak_rfb)
            time.sleep(0.3)  # a forked websockify child is reaped (its CPU counted) by now
            return result, (cpu_seconds(pid) - before) if pid else None

        expected = expected_stream_digest(total)
        stream: dict[str, list] = {path: [] for path in paths}
        echo: dict[str, list[float]] = {path: [] for path in paths}
        vnc: dict[str, list] = {path: [] for path in paths}
        for round_no in range(args.repeat):
            order = paths[round_no % len(paths):] + paths[:round_no % len(paths)]  # rotated each round
            for path in order:
                stream[path].append(measured(path, "stream"))
                echo[path] += measured(path, "echo")[0]["samples"]
                vnc[path].append(measured(path, "rfb", speak_rfb=path not in ("bHype bridge", BASELINE)))

        anchor = "websockify (PyPI)" if "websockify (PyPI)" in paths else paths[-1]
        rates = {path: statistics.median(r["bytes"] / r["seconds"] / 1e6 for r, _ in runs)
                 for path, runs in stream.items()}
        rows = []
        for path, runs in stream.items():
            cpu = [seconds for _, seconds in runs if seconds is not None]
            per_gb = statistics.median(seconds / (total / 1e9) for seconds in cpu) if cpu else None
            lost = sum(1 for result, _ in runs if result["bytes"] != total or result["sha256"] != expected)
            rows.append({"path": path, "MB/s (median)": f"{rates[path]:.0f}",
                         f"vs {anchor}": f"{rates[path] / rates[anchor]:.2f}x",
                         "bridge CPU-s/GB": f"{per_gb:.2f}" if per_gb is not None else "-",
                         "runs short or wrong (sha256)": f"{lost}/{len(runs)}"})
        print_table(f"byte stream: {args.mb} MB per run, {args.repeat} runs per path, the source closes right after "
                    "the last byte (source, bridge, client: separate processes)", rows)
        base = statistics.median(echo["raw TCP"])
        rows = []
        for path, samples in echo.items():
            p50, p99 = percentile(samples, 50), percentile(samples, 99)
            rows.append({"path": path, "n": str(len(samples)), "p50 µs": f"{p50 * 1e6:.0f}",
                         "p99 µs": f"{p99 * 1e6:.0f}", "added p50 µs": f"{(p50 - base) * 1e6:.0f}"})
        print_table(f"1-byte echo round trip ({args.rounds} per run)", rows)
        rows = []
        for path, runs in vnc.items():
            rate = statistics.median(r["bytes"] / r["seconds"] / 1e6 for r, _ in runs)
            cpu = [seconds for _, seconds in runs if seconds is not None]
            per_gb = statistics.median(c / (args.frames * FRAME / 1e9) for c in cpu) if cpu else None
            frames = statistics.median(args.frames / r["seconds"] for r, _ in runs)
            rows.append({"path": path, "frames/s": f"{frames:.1f}",
                         "MB/s": f"{rate:.0f}", "bridge CPU-s/GB": f"{per_gb:.2f}" if per_gb is not None else "-",
                         "frames wrong (sha256)": str(sum(r["bad_frames"] for r, _ in runs))})
        print_table(f"VNC: {args.frames} full raw {WIDTH}x{HEIGHT} frames per run (bHype: through its RFB multiplexer)",
                    rows)
    finally:
        for process in processes.values():
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
