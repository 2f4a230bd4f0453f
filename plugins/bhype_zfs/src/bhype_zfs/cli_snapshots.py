"""``bhype zfs snapshots|holds|snapshot|rollback|destroy-snapshot|hold|release|clone|schedules``:
a VM's snapshots, clones and snapshot schedules through ``/api/v1/zfs`` (each host action is a
task the command follows to its end)."""

from __future__ import annotations

import argparse
import urllib.parse
from typing import Any

from bhype_core.plugin_api import format_table, human_size
from bhype_zfs.cli_tasks import ZFS, api_from, confirm, print_json, queue_and_follow, when

PERIODS = ("frequently", "hourly", "daily", "weekly", "monthly", "yearly")


def zfs_snapshots(args: argparse.Namespace) -> int:
    """``snapshots VM [--json]``: the VM's snapshots (every disk), oldest first."""
    result = queue_and_follow(args, "/snapshots/list", {"vm": args.vm})
    if args.json:
        return print_json(result["snapshots"])
    if not result["snapshots"]:
        print(f"no snapshots of {args.vm}")
        return 0
    rows = [[s["name"], when(s["created"]), human_size(s["used"]), human_size(s["referenced"]), str(s["holds"])]
            for s in result["snapshots"]]
    print(format_table(rows, ["NAME", "CREATED", "USED", "REFERENCED", "HOLDS"]))
    return 0


def zfs_holds(args: argparse.Namespace) -> int:
    """``holds VM NAME [--json]``: the holds on one snapshot of the VM."""
    holds = queue_and_follow(args, "/snapshots/holds", {"vm": args.vm, "name": args.name})["holds"]
    if args.json:
        return print_json(holds)
    if not holds:
        print(f"no holds on {args.vm}@{args.name}")
        return 0
    print(format_table([[h["snapshot"], h["tag"], when(h["created"])] for h in holds], ["SNAPSHOT", "TAG", "CREATED"]))
    return 0


def zfs_snapshot(args: argparse.Namespace) -> int:
    """``snapshot VM [NAME]``: every disk of the VM in one atomic snapshot."""
    taken = queue_and_follow(args, "/snapshots", {"vm": args.vm, "name": args.name})
    print(f"snapshot {taken['name']} of {args.vm} ({len(taken['datasets'])} datasets)")
    return 0


def zfs_rollback(args: argparse.Namespace) -> int:
    """``rollback VM NAME [--destroy-newer] [--yes]``: the stopped VM's disks back to ``@NAME``."""
    question = f"Roll {args.vm} back to {args.name}, losing every later change"
    question += " and every newer snapshot?" if args.destroy_newer else "?"
    if not confirm(args, question, "a rollback"):
        return 1
    result = queue_and_follow(args, "/snapshots/rollback",
                              {"vm": args.vm, "name": args.name, "destroy_newer": args.destroy_newer})
    destroyed = f"; destroyed newer snapshots {', '.join(result['destroyed'])}" if result["destroyed"] else ""
    print(f"{args.vm} rolled back to {args.name}{destroyed}")
    return 0


def zfs_destroy_snapshot(args: argparse.Namespace) -> int:
    """``destroy-snapshot VM NAME [--yes]`` (refused while held or cloned)."""
    if not confirm(args, f"Destroy snapshot {args.name} of {args.vm}?", "destroying a snapshot"):
        return 1
    result = queue_and_follow(args, "/snapshots/destroy", {"vm": args.vm, "name": args.name})
    print(f"destroyed {args.vm}@{args.name} ({len(result['destroyed'])} datasets)")
    return 0


def zfs_hold(args: argparse.Namespace) -> int:
    """``hold|release VM NAME TAG``: add or drop a hold on one snapshot of the VM."""
    body = {"vm": args.vm, "name": args.name, "tag": args.tag}
    holds = queue_and_follow(args, f"/snapshots/{args.zfs_command}", body)["holds"]
    done = "held" if args.zfs_command == "hold" else "released"
    tags = ", ".join(sorted({h["tag"] for h in holds})) or "none"
    print(f"{done} {args.vm}@{args.name} ({args.tag}); its holds now: {tags}")
    return 0


def zfs_clone(args: argparse.Namespace) -> int:
    """``clone SOURCE TARGET [--snapshot] [--mode]``: a new VM from a snapshot of ``SOURCE``."""
    body = {"source": args.source, "target": args.target, "snapshot": args.snapshot, "mode": args.mode}
    result = queue_and_follow(args, "/clones", body)
    unregistered = "" if result.get("registered") else " (datasets only: no VM record)"
    print(f"{result['mode']} clone of {args.source} as {args.target} from {result['snapshot']}{unregistered}")
    return 0


def keep(schedule: dict[str, Any]) -> str:
    """The counts a schedule keeps, e.g. ``hourly=24 daily=7`` (``-`` for none)."""
    return " ".join(f"{p}={schedule[p]}" for p in PERIODS if schedule.get(p)) or "-"


def zfs_schedules_list(args: argparse.Namespace) -> int:
    """``schedules list [--json]``."""
    schedules = api_from(args).request("GET", f"{ZFS}/schedules")["schedules"]
    if args.json:
        return print_json(schedules)
    if not schedules:
        print("no schedules")
        return 0
    rows = [[s["name"], s["vm"] or "-", s["dataset"], keep(s), "yes" if s["enabled"] else "no"] for s in schedules]
    print(format_table(rows, ["NAME", "VM", "DATASET", "KEEP", "ENABLED"]))
    return 0


def zfs_schedules_create(args: argparse.Namespace) -> int:
    """``schedules create NAME (--vm VM | --dataset DS) [--hourly N …]``."""
    body = {"name": args.name, "vm": args.vm, "dataset": args.dataset or "", "recursive": not args.no_recursive,
            "frequent_minutes": args.frequent_minutes, "enabled": not args.disabled,
            **{period: getattr(args, period) for period in PERIODS}}
    created = api_from(args).request("POST", f"{ZFS}/schedules", body)
    print(f"schedule {created['name']} on {created['dataset']}: {keep(created)}")
    return 0


def zfs_schedules_delete(args: argparse.Namespace) -> int:
    """``schedules delete NAME`` (its snapshots stay)."""
    api_from(args).request("DELETE", f"{ZFS}/schedules/{urllib.parse.quote(args.name, safe='')}")
    print(f"schedule {args.name} deleted (its snapshots stay)")
    return 0
