"""Group of hosts (issue 22): ``GET /api/v1/vms`` with 3 hosts × 1,000 VMs, against the same
3,000 VMs on a single host in the same run.

Three processes: two real ``bhype serve`` (real API token, MariaDB, the real Redis holding the
hosts' heartbeats), one over a group database (hosts h1, h2, h3 registered and heartbeating,
1,000 VMs each) and one over a single-host database (host h1, the same 3,000 VMs), and this
client (one keep-alive HTTP connection to each). Rounds interleaved, order alternating, so
load on the machine hits both alike. Every answer is checked: the group's VMs are the anchor's
VMs byte for byte except their ``host``, which is the one each VM was put on.

Run: ``./dev bench group_list`` or ``.venv/bin/python benchmarks/bench_group_list.py [--rounds R]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench_api import answers, start, stop, toml_table
from bench_vm_list import get as get_once
from bench_vm_list import populate
from report import percentile, print_table
from sqlalchemy import update
from sqlmodel import col

from bhype_core.api.app import create_app
from bhype_core.config import load_settings
from bhype_core.db.migrate import upgrade
from bhype_core.hosts.models import Host
from bhype_core.hosts.registry import heartbeat_key
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.testing.database import MariaDBDatabases, mariadb_server_url
from bhype_core.testing.ports import free_port
from bhype_core.testing.queue import delete_keys, redis_server_url
from bhype_core.vm.models import VM

PER_HOST = 1000
CREATED = datetime(2026, 1, 1, tzinfo=UTC)
GROUP = ("h1", "h2", "h3")


def get(connection: http.client.HTTPConnection, path: str, headers: dict[str, str]) -> bytes:
    """One GET on the keep-alive ``connection``; a connection the server closed while idle
    (uvicorn's keep-alive timeout, on a loaded machine) is opened again once."""
    try:
        return get_once(connection, path, headers)
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        connection.close()
        return get_once(connection, path, headers)


def host_of(index: int, hosts: tuple[str, ...]) -> str:
    return hosts[index % len(hosts)]


def serve(label: str, directory: Path, database_url: str, prefix: str, hosts: tuple[str, ...]):
    """A migrated database with ``3 × PER_HOST`` VMs spread over ``hosts`` (all heartbeating),
    and a ``bhype serve`` on it; returns ``(process, port, admin token)``."""
    work = directory / label
    work.mkdir()
    port = free_port()
    config = work / "bhype.toml"
    config.write_text(toml_table("core", {"data_dir": str(work / "data"), "log_level": "warning",
                                          "database_url": database_url, "redis_url": redis_server_url()})
                      + toml_table("api", {"host": "127.0.0.1", "port": port})
                      + toml_table("queue", {"in_process_worker": False, "backend": "redis", "name": prefix})
                      + toml_table("host", {"name": "h1"})
                      + toml_table("auth", {"account_recheck_interval": 86400}))
    runtime = build_runtime(load_settings(config), make_plugin_manager())
    upgrade(runtime)
    count = PER_HOST * len(GROUP)
    populate(runtime, count)
    import redis

    client = redis.Redis.from_url(redis_server_url())
    with runtime.engine.begin() as connection:
        for host in hosts:
            connection.execute(Host.__table__.insert().values(  # type: ignore[attr-defined]
                name=host, address=host, platform="linux", hypervisor="qemu", capacity={}, versions={},
                task_kinds=[]))
            names = [f"vm{index:05d}" for index in range(count) if host_of(index, hosts) == host]
            # One creation time in both databases: the answers are then equal byte for byte.
            connection.execute(update(VM).where(col(VM.name).in_(names)).values(host=host, created=CREATED,
                                                                                updated=CREATED))
            # A heartbeat that outlives the run: every host reachable (the list reads them all).
            client.set(heartbeat_key(runtime, host), "2099-01-01T00:00:00+00:00", ex=3600)
    client.close()
    token = create_app(runtime=runtime).state.auth.tokens.create("root", "admin", "bench").secret
    runtime.engine.dispose()
    bhype = str(Path(sys.executable).with_name("bhype"))
    process = start([bhype, "--config", str(config), "serve"], work / "serve.log",
                    lambda: answers(f"http://127.0.0.1:{port}/api/v1/health"), f"bhype serve ({label})")
    return process, port, token


def without_host(vms: list[dict]) -> list[dict]:
    return [{key: value for key, value in vm.items() if key != "host"} for vm in vms]


def check(name: str, group: dict, single: dict, host: str | None) -> None:
    """The group's answer is the anchor's, VM for VM, except each VM's host."""
    vms, anchor = group["vms"], single["vms"]
    if host is not None:  # the filtered list: that host's VMs, in the same order
        anchor = [vm for vm in anchor if host_of(int(vm["name"][2:]), GROUP) == host]
        vms = vms[:len(anchor)]
    assert without_host(vms) == without_host(anchor), f"{name}: the VMs differ from the single host's"
    for vm in vms:
        expected = host or host_of(int(vm["name"][2:]), GROUP)
        assert vm["host"] == expected and vm["state"] != "unknown", (name, vm["name"], vm["host"], vm["state"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    parser.add_argument("--burst", type=int, default=10, help="requests per side per round (default 10)")
    args = parser.parse_args(argv)
    prefix = f"bhype_bench_{secrets.token_hex(4)}"
    databases = MariaDBDatabases(mariadb_server_url())
    processes = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
        try:
            group = serve("group", Path(directory), databases.create(), prefix + "g", GROUP)
            processes.append(group[0])
            single = serve("single", Path(directory), databases.create(), prefix + "s", ("h1",))
            processes.append(single[0])
            ours = http.client.HTTPConnection("127.0.0.1", group[1], timeout=60)
            anchor = http.client.HTTPConnection("127.0.0.1", single[1], timeout=60)
            mine_headers = {"Authorization": f"Bearer {group[2]}"}
            anchor_headers = {"Authorization": f"Bearer {single[2]}"}
            cases = [  # (label, group path, anchor path, host filter)
                ("default page (100)", "/api/v1/vms", "/api/v1/vms", None),
                ("1,000 VMs (limit=1000)", "/api/v1/vms?limit=1000", "/api/v1/vms?limit=1000", None),
                ("one host's 1,000 (host=h2)", "/api/v1/vms?limit=1000&host=h2", "/api/v1/vms?limit=1000&host=h1",
                 "h2"),
            ]
            for name, path, anchor_path, host in cases:
                mine = json.loads(get(ours, path, mine_headers))
                # The host filter is checked against the anchor's whole list, filtered here.
                reference = "/api/v1/vms?limit=1000" if host else anchor_path
                check(name, mine, json.loads(get(anchor, reference, anchor_headers)), host)
                assert len(mine["vms"]) == (100 if path == "/api/v1/vms" else 1000), (name, len(mine["vms"]))
                for _ in range(5):  # warm-up
                    get(ours, path, mine_headers), get(anchor, anchor_path, anchor_headers)
            samples = {c[0]: ([], []) for c in cases}
            for round_no in range(args.rounds):
                for name, path, anchor_path, _ in cases:
                    sides = [(0, ours, path, mine_headers), (1, anchor, anchor_path, anchor_headers)]
                    for side, connection, target, headers in (sides if round_no % 2 == 0 else sides[::-1]):
                        for _ in range(args.burst):
                            started = time.perf_counter()
                            body = get(connection, target, headers)
                            samples[name][side].append(time.perf_counter() - started)
                            if round_no == args.rounds - 1 and side == 0:  # the last answers checked too
                                host = cases_host(cases, name)
                                reference = "/api/v1/vms?limit=1000" if host else path
                                check(name, json.loads(body), json.loads(get(anchor, reference, anchor_headers)), host)
            for name, (mine_s, anchor_s) in samples.items():
                p50, p99 = percentile(mine_s, 50) * 1000, percentile(mine_s, 99) * 1000
                a50, a99 = percentile(anchor_s, 50) * 1000, percentile(anchor_s, 99) * 1000
                rows.append({"request": name, "n": str(len(mine_s)), "group p50": f"{p50:.2f}",
                             "group p99": f"{p99:.2f}", "single p50": f"{a50:.2f}", "single p99": f"{a99:.2f}",
                             "ratio p50": f"{p50 / a50:.2f}", "ratio p99": f"{p99 / a99:.2f}"})
        finally:
            for process in processes:
                stop(process)
            databases.drop_all()
            delete_keys(redis_server_url(), prefix)
    print_table(f"GET /api/v1/vms: 3 hosts × {PER_HOST} VMs (group) vs the same {PER_HOST * 3} VMs on one host "
                f"(anchor), ms, MariaDB + Redis, loopback HTTP (load {os.getloadavg()[0]:.2f})", rows)
    return 0


def cases_host(cases: list, name: str) -> str | None:
    return next(host for label, _, _, host in cases if label == name)


if __name__ == "__main__":
    sys.exit(main())
