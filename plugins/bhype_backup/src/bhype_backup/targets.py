"""Named backup targets (admin only): add (pin the host key, store the secret), list, show,
test, remove. Adding, testing and removing run in the worker (task kinds); listing and showing
read the ``backup_target`` table.

Secrets (a daemon password, an SSH private key) arrive as task arguments and are written at
once to 0600 files only the worker (root) reads (``write_secret``); the task's stored arguments
are then overwritten (``"(stored)"``), so neither the task API, the log nor the audit trail
ever shows them, and rsync/ssh only see their paths (``--password-file``, ``-i``).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from sqlmodel import select

from bhype_backup.destinations import parse_destination
from bhype_backup.endpoint import Endpoint, secrets_dir
from bhype_backup.models import BackupPoint, BackupTarget
from bhype_core.plugin_api import (
    CommandError,
    Conflict,
    NotFound,
    Task,
    ValidationErrors,
    fingerprint,
    parse_known_hosts,
    pin_host_key,
    remove_secret,
    session,
    utcnow,
    write_secret,
)

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
SCRUBBED = "(stored)"
SECRET_ARGUMENTS = ("password", "key")


class TargetPublic(BaseModel):
    """A target as the API and CLI show it: never a secret, only whether there is one."""

    id: int
    name: str
    kind: str
    destination: str
    windows: bool
    has_secret: bool
    host_key_fingerprints: list[str]
    description: str
    tested_at: Any = None
    test_ok: bool | None = None
    test_message: str = ""
    free_bytes: int | None = None
    created: Any = None


def public(target: BackupTarget) -> TargetPublic:
    """What may be shown of ``target``."""
    prints = [f"{kind} {fingerprint(key)}" for _, kind, key in parse_known_hosts(target.host_key)]
    return TargetPublic(id=target.id or 0, name=target.name, kind=target.kind, destination=target.destination,
                        windows=target.windows, has_secret=target.has_secret, host_key_fingerprints=prints,
                        description=target.description, tested_at=target.tested_at, test_ok=target.test_ok,
                        test_message=target.test_message, free_bytes=target.free_bytes, created=target.created)


def list_targets(runtime: Any) -> list[BackupTarget]:
    """Every target, by name."""
    with session(runtime) as db:
        return list(db.exec(select(BackupTarget).order_by(BackupTarget.name)))


def get_target(runtime: Any, name: str) -> BackupTarget:
    """Target ``name``; :class:`NotFound` otherwise."""
    with session(runtime) as db:
        found = db.exec(select(BackupTarget).where(BackupTarget.name == name)).first()
    if found is None:
        raise NotFound(f"no backup target named {name!r}")
    return found


def check_add(name: str, destination: str, password: str | None, key: str | None) -> str:
    """Validate ``target add`` arguments (also at submission); returns the kind."""
    errors = ValidationErrors()
    if not isinstance(name, str) or not NAME.match(name):
        errors.add("name", "must start with a lower-case letter: a-z, 0-9, '_' and '-' (at most 63)")
    kind = ""
    try:
        kind = parse_destination(destination).kind
    except ValidationErrors as exc:
        errors.extend(exc)
    if password is not None and kind and kind != "daemon":
        errors.add("password", "only an rsync daemon target takes a password (SSH targets use a key)")
    if key is not None and kind and kind not in ("ssh", "zfs"):
        errors.add("key", "only SSH and ZFS targets take a private key")
    if key is not None and "PRIVATE KEY" not in key:
        errors.add("key", "must be a private key in OpenSSH or PEM format")
    if kind in ("ssh", "zfs") and key is None:
        errors.add("key", "an SSH or ZFS target needs the private key bHype logs in with")
    errors.raise_if_any()
    return kind


def _scrub(runtime: Any, task_id: str) -> None:
    """Overwrite the secrets in this task's stored arguments."""
    with session(runtime, write=True) as db:
        row = db.get(Task, task_id)
        if row is not None:
            row.arguments = {k: (SCRUBBED if k in SECRET_ARGUMENTS and v is not None else v)
                             for k, v in row.arguments.items()}
            db.add(row)


def add_target(context: Any, name: str, destination: str, password: str | None = None, key: str | None = None,
               windows: bool = False, description: str = "") -> dict[str, Any]:
    """Task ``backup.target_add``: pin the SSH host key (SSH/ZFS), store the secret, add the row."""
    runtime = context.runtime
    try:
        kind = check_add(name, destination, password, key)
        dest = parse_destination(destination)
        with session(runtime) as db:
            if db.exec(select(BackupTarget).where(BackupTarget.name == name)).first() is not None:
                raise Conflict(f"a backup target named {name!r} exists")
        host_key = ""
        if kind in ("ssh", "zfs"):
            # ZFS targets: keyscan where the ssh client will run (the worker's machine, zfs_target.py).
            host_key = pin_host_key(dest.host, dest.port or 22,
                                    runner=runtime.local_runner if kind == "zfs" else context.runner)
            prints = ", ".join(f"{k} {fingerprint(b)}" for _, k, b in parse_known_hosts(host_key))
            context.log(f"pinned the SSH host key of {dest.host}: {prints}")
        directory = secrets_dir(runtime, name)
        if password is not None:
            write_secret(directory / "password", password)
        if key is not None:
            write_secret(directory / "id_key", key if key.endswith("\n") else key + "\n")
        if host_key:
            write_secret(directory / "known_hosts", host_key)
        row = BackupTarget(name=name, kind=kind, destination=dest.display(), port=dest.port, windows=windows,
                           host_key=host_key, has_secret=password is not None or key is not None,
                           description=description)
        with session(runtime) as db:
            db.add(row)
        context.log(f"added backup target {name} ({kind}: {dest.display()})")
        return public(row).model_dump(mode="json")
    finally:
        _scrub(runtime, context.task_id)


def test_target(context: Any, name: str) -> dict[str, Any]:
    """Task ``backup.target_test``: reachability, authentication, write access (a probe file
    written and removed) and free space; the outcome is stored on the target."""
    from bhype_backup.target_check import check_target

    runtime = context.runtime
    target = get_target(runtime, name)
    ok, message, free = check_target(context, Endpoint(runtime, target))
    with session(runtime, write=True) as db:
        row = db.get(BackupTarget, target.id)
        if row is not None:
            row.tested_at, row.test_ok, row.test_message, row.free_bytes = utcnow(), ok, message, free
            db.add(row)
    context.log(message, "info" if ok else "error")
    if not ok:
        raise CommandError(["backup target test", name], None, reason=message)
    return {"name": name, "ok": ok, "message": message, "free_bytes": free}


def remove_target(context: Any, name: str, force: bool = False) -> dict[str, Any]:
    """Task ``backup.target_remove``: remove the row and its secrets. Points stay on the target
    itself; their rows are refused unless ``force`` (then forgotten, not deleted)."""
    runtime = context.runtime
    target = get_target(runtime, name)
    with session(runtime, write=True) as db:
        points = list(db.exec(select(BackupPoint).where(BackupPoint.target == name)))
        if points and not force:
            raise Conflict(f"target {name} still has {len(points)} backup point(s): delete them, or remove with force")
        for point in points:
            db.delete(point)
        row = db.get(BackupTarget, target.id)
        if row is not None:
            db.delete(row)
    directory = secrets_dir(runtime, name)
    for leaf in ("password", "id_key", "known_hosts"):
        remove_secret(directory / leaf)
    try:
        directory.rmdir()
    except OSError:
        pass
    context.log(f"removed backup target {name} ({len(points)} point record(s) forgotten)")
    return {"name": name, "forgotten_points": len(points)}
