"""``bhype backup drill VM [--point ID] (--serial TEXT | --vnc | --tcp PORT) [--timeout S]``.

Restores a point of the VM (its newest complete one unless ``--point``) as a temporary VM on
the isolated drill switch, waits for the sign of life, destroys it, and prints the result
(``POST /api/v1/backup/drill``; admins).
"""

from __future__ import annotations

import argparse
from functools import partial

from bhype_core.plugin_api import api_from, api_subcommand

BACKUP = "/api/v1/backup"
_sub = partial(api_subcommand, key="backup_handler")


def drill(args: argparse.Namespace) -> int:
    """Queue the drill and follow it; exit status 1 (and the excerpt) when it failed."""
    from bhype_backup.jobs_cli import drill_check, print_json, run_task

    body = {"vm": args.vm, "point": args.point, "timeout": args.timeout,
            "check": drill_check(args, prefix="") or {"kind": "serial", "text": args.serial}}
    accepted = api_from(args).request("POST", f"{BACKUP}/drill", body)
    if args.no_follow:
        return print_json(accepted) if args.json else (print(f"task {accepted['task_id']}") or 0)
    result = run_task(args, accepted)
    if args.json:
        return print_json(result)
    for outcome in result.get("drills", []):
        print(f"point {outcome['point']} of {outcome['vm']}: drill {outcome['state']}")
        if outcome.get("excerpt"):
            print(outcome["excerpt"])
    return 0


def add_drill_command(sub: argparse._SubParsersAction) -> None:
    """``drill`` under ``bhype backup``."""
    from bhype_backup.jobs_cli import add_sign_options

    command = _sub(sub, "drill", drill, "restore a point as a temporary VM, boot it, wait for a sign of life")
    command.add_argument("vm")
    command.add_argument("--point", type=int, help="this point (default: the VM's newest)")
    add_sign_options(command, prefix="--")
    command.add_argument("--timeout", type=int, default=600, metavar="SECONDS")
    command.add_argument("--no-follow", action="store_true", help="only queue it")
