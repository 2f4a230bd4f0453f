"""Login latency through real PAM with a real local user: p50/p99 for success and each failure.

Run: ``./dev bench login`` or ``.venv/bin/python benchmarks/bench_login.py [-n N] [--floor S]``
(root, Linux). Shows raw PAM times (where an unknown user answers much faster than a wrong
password), the same logins with bHype's failure floor (all failures alike), and logins through
the privileged Unix-socket daemon.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from report import print_table, summary_ms

from bhype_core.auth.login import login
from bhype_core.auth.pam import FailureFloor, LoginFailed, pam_check
from bhype_core.auth.privileged import PrivilegedClient, PrivilegedServer
from bhype_core.auth.settings import AuthSettings
from bhype_core.testing.users import LocalUsers


def timed(action: Callable[[], object], count: int, parallel: int = 1) -> list[float]:
    """Durations of ``count`` calls of ``action`` (failures included), ``parallel`` at a time."""

    def one(_: int) -> float:
        started = time.perf_counter()
        try:
            action()
        except LoginFailed:
            pass
        return time.perf_counter() - started

    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(one, range(count)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=30, help="samples per case (default 30)")
    parser.add_argument(
        "--floor", type=float, default=AuthSettings().failure_min_seconds, help="failure floor, s"
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0 or not sys.platform.startswith("linux"):
        print("bench_login: needs root on Linux (creates a local user, reads /etc/shadow)", file=sys.stderr)
        return 2

    with LocalUsers() as users:
        operators = users.group()
        service = users.pam_service()
        user = users(groups=[operators])
        settings = AuthSettings(
            pam_service=service, operator_groups=[operators.name], failure_min_seconds=args.floor
        )
        floor = FailureFloor(seconds=args.floor)
        # Floored failures mostly sleep: run them 5 at a time so the benchmark stays short.
        lanes = 5
        rows = [
            {
                "case": "raw PAM: success",
                **summary_ms(timed(lambda: pam_check(user.name, user.password, service), args.n)),
            },
            {
                "case": "raw PAM: wrong password",
                **summary_ms(timed(lambda: pam_check(user.name, "x", service), args.n)),
            },
            {
                "case": "raw PAM: unknown user",
                **summary_ms(timed(lambda: pam_check("bht_nobody", "x", service), args.n)),
            },
            {
                "case": "login: success",
                **summary_ms(timed(lambda: login(user.name, user.password, settings, floor), args.n)),
            },
            {
                "case": "login: wrong password",
                **summary_ms(timed(lambda: login(user.name, "x", settings, floor), args.n, lanes)),
            },
            {
                "case": "login: unknown user",
                **summary_ms(timed(lambda: login("bht_nobody", "x", settings, floor), args.n, lanes)),
            },
        ]

        with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
            server = PrivilegedServer(Path(directory) / "auth.sock", settings, [os.geteuid()], floor=floor)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                client = PrivilegedClient(server.socket_path)
                rows.append(
                    {
                        "case": "daemon: success",
                        **summary_ms(timed(lambda: client.authenticate(user.name, user.password), args.n)),
                    }
                )
                rows.append(
                    {
                        "case": "daemon: unknown user",
                        **summary_ms(timed(lambda: client.authenticate("bht_nobody", "x"), args.n, lanes)),
                    }
                )
                rows.append(
                    {
                        "case": "daemon: account_status",
                        **summary_ms(timed(lambda: client.account_status(user.name), args.n)),
                    }
                )
            finally:
                server.shutdown()
                server.server_close()

    print_table(f"login latency (failure floor {args.floor:g} s + up to 10% jitter)", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
