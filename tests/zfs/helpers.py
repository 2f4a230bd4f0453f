"""Helpers for the ZFS tests: settings that drive the ZFS guest, and task contexts."""

from __future__ import annotations

from pathlib import Path

from bhype_core.testing import make_settings


def guest_settings(data_dir: Path, host, **sections: dict):
    """Settings whose runner drives the ZFS guest and whose ``zfs`` datastore is tank/bhype."""
    base = {
        "core": {"platform": "linux"},
        "runner": {"target": host.target, "ssh_identity": str(host.identity), "ssh_options": list(host.options),
                   "default_timeout": 300},
        "zfs": {"pool": "tank", "platform": "linux"},
        "vm": {"datastores": {"zfs": {"backend": "zfs", "dataset": "tank/bhype"}}, "default_datastore": "zfs"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return make_settings(data_dir, **base)


def task_context(runtime, kind: str = "test", user: str | None = "alice"):
    """A context for calling a task kind's code directly (what the worker hands it)."""
    from bhype_core.tasks import TaskContext

    return TaskContext(runtime, task_id=f"test-{kind}", kind=kind, user=user)
