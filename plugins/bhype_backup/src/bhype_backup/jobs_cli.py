"""``bhype backup job add|list|run|remove``: backup jobs through ``/api/v1/backup/jobs``.

Clients of the API like every ``bhype`` command (``--url``/``--token`` or ``bhype login``);
``job run`` follows the run's task to its end (log on stderr, result on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from functools import partial
from typing import Any

from bhype_core.plugin_api import (
    StreamEvent,
    TaskFailed,
    api_from,
    api_subcommand,
    follow,
    format_table,
)

BACKUP = "/api/v1/backup"


# Sub-commands that talk to the API: --json, --url/--token, and the handler under backup_handler.
_sub = partial(api_subcommand, key="backup_handler")


def print_json(value: Any) -> int:
    """Print ``value`` as JSON on stdout; exit status 0."""
    print(json.dumps(value, indent=2, sort_keys=True))
    return 0


def run_task(args: argparse.Namespace, accepted: dict[str, Any]) -> Any:
    """Follow a queued task to its end (its log on stderr) and return its result.

    :raises TaskFailed: the task did not succeed (its error message).
    """
    def show(event: StreamEvent) -> None:
        if event.event == "log":
            level = event.data.get("level", "info")
            text = event.data.get("message", "")
            print(text if level == "info" else f"{level}: {text}", file=sys.stderr, flush=True)

    final = follow(api_from(args), accepted["task_id"], show)
    if final is None or final.get("state") != "succeeded":
        error = (final or {}).get("error") or {}
        message = error.get("message") if isinstance(error, dict) else None
        raise TaskFailed(f"task {accepted['kind']} {(final or {}).get('state', 'gone')}: {message or 'no result'}",
                         task_id=str(accepted["task_id"]), kind=accepted["kind"])
    return final.get("result")


def drill_check(args: argparse.Namespace, prefix: str = "drill_") -> dict[str, Any]:
    """The drill's sign of life from ``--drill-serial``, ``--drill-vnc`` or ``--drill-tcp PORT``
    (``--drill-address``); ``prefix`` ``""`` reads ``bhype backup drill``'s ``--serial`` …"""
    serial, vnc, tcp = (getattr(args, prefix + name, None) for name in ("serial", "vnc", "tcp"))
    if serial:
        return {"kind": "serial", "text": serial}
    if vnc:
        return {"kind": "vnc"}
    if tcp is not None:
        address = getattr(args, prefix + "address", None)
        return {"kind": "tcp", "port": tcp, **({"address": address} if address else {})}
    return {}


def add_sign_options(parser: argparse.ArgumentParser, prefix: str = "--drill-") -> None:
    """``--drill-serial TEXT | --drill-vnc | --drill-tcp PORT [--drill-address ADDR]``."""
    sign = parser.add_mutually_exclusive_group()
    sign.add_argument(f"{prefix}serial", metavar="TEXT",
                      help="a drill passes when the restored guest's serial console prints TEXT")
    sign.add_argument(f"{prefix}vnc", action="store_true", help="… when its VNC screen changes")
    sign.add_argument(f"{prefix}tcp", type=int, metavar="PORT",
                      help="… when its TCP PORT answers on the isolated drill switch (IPv6 link-local)")
    parser.add_argument(f"{prefix}address", metavar="FE80::…",
                        help="the guest's link-local address for the TCP check (default: from its NIC's MAC)")


def job_edit(args: argparse.Namespace) -> int:
    """``job edit NAME [--target …] [--schedule …] …``: change only what is given."""
    body = {key: value for key, value in (
        ("target", args.target), ("mode", args.mode), ("schedule", args.schedule), ("retention", args.retention),
        ("window_minutes", args.window), ("drill_schedule", args.drill_schedule),
        ("drill_timeout", args.drill_timeout), ("vms", args.vm or None), ("owners", args.owner or None),
        ("tags", args.tag or None), ("drill_check", drill_check(args) or None)) if value is not None}
    return patch_job(args, body)


def patch_job(args: argparse.Namespace, body: dict[str, Any]) -> int:
    """PATCH the job and print what it is now."""
    job = api_from(args).request("PATCH", f"{BACKUP}/jobs/{urllib.parse.quote(args.name, safe='')}", body)
    if args.json:
        return print_json(job)
    state = "enabled" if job["enabled"] else "disabled"
    print(f"job {job['name']} ({state}): {job['schedule']} to {job['target']} ({job['mode']}), keep {job['retention']}")
    return 0


def job_add(args: argparse.Namespace) -> int:
    """``job add NAME --target T (--vm V | --owner U | --tag T)… [--schedule CRON] [--retention …]``."""
    body = {"name": args.name, "target": args.target, "mode": args.mode, "schedule": args.schedule,
            "vms": args.vm, "owners": args.owner, "tags": args.tag, "retention": args.retention,
            "window_minutes": args.window, "enabled": not args.disabled,
            "drill_schedule": args.drill_schedule, "drill_check": drill_check(args),
            "drill_timeout": args.drill_timeout}
    job = api_from(args).request("POST", f"{BACKUP}/jobs", body)
    if args.json:
        return print_json(job)
    print(f"job {job['name']}: {job['schedule']} to {job['target']} ({job['mode']}), keep {job['retention']}")
    return 0


def selection(job: dict[str, Any]) -> str:
    """``vm:a owner:b tag:c`` — what the job selects."""
    return " ".join([*(f"vm:{v}" for v in job["vms"]), *(f"owner:{o}" for o in job["owners"]),
                     *(f"tag:{t}" for t in job["tags"])])


def job_list(args: argparse.Namespace) -> int:
    """``job list [--json]``."""
    jobs = api_from(args).request("GET", f"{BACKUP}/jobs")["jobs"]
    if args.json:
        return print_json(jobs)
    if not jobs:
        print("no backup jobs")
        return 0
    rows = [[j["name"], j["schedule"], j["target"], j["mode"], selection(j), j["retention"],
             j["last_state"] or "-", "yes" if j["enabled"] else "no"] for j in jobs]
    print(format_table(rows, ["NAME", "SCHEDULE", "TARGET", "MODE", "SELECTS", "KEEP", "LAST", "ENABLED"]))
    return 0


def job_run(args: argparse.Namespace) -> int:
    """``job run NAME [--no-follow] [--json]``: run now and follow it."""
    accepted = api_from(args).request("POST", f"{BACKUP}/jobs/{urllib.parse.quote(args.name, safe='')}/run")
    if args.no_follow:
        return print_json(accepted) if args.json else (print(f"task {accepted['task_id']}") or 0)
    result = run_task(args, accepted)
    if args.json:
        return print_json(result)
    for vm, outcome in (result or {}).get("vms", {}).items():
        print(f"{vm}: point {outcome.get('point')}, pruned {len(outcome.get('pruned') or [])}")
    return 0


def job_remove(args: argparse.Namespace) -> int:
    """``job remove NAME`` (its points stay)."""
    api_from(args).request("DELETE", f"{BACKUP}/jobs/{urllib.parse.quote(args.name, safe='')}")
    if args.json:
        return print_json({"removed": args.name})
    print(f"job {args.name} removed (its backups stay)")
    return 0


def verify(args: argparse.Namespace) -> int:
    """``verify POINT [--no-follow] [--json]``: re-read a point and check every checksum."""
    accepted = api_from(args).request("POST", f"{BACKUP}/points/{args.point}/verify")
    if args.no_follow:
        return print_json(accepted) if args.json else (print(f"task {accepted['task_id']}") or 0)
    result = run_task(args, accepted)
    if args.json:
        return print_json(result)
    print(f"point {args.point}: every checksum matches its manifest")
    return 0


def add_job_commands(sub: argparse._SubParsersAction) -> None:
    """``job …`` under a ``bhype backup`` parser's sub-commands."""
    job = sub.add_parser("job", help="backup jobs: schedule, selection, target, retention (admins)")
    inner = job.add_subparsers(dest="backup_job_command", metavar="COMMAND", required=True)
    add = _sub(inner, "add", job_add, "add a job")
    add.add_argument("name")
    add.add_argument("--target", required=True)
    add.add_argument("--vm", action="append", default=[], help="a VM by name (repeatable)")
    add.add_argument("--owner", action="append", default=[], help="every VM of this owner (repeatable)")
    add.add_argument("--tag", action="append", default=[], help="every VM with this tag (repeatable)")
    add.add_argument("--mode", default="snapshot", choices=["snapshot", "stop", "crash"])
    add.add_argument("--schedule", default="@daily", help="crontab(5) line in UTC, or @daily …")
    add.add_argument("--retention", default="last=7", help="e.g. 'last=3 daily=7 weekly=4 monthly=6'")
    add.add_argument("--window", type=int, default=1440, metavar="MINUTES",
                     help="a run must succeed within this long of its slot (else backup.overdue)")
    add.add_argument("--disabled", action="store_true")
    add.add_argument("--drill-schedule", default="", help="crontab(5) line for restore drills (empty: none)")
    add_sign_options(add)
    add.add_argument("--drill-timeout", type=int, default=600, metavar="SECONDS")
    edit = _sub(inner, "edit", job_edit, "change a job (only the options given)")
    edit.add_argument("name")
    edit.add_argument("--target")
    edit.add_argument("--vm", action="append", default=[], help="replaces the job's VM names (repeatable)")
    edit.add_argument("--owner", action="append", default=[], help="replaces the job's owners (repeatable)")
    edit.add_argument("--tag", action="append", default=[], help="replaces the job's tags (repeatable)")
    edit.add_argument("--mode", choices=["snapshot", "stop", "crash"])
    edit.add_argument("--schedule")
    edit.add_argument("--retention")
    edit.add_argument("--window", type=int, metavar="MINUTES")
    edit.add_argument("--drill-schedule", help="crontab(5) line for restore drills ('' for none)")
    add_sign_options(edit)
    edit.add_argument("--drill-timeout", type=int, metavar="SECONDS")
    for verb, enabled in (("enable", True), ("disable", False)):
        toggle = _sub(inner, verb, partial(lambda a, on: patch_job(a, {"enabled": on}), on=enabled),
                      f"{verb} a job's schedule and drills" + (" (missed slots do not run)" if enabled else ""))
        toggle.add_argument("name")
    _sub(inner, "list", job_list, "every job and its last run")
    run = _sub(inner, "run", job_run, "run a job now and follow it")
    run.add_argument("name")
    run.add_argument("--no-follow", action="store_true", help="only queue it")
    _sub(inner, "remove", job_remove, "remove a job (its backups stay)").add_argument("name")


def add_verify_command(sub: argparse._SubParsersAction) -> None:
    """``verify POINT`` under a ``bhype backup`` parser's sub-commands."""
    check = _sub(sub, "verify", verify, "re-read a backup from its target and check every checksum")
    check.add_argument("point", type=int)
    check.add_argument("--no-follow", action="store_true", help="only queue it")


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype backup`` sub-commands this hook module provides (jobs, verify)."""
    sub = parser.add_subparsers(dest="backup_command", metavar="COMMAND", required=True)
    from bhype_backup.drill_cli import add_drill_command

    add_job_commands(sub)
    add_verify_command(sub)
    add_drill_command(sub)
    for extra in EXTRA_COMMANDS:
        extra(sub)


# Other sub-command builders of ``bhype backup`` (verify; the plugin's target/list/restore
# commands join here, so the plugin has one ``backup`` command).
EXTRA_COMMANDS: list[Any] = []


def run(args: argparse.Namespace) -> int:
    """Run the chosen sub-command."""
    return int(args.backup_handler(args))


def command() -> Any:
    """The ``bhype backup`` command record."""
    from bhype_core.plugin_api import CliCommand

    return CliCommand(name="backup", help="VM backups: jobs, verification", configure=configure, run=run)
