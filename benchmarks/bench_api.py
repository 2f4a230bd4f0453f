"""API latency with authentication: login through the privileged daemon, and requests carrying a
session cookie or an API token, against a real ``bhype serve`` process and a real daemon process.

Run: ``./dev bench api`` or ``.venv/bin/python benchmarks/bench_api.py [-n N] [--redis URL]``
(root, Linux: creates a local user and group, removed afterwards). The server runs on the
embedded SQLite database; ``--redis`` keeps sessions (and the throttle) in Redis instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from report import print_table, summary_ms

from bhype_core.testing.ports import free_port
from bhype_core.testing.users import LocalUsers


def toml_table(name: str, values: dict) -> str:
    # JSON scalars and lists are valid TOML values.
    return f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def start(argv: list[str], log: Path, ready: Callable[[], bool], what: str) -> subprocess.Popen:
    """Start a foreground child and wait until ``ready()``; output goes to ``log``."""
    with open(log, "wb") as output:
        process = subprocess.Popen(argv, stdout=output, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180  # a start-up under load (8 people on 2 cores) took over 60 s
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise SystemExit(f"bench_api: {what} did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code < 500
    except httpx.HTTPError:
        return False


def timed(action: Callable[[], httpx.Response], count: int, expected: int = 200) -> list[float]:
    """Durations of ``count`` requests; any unexpected status aborts the benchmark."""
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = action()
        samples.append(time.perf_counter() - started)
        if response.status_code != expected:
            raise SystemExit(f"bench_api: {response.status_code} {response.text}")
    return samples


def measure(directory: Path, auth: dict, core: dict, user, count: int, label: str) -> list[dict[str, str]]:
    """Serve with ``[auth]`` ``auth``, then time login, session and token requests."""
    port = free_port()
    config = directory / f"serve-{label}.toml"
    config.write_text(
        toml_table("core", {"data_dir": str(directory / f"data-{label}"), "log_level": "warning", **core})
        + toml_table("api", {"host": "127.0.0.1", "port": port})
        + toml_table("queue", {"in_process_worker": False})
        + toml_table("auth", auth)
    )
    base = f"http://127.0.0.1:{port}"
    bhype = str(Path(sys.executable).with_name("bhype"))
    server = start(
        [bhype, "--config", str(config), "serve"],
        directory / f"serve-{label}.log",
        lambda: answers(f"{base}/api/v1/health"),
        "bhype serve",
    )
    rows = []
    try:
        credentials = {"username": user.name, "password": user.password}
        with httpx.Client(base_url=base, timeout=30) as client:
            rows.append(
                {
                    "case": f"{label}: login (PAM via daemon)",
                    **summary_ms(
                        timed(
                            lambda: client.post("/api/v1/auth/login", json=credentials), max(10, count // 20)
                        )
                    ),
                }
            )
            login = client.post("/api/v1/auth/login", json=credentials).json()
            csrf = {"X-CSRF-Token": login["csrf_token"]}
            rows.append(
                {
                    "case": f"{label}: GET /auth/me, session",
                    **summary_ms(timed(lambda: client.get("/api/v1/auth/me"), count)),
                }
            )
            token = client.post("/api/v1/auth/tokens", json={"name": "bench"}, headers=csrf).json()["token"]
        with httpx.Client(base_url=base, timeout=30, headers={"Authorization": f"Bearer {token}"}) as client:
            rows.append(
                {
                    "case": f"{label}: GET /auth/me, token",
                    **summary_ms(timed(lambda: client.get("/api/v1/auth/me"), count)),
                }
            )
        with httpx.Client(base_url=base, timeout=30) as client:
            rows.append(
                {
                    "case": f"{label}: GET /health, public",
                    **summary_ms(timed(lambda: client.get("/api/v1/health"), count)),
                }
            )
    finally:
        stop(server)
    return rows


def forget_redis_keys(url: str, prefix: str) -> None:
    """Delete the sessions and throttle entries this run left in Redis."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="requests per case (default 300)")
    parser.add_argument(
        "--redis", metavar="URL", help="keep sessions in Redis at URL (e.g. redis://127.0.0.1:6379/14)"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        print("bench_api: needs root on Linux (creates a local user, runs the auth daemon)", file=sys.stderr)
        return 2

    directory = Path(tempfile.mkdtemp(prefix="bhype-bench-api-"))
    daemon = None
    try:
        with LocalUsers() as users:
            operators = users.group()
            service = users.pam_service()
            user = users(groups=[operators])
            socket_path = directory / "auth.sock"
            daemon_config = directory / "daemon.toml"
            daemon_config.write_text(
                toml_table(
                    "auth",
                    {
                        "pam_service": service,
                        "operator_groups": [operators.name],
                        "privileged_socket": str(socket_path),
                        "privileged_socket_group": "root",
                        "api_user": "root",  # bhype serve runs as root here; production: bhype
                    },
                )
            )
            daemon = start(
                [sys.executable, "-m", "bhype_core.auth.daemon", "--config", str(daemon_config)],
                directory / "daemon.log",
                socket_path.is_socket,
                "auth daemon",
            )
            auth = {
                "pam_service": service,
                "operator_groups": [operators.name],
                "privileged_socket": str(socket_path),
                "backend": "daemon",
            }
            core = {"redis_url": args.redis} if args.redis else {}
            if args.redis:
                auth["redis_prefix"] = f"bhype-bench-{os.getpid()}:"
            store = "redis" if args.redis else "sqlite"
            rows = measure(directory, auth, core, user, args.n, f"{store}, recheck 60 s")
            rows += measure(
                directory,
                {**auth, "account_recheck_interval": 0},
                core,
                user,
                args.n,
                f"{store}, recheck always",
            )
    finally:
        if daemon is not None:
            stop(daemon)
        shutil.rmtree(directory, ignore_errors=True)
        if args.redis:
            forget_redis_keys(args.redis, f"bhype-bench-{os.getpid()}:")
    print_table("API latency with authentication (bhype serve + auth daemon, loopback HTTP)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
