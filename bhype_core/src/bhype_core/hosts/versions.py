"""Mixed versions in a group: what a worker says when it is handed a task kind it does not know."""

from __future__ import annotations

from typing import Any

from bhype_core.hosts.capacity import versions
from bhype_core.hosts.settings import local_host_name


def describe_versions(runtime: Any) -> str:
    """``bhype-core 0.1.0, bhype-zfs 0.3.0`` for this process."""
    return ", ".join(f"{name} {version}" for name, version in sorted(versions(runtime).items()))


def unknown_kind(runtime: Any, kind: str) -> str:
    """The error of a task whose kind this worker does not know: its host and versions, so the
    admin sees which host runs an older or newer bHype or lacks a plugin."""
    return (f"task kind {kind!r} is not known on host {local_host_name(runtime)!r} ({describe_versions(runtime)}): "
            "its bHype or plugin versions differ from the group's, or the plugin was removed; "
            "refused without running anything")
