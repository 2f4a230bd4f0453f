"""``GET /api/v1/vms`` with 1,000 VM records: p50/p99 through the real app (real API token,
real database), on SQLite and, when reachable, MariaDB.

Run: ``./dev bench vm_list`` or ``.venv/bin/python benchmarks/bench_vm_list.py [-n N] [--vms V]``.
Rows: an admin listing every VM, an operator listing their own tenth, and one VM's detail.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient
from report import print_table, summary_ms
from sqlmodel import Session

from bhype_core.api.app import create_app
from bhype_core.builtins import drivers, models, storage, tasks, vm_tasks
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.spec import SpecContext, validate_spec
from bhype_core.testing import make_settings
from bhype_core.testing.api_auth import token_headers
from bhype_core.vm.models import VM

PLUGINS = [("core_models", models), ("core_storage", storage), ("core_drivers", drivers),
           ("core_tasks", tasks), ("core_vms", vm_tasks)]
OWNERS = 10


def populate(runtime, count: int) -> None:
    """``count`` VMs of the shapes templates give (2 disks, a NIC, VNC), owned by 10 users."""
    rng = random.Random(7)
    macs: set[str] = set()
    rows = []
    for index in range(count):
        data = {"name": f"vm{index:04d}", "owner": f"user{index % OWNERS}", "template": "debian",
                "os_type": "linux", "cpus": 2, "memory": "2G", "description": f"benchmark VM {index}",
                "tags": ["bench", f"rack{index % 7}"], "disks": [{"size": "20G"}, {"size": "100G"}],
                "nics": [{}], "graphics": {"vnc": True}}
        spec = validate_spec(data, SpecContext(existing_macs=macs, rng=rng))
        macs.update(nic.mac for nic in spec.nics)
        rows.append(VM(name=spec.name, uuid=str(spec.uuid), owner=spec.owner, datastore="default",
                       spec=spec.to_data(), state="running" if index % 3 else "stopped"))
    with Session(runtime.engine) as db:
        db.add_all(rows)
        db.commit()


def timed(client: TestClient, path: str, headers: dict[str, str], count: int, expect: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        body = response.json()
        if "vms" in body:
            assert len(body["vms"]) == expect, len(body["vms"])
    return samples


def measure(label: str, database_url: str | None, directory: Path, count: int, vms: int) -> list[dict[str, str]]:
    core = {"database_url": database_url} if database_url else {}
    settings = make_settings(directory / label, core=core)
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=PLUGINS))
    upgrade(runtime)
    populate(runtime, vms)
    app = create_app(runtime=runtime)
    admin = token_headers(app, "root", "admin")
    operator = token_headers(app, "user3", "operator")
    rows = []
    with TestClient(app) as client:
        for _ in range(5):  # warm-up: imports, connection pool, caches
            client.get("/api/v1/vms", headers=admin)
        rows.append({"database": label, "request": f"list {vms} VMs (admin)",
                     **summary_ms(timed(client, "/api/v1/vms", admin, count, vms))})
        rows.append({"database": label, "request": f"list own {vms // OWNERS} (operator)",
                     **summary_ms(timed(client, "/api/v1/vms", operator, count, vms // OWNERS))})
        rows.append({"database": label, "request": "one VM's detail",
                     **summary_ms(timed(client, "/api/v1/vms/vm0003", operator, count, 1))})
    runtime.engine.dispose()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="requests per case (default 100)")
    parser.add_argument("--vms", type=int, default=1000, help="VM records (default 1000)")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
        rows += measure("sqlite", None, Path(directory), args.n, args.vms)
        try:
            from bhype_core.testing.database import MariaDBDatabases, mariadb_server_url

            databases = MariaDBDatabases(mariadb_server_url())
            url = databases.create()
        except Exception as exc:  # noqa: BLE001 - MariaDB is optional for a local run
            print(f"MariaDB skipped: {exc}", file=sys.stderr)
        else:
            try:
                rows += measure("mariadb", url, Path(directory), args.n, args.vms)
            finally:
                databases.drop(url)
    print_table(f"GET /api/v1/vms with {args.vms} VM records (in-process app, real token)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
