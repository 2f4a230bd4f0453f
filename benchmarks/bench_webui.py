"""The web UI's VM list page with 1,000 VM records: server time p50/p99 and total page weight.

Run: ``./dev bench webui`` or ``.venv/bin/python benchmarks/bench_webui.py [-n N] [--vms V]``.
The real app (every installed plugin) on SQLite and, when reachable, MariaDB, with a real
browser session (cookie); the list is paged by the server (``webui.vm_page_size``, 50 rows).
Page weight = the HTML plus every stylesheet and script it loads (htmx included), as served
(uncompressed), with the gzip size beside it for a proxy that compresses.
"""

from __future__ import annotations

import argparse
import gzip
import re
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "webui"))  # PagesEnv: the app, VM rows, sessions

from pages_env import HTML, PagesEnv  # noqa: E402
from report import print_table, summary_ms  # noqa: E402

OWNERS = 10
CASES = [
    ("VM list, page 1 (admin)", "admin", "/ui/vms", {}),
    ("VM list, last page (admin)", "admin", "/ui/vms?page=20", {}),
    ("VM list, search '-004': 100 hits (admin)", "admin", "/ui/vms?q=-004", {}),
    ("VM list, own 100 (operator)", "operator", "/ui/vms", {}),
    ("VM table only (htmx filter)", "admin", "/ui/vms?state=running", {"HX-Request": "true", "HX-Target": "vm-table"}),
    ("dashboard (admin)", "admin", "/ui/", {}),
    ("one VM's page (operator)", "operator", "/ui/vms/vm0003", {}),
]


def page_weight(client, path: str) -> tuple[int, int, list[str]]:
    """Bytes of the page and of every asset it references (raw, gzip), and the asset list."""
    page = client.get(path, headers=HTML)
    assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text)
    # Modules import nothing beyond app.js, which every page loads already.
    bodies = [page.content] + [client.get(asset).content for asset in dict.fromkeys(assets)]
    return sum(map(len, bodies)), sum(len(gzip.compress(b)) for b in bodies), list(dict.fromkeys(assets))


def measure(label: str, database_url: str | None, root: Path, count: int, vms: int) -> tuple[list, list]:
    core = {"database_url": database_url} if database_url else {}
    env = PagesEnv(root / label, core=core)
    try:
        per_owner = vms // OWNERS
        for owner in range(OWNERS):
            env.add_vms(f"user{owner}", per_owner, prefix=f"vm{owner}")
        clients = {"admin": env.client("root", "admin"), "operator": env.client("user0", "operator")}
        rows = []
        for name, who, path, headers in CASES:
            client = clients[who]
            path = path.replace("vm0003", f"vm0-{3:04d}")
            for _ in range(5):  # warm-up: imports, template compilation, connection pool
                client.get(path, headers={**HTML, **headers})
            samples = []
            for _ in range(count):
                started = time.perf_counter()
                response = client.get(path, headers={**HTML, **headers})
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200, (path, response.status_code)
            rows.append({"database": label, "page": name, **summary_ms(samples)})
        raw, packed, assets = page_weight(clients["admin"], "/ui/vms")
        weight = [{"database": label, "page": "VM list page 1 (admin), 50 rows",
                   "HTML + assets KiB": f"{raw / 1024:.1f}",
                   "gzip KiB": f"{packed / 1024:.1f}", "files": str(1 + len(assets))}]
        return rows, weight
    finally:
        env.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="requests per case (default 100)")
    parser.add_argument("--vms", type=int, default=1000, help="VM records (default 1000)")
    args = parser.parse_args(argv)
    timings, weights = [], []
    with tempfile.TemporaryDirectory(prefix="bhype-bench-webui-") as directory:
        result = measure("sqlite", None, Path(directory), args.n, args.vms)
        timings += result[0]
        weights += result[1]
        try:
            from bhype_core.testing.database import MariaDBDatabases, mariadb_server_url

            databases = MariaDBDatabases(mariadb_server_url())
            url = databases.create()
        except Exception as exc:  # noqa: BLE001 - MariaDB is optional for a local run
            print(f"MariaDB skipped: {exc}", file=sys.stderr)
        else:
            try:
                result = measure("mariadb", url, Path(directory), args.n, args.vms)
                timings += result[0]
                weights += result[1]
            finally:
                databases.drop(url)
    print_table(f"Web UI pages with {args.vms} VM records (in-process app, real session cookie)", timings)
    print_table("Page weight of the VM list (as served, and gzip-compressed)", weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
