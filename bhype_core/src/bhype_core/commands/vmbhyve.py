"""``bhype import vm-bhyve`` and ``bhype export vm-bhyve VM``: admin tasks submitted through
the API (``POST /api/v1/tasks``), the worker reads and changes the host.

``import`` always runs a dry-run task first and prints its plan (VMs, switches, the table of
what could not be mapped and why); with ``--dry-run`` it stops there.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from bhype_core.commands.template import connection_options
from bhype_core.commands.vm_client import VmApi, api_from
from bhype_core.registry import CliCommand
from bhype_core.vmbhyve.plan import format_plan

IMPORT_KIND = "vmbhyve.import"
EXPORT_KIND = "vmbhyve.export"


def run_task(api: VmApi, kind: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Submit ``kind`` and wait for its result (raises naming the task when it fails)."""
    accepted = api.request("POST", "/api/v1/tasks", {"kind": kind, "arguments": arguments})
    task = api.wait_task(accepted["id"])
    return task.get("result") or {}


def import_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The task arguments from the command line (``dry_run`` added by the caller)."""
    arguments: dict[str, Any] = {"vm_dir": args.vm_dir, "rc_conf": args.rc_conf}
    if args.vm:
        arguments["vms"] = args.vm
    if args.datastore:
        arguments["datastore"] = args.datastore
    if args.owner:
        arguments["owner"] = args.owner
    return arguments


def import_vmbhyve(args: argparse.Namespace) -> int:
    """Plan (dry run), print it, then import unless ``--dry-run``."""
    api = api_from(args)
    arguments = import_arguments(args)
    plan = run_task(api, IMPORT_KIND, {**arguments, "dry_run": True})
    print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
    if args.dry_run:
        return 0
    templates = [t for t in plan.get("templates", []) if t["action"] == "create"]
    if not any(vm["action"] == "import" for vm in plan["vms"]) and not templates:
        print("nothing to import")
        return 1 if plan["vms"] else 0
    done = run_task(api, IMPORT_KIND, {**arguments, "dry_run": False})
    for name in done.get("imported", []):
        print(f"imported {name}")
    for name in done.get("templates_imported", []):
        print(f"imported template {name}")
    for name, error in done.get("failed", {}).items():
        print(f"failed {name}: {error}")
    return 1 if done.get("failed") else 0


def export_vmbhyve(args: argparse.Namespace) -> int:
    """Print (``--dry-run``) or write the VM's (or template's) vm-bhyve config."""
    api = api_from(args)
    result = run_task(api, EXPORT_KIND, {"name": args.name, "vm_dir": args.vm_dir, "rc_conf": args.rc_conf,
                                         "dry_run": args.dry_run, "template": args.template})
    print(result["config"], end="")
    for note in result.get("notes", []):
        print(f"# note: {note}")
    if result.get("written"):
        print(f"# written to {result['written']}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vm-dir", help="vm-bhyve's vm_dir: a path or zfs:pool/dataset (default: rc.conf's)")
    parser.add_argument("--rc-conf", default="/etc/rc.conf", help="rc.conf to read vm_dir, vm_list, vm_delay from")
    parser.add_argument("--dry-run", action="store_true", help="show what would happen, change nothing")
    connection_options(parser)


def configure_import(parser: argparse.ArgumentParser) -> None:
    """``bhype import vm-bhyve``."""
    sub = parser.add_subparsers(dest="import_source", metavar="SOURCE", required=True)
    source = sub.add_parser("vm-bhyve", help="import vm-bhyve guests in place (admins)")
    _common(source)
    source.add_argument("--vm", action="append", help="import only this guest (repeatable)")
    source.add_argument("--datastore", help="bHype datastore that adopts the disks (default vm.default_datastore)")
    source.add_argument("--owner", help="owner of the imported VMs (default: you)")
    source.add_argument("--json", action="store_true", help="print the plan as JSON")


def configure_export(parser: argparse.ArgumentParser) -> None:
    """``bhype export vm-bhyve VM``."""
    sub = parser.add_subparsers(dest="export_target", metavar="TARGET", required=True)
    target = sub.add_parser("vm-bhyve", help="write a vm-bhyve config for a VM (admins)")
    target.add_argument("name", help="the VM (or, with --template, the bHype template)")
    target.add_argument("--template", action="store_true",
                        help="export a bHype template as $vm_dir/.templates/NAME.conf (vmbhyve- prefix dropped)")
    _common(target)


def import_command() -> CliCommand:
    """The ``bhype import`` command record."""
    return CliCommand(name="import", help="import VMs from another manager", configure=configure_import,
                      run=import_vmbhyve)


def export_command() -> CliCommand:
    """The ``bhype export`` command record."""
    return CliCommand(name="export", help="export a VM to another manager", configure=configure_export,
                      run=export_vmbhyve)
