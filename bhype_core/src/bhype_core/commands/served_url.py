"""Where the local ``bhype serve`` listens, so the CLI follows ``serve --port N`` by itself.

``bhype serve`` records its URL and pid in ``<data_dir>/served.json`` while it runs; the CLI's
default URL reads it when that process is still alive, so ``./dev serve --port 9000`` and then
``bhype vm list`` in another shell talk to the same server without ``--url``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RECORD = "served.json"


def record_path(settings: Any) -> Path:
    """The record's path in the data directory of ``settings``."""
    return Path(settings.core.data_dir) / RECORD


def local_url(host: str, port: int) -> str:
    """The URL a local client uses for a server on ``host:port`` (a wildcard means loopback)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def record(settings: Any, host: str, port: int) -> Path:
    """Write this process's URL (atomically: a reader never sees half)."""
    path = record_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(f".{RECORD}.{os.getpid()}")
    staged.write_text(json.dumps({"url": local_url(host, port), "pid": os.getpid()}), encoding="utf-8")
    os.replace(staged, path)
    return path


def forget(settings: Any) -> None:
    """Remove the record if it is this process's."""
    path = record_path(settings)
    if _read(path).get("pid") == os.getpid():
        path.unlink(missing_ok=True)


def served_url(settings: Any) -> str | None:
    """The URL of the ``bhype serve`` recorded for ``settings``, if that process still runs."""
    data = _read(record_path(settings))
    pid, url = data.get("pid"), data.get("url")
    if not isinstance(pid, int) or not isinstance(url, str) or not _alive(pid):
        return None
    return url


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return pid > 0
