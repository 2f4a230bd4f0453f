"""The database step: embedded SQLite needs nothing now; MariaDB and Redis must answer.

The embedded database and queue are created 0600 by the worker at its first start and migrated
by ``bhype serve`` (bhype_core.private_files, commands/serve.py): host init only says so. A
configured MariaDB (``core.database_url``) and Redis (``core.redis_url``) are checked with one
connection each; an unreachable one is a problem host init cannot fix (it never creates
databases or users on a server it does not own). Pending migrations on MariaDB are applied by
``bhype db upgrade`` (docs/upgrade.md), shown here as that step's change.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import Any

from bhype_core.hostinit.plan import Change, Step

Checker = Callable[[str], tuple[bool, str]]


def check_sql(url: str) -> tuple[bool, str]:
    """One connection to ``url`` (bhype_core.db.engine.check_database: never raises)."""
    from bhype_core.db.engine import check_database, make_engine

    engine = make_engine(url)
    try:
        result = check_database(engine)
    finally:
        engine.dispose()
    return result["ok"], result["detail"]


def check_redis(url: str) -> tuple[bool, str]:
    """PING ``url`` with a short timeout."""
    from urllib.parse import urlsplit

    import redis

    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or 6379}"  # never the password
    try:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        client.ping()
        return True, f"Redis answers at {where}"
    except Exception as exc:  # reported as a problem, never raised
        return False, f"Redis at {where}: {type(exc).__name__}: {exc}"


def plan_database(settings: Any, check: Checker = check_sql, ping: Checker = check_redis,
                  pending: Callable[[], list[str]] | None = None) -> Step:
    """Embedded: a note. MariaDB/Redis: reachable, and migrations applied."""
    notes, problems, changes = [], [], []
    url = settings.core.database_url
    if not url:
        notes.append(f"embedded SQLite in {settings.core.data_dir}: created 0600 by the worker at its first "
                     "start and migrated by bhype serve")
    else:
        ok, detail = check(url)
        (notes if ok else problems).append(detail)
        missing = pending() if ok and pending is not None else []
        if missing:
            changes.append(Change(f"apply {len(missing)} database migration(s) ({', '.join(missing)})",
                                  ((shutil.which("bhype") or "bhype", "db", "upgrade"),), "docs/upgrade.md"))
    if settings.core.redis_url:
        ok, detail = ping(settings.core.redis_url)
        (notes if ok else problems).append(detail)
    return Step("database", "docs/configuration.md", tuple(changes), tuple(notes), tuple(problems))
