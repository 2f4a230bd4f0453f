"""``bhype backup target|run|list|restore|delete``: clients of ``/api/v1/backup`` like ``bhype vm``.

Each sub-command talks to the API (``--url``/``--token`` or ``bhype login``); host work is a
task the command follows to its end (log lines on stderr, the result on stdout). Secrets are
read from a file or stdin (``--password-file``, ``--password-stdin``, ``--key-file``), never
from the command line (where ``ps`` would show them). ``--json`` prints JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import (
    CliCommand,
    StreamEvent,
    TaskFailed,
    api_from,
    api_subcommand,
    follow,
    format_table,
    human_size,
)

BACKUP = "/api/v1/backup"


# Sub-commands that talk to the API: --json, --url/--token, and the handler under backup_handler.
_sub = partial(api_subcommand, key="backup_handler")


def _emit(args: argparse.Namespace, value: Any, table: str | None = None) -> int:
    print(json.dumps(value, indent=2, sort_keys=True, default=str) if args.json or table is None else table)
    return 0


def _follow(args: argparse.Namespace, accepted: dict[str, Any]) -> Any:
    def show(event: StreamEvent) -> None:
        if event.event == "log":
            level = event.data.get("level", "info")
            text = event.data.get("message", "")
            print(text if level == "info" else f"{level}: {text}", file=sys.stderr, flush=True)

    final = follow(api_from(args), accepted["task_id"], show)
    if final is None or final.get("state") != "succeeded":
        error = (final or {}).get("error") or {}
        message = error.get("message") if isinstance(error, dict) else None
        raise TaskFailed(message or f"task {accepted['task_id']} {(final or {}).get('state', 'failed')}",
                         task_id=accepted["task_id"], kind=accepted.get("kind", ""))
    return final.get("result")


def _submit(args: argparse.Namespace, method: str, path: str, body: Any = None, **query: Any) -> int:
    accepted = api_from(args).request(method, f"{BACKUP}{path}", body, **query)
    result = _follow(args, accepted)
    return _emit(args, result, None if args.json else json.dumps(result, indent=2, sort_keys=True, default=str))


def _read_secret(path: str | None, stdin: bool) -> str | None:
    if stdin:
        return sys.stdin.readline().rstrip("\n")
    return Path(path).read_text().rstrip("\n") if path else None


def target_add(args: argparse.Namespace) -> int:
    body = {"name": args.name, "destination": args.destination, "windows": args.windows,
            "description": args.description, "password": _read_secret(args.password_file, args.password_stdin),
            "key": Path(args.key_file).read_text() if args.key_file else None}
    return _submit(args, "POST", "/targets", body)


def target_list(args: argparse.Namespace) -> int:
    rows = api_from(args).request("GET", f"{BACKUP}/targets")
    table = format_table([[t["name"], t["kind"], "yes" if t["windows"] else "", t["destination"],
                           {True: "ok", False: "FAILED", None: "-"}[t["test_ok"]],
                           human_size(t["free_bytes"]) if t["free_bytes"] is not None else "-"] for t in rows],
                         ["NAME", "KIND", "WINDOWS", "DESTINATION", "TEST", "FREE"])
    return _emit(args, rows, table)


def target_show(args: argparse.Namespace) -> int:
    target = api_from(args).request("GET", f"{BACKUP}/targets/{args.name}")
    lines = [f"{key}: {value}" for key, value in target.items() if key != "host_key_fingerprints"]
    lines += [f"host key: {line}" for line in target["host_key_fingerprints"]]
    return _emit(args, target, "\n".join(lines))


def target_test(args: argparse.Namespace) -> int:
    return _submit(args, "POST", f"/targets/{args.name}/test")


def target_remove(args: argparse.Namespace) -> int:
    return _submit(args, "DELETE", f"/targets/{args.name}", force=str(args.force).lower())


def backup_run(args: argparse.Namespace) -> int:
    return _submit(args, "POST", "/run", {"vm": args.vm, "target": args.target, "mode": args.mode})


def backup_list(args: argparse.Namespace) -> int:
    query = {k: v for k, v in (("vm", args.vm), ("target", args.target)) if v}
    rows = api_from(args).request("GET", f"{BACKUP}/points", **query)
    table = format_table([[str(p["id"]), p["vm_name"], p["target"], p["mode"], str(p["created"])[:19],
                           human_size(p["size"]), human_size(p["stored_bytes"]), human_size(p["bytes_sent"]),
                           p["verify_state"], p["drill_state"]] for p in rows],
                         ["ID", "VM", "TARGET", "MODE", "CREATED", "SIZE", "NEW", "SENT", "VERIFY", "DRILL"])
    return _emit(args, rows, table)


def backup_restore(args: argparse.Namespace) -> int:
    body = {"as": args.as_name, "disk": args.disk, "confirm": args.yes, "datastore": args.datastore}
    return _submit(args, "POST", f"/points/{args.point}/restore", body)


def backup_delete(args: argparse.Namespace) -> int:
    return _submit(args, "DELETE", f"/points/{args.point}")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """``target …``, ``run``, ``list``, ``restore`` and ``delete`` under ``bhype backup``."""
    target = sub.add_parser("target", help="backup targets (admins)")
    inner = target.add_subparsers(dest="backup_target_command", metavar="COMMAND", required=True)
    add = _sub(inner, "add", target_add, "add a target (pins its SSH host key)")
    add.add_argument("name")
    add.add_argument("destination", help="/path, rsync://USER@HOST[:PORT]/MODULE/PATH, ssh://USER@HOST[:PORT]/PATH "
                                         "or zfs://USER@HOST[:PORT]/POOL/DATASET")
    secret = add.add_mutually_exclusive_group()
    secret.add_argument("--password-file", help="a file holding the rsync daemon's password")
    secret.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument("--key-file", help="the SSH private key bHype logs in with (SSH/ZFS targets)")
    add.add_argument("--windows", action="store_true", help="a Windows host: NTFS-safe names, no hard links")
    add.add_argument("--description", default="")
    _sub(inner, "list", target_list, "every target")
    _sub(inner, "show", target_show, "one target").add_argument("name")
    _sub(inner, "test", target_test, "reachable, logged in, writable, free space").add_argument("name")
    remove = _sub(inner, "remove", target_remove, "remove a target and its secrets")
    remove.add_argument("name")
    remove.add_argument("--force", action="store_true", help="also forget its points' records")
    run = _sub(sub, "run", backup_run, "back a VM up now")
    run.add_argument("vm")
    run.add_argument("--target", required=True)
    run.add_argument("--mode", default="stop", choices=["snapshot", "stop", "crash"])
    listing = _sub(sub, "list", backup_list, "complete backup points, newest first")
    listing.add_argument("vm", nargs="?")
    listing.add_argument("--target")
    restore = _sub(sub, "restore", backup_restore, "restore a point onto its VM or as a new VM")
    restore.add_argument("point", type=int)
    restore.add_argument("--as", dest="as_name", help="a new VM (new UUID and MACs)")
    restore.add_argument("--disk", help="only this disk, onto the same VM")
    restore.add_argument("--datastore", help="for a new VM: its datastore")
    restore.add_argument("-y", "--yes", action="store_true", help="confirm replacing the VM's disks")
    _sub(sub, "delete", backup_delete, "delete a point from its target").add_argument("point", type=int)


def configure(parser: argparse.ArgumentParser) -> None:
    """``bhype backup`` with this module's sub-commands (used when the jobs module is absent)."""
    add_commands(parser.add_subparsers(dest="backup_command", metavar="COMMAND", required=True))


def run(args: argparse.Namespace) -> int:
    """Run the chosen sub-command."""
    return int(args.backup_handler(args))


def command() -> CliCommand:
    """The ``bhype backup`` command record."""
    return CliCommand(name="backup", help="VM backups: targets, backups, restores", configure=configure, run=run)
