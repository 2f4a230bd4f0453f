"""Peer task kinds: pair with another bHype host (``migrate.peer_add``), forget it
(``migrate.peer_remove``) and check everything a move there needs (``migrate.peer_test``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from bhype_core.plugin_api import (
    BhypeError,
    CommandError,
    Task,
    TaskContext,
    ValidationErrors,
    VmApi,
    find_vm,
    pin_host_key,
    session,
    template_catalog,
)
from bhype_migrate import secrets
from bhype_migrate.facts import host_facts
from bhype_migrate.models import MigratePeer
from bhype_migrate.peer_client import MIGRATE, Peer, find_peer

SCRUBBED = "(stored in the worker's private file)"


def scrub_token(context: TaskContext) -> None:
    """Replace the token in this task's stored arguments: from now on it exists only in the
    worker's 0600 file (the queue message that carried it is consumed)."""
    with session(context.runtime, write=True) as db:
        row = db.get(Task, context.task_id)
        if row is not None and isinstance(row.arguments, dict) and "token" in row.arguments:
            arguments = {**row.arguments, "token": SCRUBBED}
            db.exec(update(Task).where(col(Task.id) == context.task_id).values(arguments=arguments))  # type: ignore[call-overload]


def add_peer(context: TaskContext, name: str, url: str, token: str, ssh_host: str = "",
             ssh_port: int = 22, ssh_user: str = "root") -> dict[str, Any]:
    """Pair with the bHype host at ``url``: check the token is an admin's there, keep it
    (0600), pin the SSH host key of ``ssh_host`` (default: the URL's host), make bHype's SSH
    key; returns the public key to put in ``ssh_user``'s authorized_keys on the peer."""
    scrub_token(context)
    secrets.check_peer_name(name)
    runtime = context.runtime
    with session(runtime) as db:
        if db.exec(select(MigratePeer).where(MigratePeer.name == name)).first() is not None:
            raise ValidationErrors([("name", f"a peer named {name!r} exists already")])
    from urllib.parse import urlsplit

    ssh_host = ssh_host or (urlsplit(url).hostname or "")
    if not ssh_host:
        raise ValidationErrors([("ssh_host", "no SSH host given and none in the URL")])
    facts = VmApi(url.rstrip("/"), token).request("GET", f"{MIGRATE}/info")  # 401/403: not an admin token
    context.log(f"peer {name}: bHype at {url} answers (host {facts.get('host')}, driver {facts.get('driver')})")
    # Pinned from this machine, where ssh later uses it (local_runner, not a remote [runner]).
    host_key = pin_host_key(ssh_host, ssh_port, runner=context.runtime.local_runner)
    _, public_key = secrets.ssh_key(context)
    try:
        secrets.store_token(runtime, name, token)
        secrets.store_known_hosts(runtime, name, host_key)
        row = MigratePeer(name=name, url=url.rstrip("/"), ssh_host=ssh_host, ssh_port=ssh_port,
                          ssh_user=ssh_user, host_key=host_key, token_hint=token[:12])
        with session(runtime) as db:
            db.add(row)
    except Exception:
        secrets.forget_peer_files(runtime, name)
        raise
    context.log(f"peer {name}: host key pinned; add bHype's public key to {ssh_user}'s authorized_keys there")
    return {"peer": row.public(), "public_key": public_key, "facts": facts}


def remove_peer(context: TaskContext, name: str) -> dict[str, Any]:
    """Forget peer ``name``: its row, token and pinned host key."""
    row = find_peer(context.runtime, name)
    with session(context.runtime, write=True) as db:
        stored = db.get(MigratePeer, row.id)
        if stored is not None:
            db.delete(stored)
    secrets.forget_peer_files(context.runtime, name)
    return {"removed": name}


def _check(report: list[dict[str, Any]], name: str, ok: bool, detail: str) -> bool:
    report.append({"check": name, "ok": ok, "detail": detail})
    return ok


def test_peer(context: TaskContext, name: str, vm: str | None = None) -> dict[str, Any]:
    """Check peer ``name``: its API with the token, the SSH path (and rsync there), its
    hypervisor against ours, free space, and (with ``vm``) that VM's switches, name, UUID
    and features there. The report is kept on the peer's row; the task fails when a check fails."""
    runtime = context.runtime
    peer = Peer.open(context, name)
    report: list[dict[str, Any]] = []
    facts: dict[str, Any] = {}
    try:
        facts = peer.info()
        _check(report, "api", True, f"bHype migrate {facts.get('migrate_version')} on {facts.get('host')}")
    except BhypeError as exc:
        _check(report, "api", False, f"the API refused or is unreachable: {exc.message}")
    try:
        result = context.runtime.local_runner.run(peer.ssh("rsync", "--version"), timeout=60)
        _check(report, "ssh", True, f"ssh and {result.stdout.splitlines()[0] if result.stdout else 'rsync'}")
    except CommandError as exc:
        _check(report, "ssh", False, f"ssh to {peer.row.ssh_user}@{peer.row.ssh_host}:{peer.row.ssh_port} failed: "
                                     f"{(exc.stderr or str(exc)).strip()[-300:]}")
    if facts:
        ours = host_facts(runtime)
        same = facts.get("driver") == ours["driver"]
        _check(report, "hypervisor", same, f"peer driver {facts.get('driver')} ({facts.get('platform')}), "
                                           f"ours {ours['driver']} ({ours['platform']})")
        stores = ", ".join(f"{d['name']} ({d['backend']}, {d['free']} bytes free)" for d in facts.get("datastores", []))
        _check(report, "space", any((d.get("free") or 0) > 0 for d in facts.get("datastores", [])), stores or "none")
        missing = sorted(set(template_catalog(runtime).names()) - set(facts.get("templates", [])))
        report.append({"check": "templates", "ok": True,
                       "detail": f"missing there: {', '.join(missing)}" if missing else "all of ours exist there"})
        if vm is not None:
            row = find_vm(runtime, vm)
            if row is None:
                _check(report, "vm", False, f"no VM {vm!r} here")
            else:
                fit = peer.check(row.spec, None, 0)
                problems = "; ".join(f"{path}: {message}" for path, message in fit["problems"])
                _check(report, "vm", not fit["problems"], problems or f"VM {vm} fits on {name}")
    ok = all(item["ok"] for item in report)
    with session(runtime, write=True) as db:
        stored = db.get(MigratePeer, peer.row.id)
        if stored is not None:
            stored.tested, stored.test_ok, stored.test_report = datetime.now(UTC), ok, {"checks": report}
            db.add(stored)
    for item in report:
        context.log(f"{item['check']}: {'ok' if item['ok'] else 'FAILED'}: {item['detail']}",
                    "info" if item["ok"] else "error")
    if not ok:
        failed = ", ".join(item["check"] for item in report if not item["ok"])
        raise BhypeError(f"peer {name}: check(s) failed: {failed}")
    return {"peer": name, "ok": ok, "checks": report, "facts": facts}
