"""``bhype zfs status|init|import-vms``: the host's ZFS, pool initialisation and VM import,
through ``/api/v1/zfs`` (host work is a task the command follows to its end)."""

from __future__ import annotations

import argparse
from typing import Any

from bhype_core.plugin_api import format_table, human_size
from bhype_zfs.cli_tasks import ZFS, api_from, confirm, print_json, queue_and_follow, run_task, when


def status_lines(report: dict[str, Any]) -> list[str]:
    """``GET /api/v1/zfs/status`` as lines for people."""
    if not report.get("probed"):
        return [report.get("message") or "not probed yet"]
    age = report.get("age_seconds")
    lines = [f"probed    {when(report.get('probed_at'))}" + (f" ({age:.0f} s ago)" if age is not None else "")]
    tools = report.get("tools") or {}
    if tools.get("found"):
        kmod = tools.get("kernel_module_version")
        lines.append(f"openzfs   {tools.get('version')}" + (f" (kernel module {kmod})" if kmod else ""))
    else:
        lines.append(f"openzfs   not found: {tools.get('error')}")
    pool, state = report.get("pool"), report.get("pool_status")
    if not pool:
        lines.append("pool      none configured ([zfs] pool)")
    elif state:
        lines.append(f"pool      {pool}: {state['health']}, {state['capacity_percent']}% used, "
                     f"{human_size(state['free_bytes'])} free of {human_size(state['size_bytes'])}")
    else:
        lines.append(f"pool      {pool}: {report.get('pool_error')}")
    return lines


def zfs_status(args: argparse.Namespace) -> int:
    """``status [--refresh] [--json]``: the worker's last probe (``--refresh``: probe now first)."""
    api = api_from(args)
    if args.refresh:
        run_task(api, api.request("POST", f"{ZFS}/status/refresh"))
    report = api.request("GET", f"{ZFS}/status")
    if args.json:
        return print_json(report)
    print("\n".join(status_lines(report)))
    return 0


def init_body(args: argparse.Namespace) -> dict[str, Any]:
    """The ``/init`` and ``/init/plan`` request from the command line."""
    return {"pool": args.pool, "disks": args.disks, "layout": args.layout, "adopt": args.adopt,
            "force": args.force, "root": args.root, "ashift": args.ashift, "mountpoint": args.mountpoint}


def zfs_init(args: argparse.Namespace) -> int:
    """``init``: print the plan's exact commands; with confirmation queue ``zfs.init_pool`` to run
    exactly those (refused if the host changed meanwhile), follow it and print the configuration
    that makes bHype use the pool."""
    api = api_from(args)
    body = init_body(args)
    plan = run_task(api, api.request("POST", f"{ZFS}/init/plan", body), log=False)
    print(f"bhype zfs init will run on the VM host of {api.base_url}:")
    for command, step in zip(plan["commands"], plan["steps"], strict=True):
        print(f"  {command}    # {step['purpose']}")
    if args.dry_run:
        return 0
    if not confirm(args, "Run these commands?", "initialising a pool"):
        return 1
    # What runs is what was shown: the same mark, and the task refuses if the plan changed.
    confirmed = {**body, "initialised_at": plan["initialised_at"], "confirm_commands": plan["commands"]}
    result = run_task(api, api.request("POST", f"{ZFS}/init", confirmed))
    print(f"\nDone: pool {result['pool']} is ready. Add this to the configuration:\n\n{result['settings']}", end="")
    return 0


def zfs_import_vms(args: argparse.Namespace) -> int:
    """``import-vms [--datastore] [--list] [--json]``: VMs found on the pool, registered unless ``--list``."""
    result = queue_and_follow(args, "/import-vms", datastore=args.datastore, register=not args.list)
    if args.json:
        return print_json(result["vms"])
    if not result["vms"]:
        print(f"no VMs on datastore {result['datastore']}")
        return 0
    rows = [[vm["name"] or "-", vm["owner"] or "-", vm["status"], vm["dataset"], vm["detail"] or "-"]
            for vm in result["vms"]]
    print(format_table(rows, ["NAME", "OWNER", "STATUS", "DATASET", "DETAIL"]))
    return 0
