"""``GET /api/v1/vms`` at 10,000 VM records against a bare SQL + JSON anchor (issue 15).

Three processes: a real ``bhype serve`` (real API token, real database), the anchor
(``anchor_vm_list.py``: raw ASGI + the DB driver + orjson, no auth, the same rows and JSON),
and this client (one keep-alive HTTP connection to each). Rounds are interleaved with the
order alternating, so load on the machine hits both alike. SQLite, and MariaDB when reachable.
Also prints the RSS of ``bhype serve`` before and after the requests.

Run: ``./dev bench vm_list`` or ``.venv/bin/python benchmarks/bench_vm_list.py [--rounds R] [--vms V]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

import orjson
from bench_api import answers, start, stop, toml_table
from report import percentile, print_table
from sqlalchemy import insert

from bhype_core.api.app import create_app
from bhype_core.builtins import drivers, models, storage, tasks, vm_tasks
from bhype_core.config import load_settings
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.spec import SpecContext, validate_spec
from bhype_core.testing.ports import free_port
from bhype_core.vm.listing import encode_cursor
from bhype_core.vm.models import VM

HERE = Path(__file__).resolve().parent
OWNERS = 10
# The built-ins a VM runtime needs (bench_watch builds its runtime from them).
PLUGINS = [("core_models", models), ("core_storage", storage), ("core_drivers", drivers),
           ("core_tasks", tasks), ("core_vms", vm_tasks)]


def populate(runtime, count: int) -> None:
    """``count`` VMs of the shape templates give (2 disks, a NIC, VNC), owned by 10 users: a few
    validated specs, copied with their own name, UUID and MAC (validating 10,000 is slow)."""
    rng = random.Random(7)
    shapes = [validate_spec({"name": "shape", "owner": "user0", "template": "debian", "os_type": "linux",
                             "cpus": 1 + i, "memory": "2G", "description": "benchmark VM",
                             "tags": ["bench", f"rack{i}"], "disks": [{"size": "20G"}, {"size": "100G"}],
                             "nics": [{}], "graphics": {"vnc": True}}, SpecContext(rng=rng)).to_data()
              for i in range(4)]
    rows = []
    for index in range(count):
        name, owner = f"vm{index:05d}", f"user{index % OWNERS}"
        vm_uuid = str(uuidlib.UUID(int=rng.getrandbits(128)))
        spec = dict(shapes[index % 4], name=name, owner=owner, uuid=vm_uuid)
        mac = f"58:9c:fc:{index >> 16:02x}:{(index >> 8) & 255:02x}:{index & 255:02x}"
        spec["nics"] = [dict(spec["nics"][0], mac=mac)]
        rows.append({"name": name, "uuid": vm_uuid, "owner": owner, "datastore": "default", "spec": spec,
                     "state": "running" if index % 3 else "stopped", "state_detail": "", "status": {}})
    with runtime.engine.begin() as connection:
        for first in range(0, count, 2000):
            connection.execute(insert(VM), rows[first:first + 2000])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> bytes:
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        # The server closed the idle keep-alive connection (uvicorn: after 5 s) while the other
        # side's burst ran on a loaded machine: open a new one, as any HTTP client would.
        connection.close()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"bench_vm_list: {path}: {response.status} {body[:300]!r}")
    return body


def measure(label: str, directory: Path, database_url: str, vms: int, rounds: int, burst: int) -> tuple[list, list]:
    work = directory / label
    work.mkdir()
    port, anchor_port = free_port(), free_port()
    config = work / "bhype.toml"
    config.write_text(toml_table("core", {"data_dir": str(work / "data"), "log_level": "warning",
                                          "database_url": database_url})
                      + toml_table("api", {"host": "127.0.0.1", "port": port})
                      + toml_table("queue", {"in_process_worker": False})
                      + toml_table("auth", {"account_recheck_interval": 86400}))
    runtime = build_runtime(load_settings(config), make_plugin_manager())
    upgrade(runtime)
    populate(runtime, vms)
    token = create_app(runtime=runtime).state.auth.tokens.create("root", "admin", "bench").secret
    operator = create_app(runtime=runtime).state.auth.tokens.create("user3", "operator", "bench").secret
    runtime.engine.dispose()
    bhype = str(Path(sys.executable).with_name("bhype"))
    server = start([bhype, "--config", str(config), "serve"], work / "serve.log",
                   lambda: answers(f"http://127.0.0.1:{port}/api/v1/health"), "bhype serve")
    anchor = start([sys.executable, str(HERE / "anchor_vm_list.py"), database_url, str(anchor_port)],
                   work / "anchor.log", lambda: answers(f"http://127.0.0.1:{anchor_port}/vms?limit=1"), "anchor")
    memory = [{"database": label, "process": "bhype serve", "VMs": str(vms),
               "RSS MB at rest": f"{rss_mb(server.pid):.0f}"}]
    middle = f"vm{vms // 2 - 1:05d}"
    cases = [  # (label, bHype path + headers, anchor path, VMs expected)
        ("default page (100)", "/api/v1/vms", token, "/vms", 100),
        (f"page after {middle} (cursor)", f"/api/v1/vms?after={encode_cursor('name', {'name': middle})}", token,
         f"/vms?after={middle}", 100),
        ("1,000 VMs (limit=1000)", "/api/v1/vms?limit=1000", token, "/vms?limit=1000", 1000),
        ("operator's own, 1,000", "/api/v1/vms?limit=1000", operator, "/vms?limit=1000&owner=user3", vms // OWNERS),
    ]
    rows = []
    try:
        ours = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        bare = http.client.HTTPConnection("127.0.0.1", anchor_port, timeout=60)
        for name, path, secret, anchor_path, expect in cases:
            headers = {"Authorization": f"Bearer {secret}"}
            mine, theirs = json.loads(get(ours, path, headers)), json.loads(get(bare, anchor_path, {}))
            assert len(mine["vms"]) == min(expect, 1000 if "limit" in path else 100), (name, len(mine["vms"]))
            assert mine["vms"] == theirs["vms"], f"{name}: the anchor's JSON differs"  # same rows, same JSON
            for _ in range(5):  # warm-up
                get(ours, path, headers), get(bare, anchor_path, {})
        samples = {c[0]: ([], []) for c in cases}
        for round_no in range(rounds):
            for name, path, secret, anchor_path, _ in cases:
                headers = {"Authorization": f"Bearer {secret}"}
                sides = [(0, ours, path, headers), (1, bare, anchor_path, {})]
                for side, connection, target, extra in (sides if round_no % 2 == 0 else sides[::-1]):
                    for _ in range(burst):
                        started = time.perf_counter()
                        get(connection, target, extra)
                        samples[name][side].append(time.perf_counter() - started)
        for name, (mine_s, bare_s) in samples.items():
            p50, p99 = percentile(mine_s, 50) * 1000, percentile(mine_s, 99) * 1000
            a50, a99 = percentile(bare_s, 50) * 1000, percentile(bare_s, 99) * 1000
            rows.append({"database": label, "request": name, "n": str(len(mine_s)), "bHype p50": f"{p50:.2f}",
                         "bHype p99": f"{p99:.2f}", "anchor p50": f"{a50:.2f}", "anchor p99": f"{a99:.2f}",
                         "ratio p50": f"{p50 / a50:.2f}", "ratio p99": f"{p99 / a99:.2f}"})
        memory.append({"database": label, "process": "bhype serve", "VMs": str(vms),
                       "RSS MB at rest": f"{rss_mb(server.pid):.0f} (after the requests)"})
        memory.append({"database": label, "process": "anchor", "VMs": str(vms),
                       "RSS MB at rest": f"{rss_mb(anchor.pid):.0f}"})
    finally:
        stop(server)
        stop(anchor)
    return rows, memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    parser.add_argument("--burst", type=int, default=10, help="requests per side per round (default 10)")
    parser.add_argument("--vms", type=int, default=10000, help="VM records (default 10000)")
    args = parser.parse_args(argv)
    rows, memory = [], []
    with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
        sqlite_url = f"sqlite:///{directory}/list.db"
        got = measure("sqlite", Path(directory), sqlite_url, args.vms, args.rounds, args.burst)
        rows += got[0]
        memory += got[1]
        try:
            from bhype_core.testing.database import MariaDBDatabases, mariadb_server_url

            databases = MariaDBDatabases(mariadb_server_url())
            url = databases.create()
        except Exception as exc:  # noqa: BLE001 - MariaDB is optional for a local run
            print(f"MariaDB skipped: {exc}", file=sys.stderr)
        else:
            try:
                got = measure("mariadb", Path(directory), url, args.vms, args.rounds, args.burst)
                rows += got[0]
                memory += got[1]
            finally:
                databases.drop(url)
    print_table(f"GET /api/v1/vms at {args.vms} VM records: bhype serve vs a bare SQL + JSON app (ms, loopback HTTP)",
                rows)
    print_table("RSS of the serving processes", memory)
    return 0


if __name__ == "__main__":
    orjson.dumps  # noqa: B018 - the anchor needs orjson too; fail early without it
    sys.exit(main())
