"""``target test``: can the worker reach the target, log in, write there, and how much is free?"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

from bhype_backup.endpoint import Endpoint
from bhype_core.plugin_api import BhypeError, human_size


def check_target(context: Any, endpoint: Endpoint) -> tuple[bool, str, int | None]:
    """``(ok, message, free bytes)``. A probe directory ``.bhype-probe-<hex>`` with one small
    file is written and removed again (rsync for file targets, ``zfs create``/``destroy`` of a
    child for ZFS targets), so authentication and write access are both proven."""
    probe = f".bhype-probe-{secrets.token_hex(4)}"
    kind = endpoint.dest.kind
    try:
        if kind == "zfs":
            dataset = f"{endpoint.dest.path}/{probe.lstrip('.')}"
            endpoint.runner.run(endpoint.ssh_argv(["zfs", "create", "-p", dataset]), timeout=120)
            endpoint.runner.run(endpoint.ssh_argv(["zfs", "destroy", dataset]), timeout=120)
            text = endpoint.runner.run(endpoint.ssh_argv(["zfs", "list", "-Hp", "-o", "avail", endpoint.dest.path]),
                                       timeout=60).stdout.strip()
            free: int | None = int(text) if text.isdigit() else None
        else:
            with tempfile.TemporaryDirectory(prefix="bhype-bk-") as scratch:
                (Path(scratch) / probe).mkdir()
                (Path(scratch) / probe / "written-by-bhype").write_text("probe\n")
                endpoint.rsync([scratch + "/"], endpoint.url(""), inplace=False, delta=False)
            endpoint.remove_tree(probe)
            free = endpoint.free_bytes()
    except BhypeError as exc:
        return False, f"target {endpoint.target.name} failed: {exc}", None
    where = f", {human_size(free)} free" if free is not None else " (free space: the target cannot say)"
    return True, f"target {endpoint.target.name} reachable, logged in, writable{where}", free
