"""Where one trivial task's time goes: every SQL statement, commit and Redis command of the
path submit → running → end, counted and timed (issue 15). Not a benchmark (nothing is
compared): the numbers say which round trips to cut.

Run: ``.venv/bin/python benchmarks/profile_task.py [--backend redis|sqlite] [-n N]``. The
worker runs in this process (threads, like ``bhype serve``) so SQLAlchemy's events and the Redis
client see every statement of both sides; the submitting thread is told apart by name.
"""

from __future__ import annotations

import argparse
import collections
import secrets
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from report import print_table
from sqlalchemy import event

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.auth.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import FINAL_STATES
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.tasks.worker import start_in_process_worker
from bhype_core.testing.database import MariaDBDatabases, mariadb_server_url
from bhype_core.testing.queue import delete_keys, queue_config, redis_server_url, settings_from


class Recorder:
    """Statements, commits and their wall time, per side (``api`` = the submitting thread)."""

    def __init__(self, trace: bool = False) -> None:
        self.trace = trace
        self.lock = threading.Lock()
        self.on = False
        self.counts: dict[tuple[str, str], int] = collections.Counter()
        self.times: dict[tuple[str, str], float] = collections.Counter()
        self.started: dict[int, float] = {}
        self.local = threading.local()  # quiet: the submitter's polling for the end

    def side(self) -> str:
        return "api" if threading.current_thread().name == "submitter" else "worker"

    def add(self, what: str, seconds: float) -> None:
        if not self.on or getattr(self.local, "quiet", False):
            return
        key = (self.side(), what)
        with self.lock:
            self.counts[key] += 1
            self.times[key] += seconds

    def install(self, engine: Any) -> None:
        def before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
            self.started[id(cursor)] = time.perf_counter()

        def after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
            begun = self.started.pop(id(cursor), time.perf_counter())
            words = statement.split()
            label = " ".join(words[:2]).upper() if words[0].upper() == "SELECT" and "GET_LOCK" in statement.upper() \
                else words[0].upper()
            if "RELEASE_LOCK" in statement.upper():
                label = "SELECT RELEASE_LOCK"
            self.add(label, time.perf_counter() - begun)

        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        # Commits and checkouts, timed at the DBAPI level.
        pool = engine.pool

        def checkout(dbapi_connection, record, proxy):  # noqa: ANN001
            where = ""
            if self.trace:  # which bHype function checked the connection out
                frames = [f for f in traceback.extract_stack()[:-1] if "bhype_core" in f.filename]
                where = " " + " < ".join(f"{f.name}" for f in frames[::-1][:3])
            self.add("pool checkout" + where, 0.0)
            if getattr(dbapi_connection, "_bhype_wrapped", False):
                return
            commit, rollback = dbapi_connection.commit, dbapi_connection.rollback

            def timed_commit() -> None:
                begun = time.perf_counter()
                commit()
                self.add("COMMIT", time.perf_counter() - begun)

            def timed_rollback() -> None:
                begun = time.perf_counter()
                rollback()
                self.add("ROLLBACK", time.perf_counter() - begun)

            try:
                dbapi_connection.commit, dbapi_connection.rollback = timed_commit, timed_rollback
                dbapi_connection._bhype_wrapped = True
            except AttributeError:  # sqlite3 connections are not writable: count only
                pass

        event.listen(pool, "checkout", checkout)

    def install_redis(self, huey: Any) -> None:
        client = huey.storage.conn
        original = client.execute_command

        def timed(*args: Any, **options: Any) -> Any:
            begun = time.perf_counter()
            try:
                return original(*args, **options)
            finally:
                name = str(args[0]).upper()
                if name != "BZPOPMIN" or time.perf_counter() - begun < 0.9:  # an empty blocking pop is idle time
                    self.add(f"redis {name}", time.perf_counter() - begun)

        client.execute_command = timed

    def rows(self, tasks: int) -> list[dict[str, str]]:
        out = []
        for (side, what), count in sorted(self.counts.items()):
            out.append({"side": side, "what": what, "per task": f"{count / tasks:.2f}",
                        "ms per task": f"{self.times[(side, what)] * 1000 / tasks:.2f}",
                        "ms each": f"{self.times[(side, what)] * 1000 / count:.2f}"})
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="redis", choices=("redis", "sqlite"))
    parser.add_argument("-n", type=int, default=30, help="tasks, one at a time")
    parser.add_argument("--idle", type=float, default=0.2)
    parser.add_argument("--trace", action="store_true", help="count checkouts by the functions that made them")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bhype-profile-") as directory:
        cleanup = []
        if args.backend == "redis":
            prefix = f"bhype_profile_{secrets.token_hex(4)}"
            raw = queue_config(Path(directory) / "data", "redis", redis_url=redis_server_url(), name=prefix)
            databases = MariaDBDatabases(mariadb_server_url())
            raw["core"]["database_url"] = databases.create()
            cleanup += [databases.drop_all, lambda: delete_keys(redis_server_url(), prefix)]
        else:
            raw = queue_config(Path(directory) / "data", "sqlite")
        raw["queue"]["workers"] = 2
        raw["tasks"] = {"per_user_limit": 2}
        plugins = [("core_models", core_models), ("core_tasks", core_tasks)]
        runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
        upgrade(runtime)
        recorder = Recorder(args.trace)
        recorder.install(runtime.engine)
        if args.backend == "redis":
            recorder.install_redis(runtime.queue.huey)
        handle = start_in_process_worker(runtime)
        phases: dict[str, list[float]] = collections.defaultdict(list)
        try:
            def submit_all() -> None:
                for n in range(args.n + 3):
                    time.sleep(args.idle)
                    recorder.on = n >= 3  # the first ones warm up (start-up jobs settle)
                    begun = time.perf_counter()
                    task = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"echo": n})
                    submitted = time.perf_counter()
                    recorder.local.quiet = True
                    while (row := store.get_task(runtime.engine, task.id)) is None or row.state not in FINAL_STATES:
                        time.sleep(0.002)
                    recorder.on = recorder.local.quiet = False
                    if n >= 3:
                        phases["submit() call"].append(submitted - begun)
                        phases["created -> started"].append((row.started - row.created).total_seconds())
                        phases["created -> picked_up"].append((row.picked_up - row.created).total_seconds())
                        phases["picked_up -> finished"].append((row.finished - row.picked_up).total_seconds())

            thread = threading.Thread(target=submit_all, name="submitter")
            thread.start()
            thread.join()
        finally:
            handle.stop(timeout=30)
            runtime.engine.dispose()
            for step in reversed(cleanup):
                step()
    print_table(f"statements per task ({args.backend}, {args.n} tasks one at a time; the API side is the "
                "submitter, the worker side everything else)", recorder.rows(args.n))
    print_table("phases (ms)", [{"phase": name, "p50": f"{sorted(v)[len(v) // 2] * 1000:.1f}",
                                 "max": f"{max(v) * 1000:.1f}"} for name, v in phases.items()])
    return 0


if __name__ == "__main__":
    sys.exit(main())
