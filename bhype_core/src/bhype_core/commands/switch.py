"""``bhype switch list|show|create|destroy|add-uplink|remove-uplink``: virtual switches via the API.

Changes are admin-only tasks; each prints ``task <id>`` or, with ``--wait``, follows it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bhype_core.commands.plugins import format_table
from bhype_core.commands.template import connection_options
from bhype_core.commands.vm_client import VmApi, api_from
from bhype_core.registry import CliCommand


def follow(api: VmApi, accepted: dict[str, Any], args: argparse.Namespace, what: str) -> int:
    """Print the queued task, or with ``--wait`` follow it to the end (progress on stderr)."""
    if not getattr(args, "wait", False):
        print(f"task {accepted['task_id']} queued: {accepted['kind']} {what}")
        return 0
    seen: set[str] = set()

    def show(task: dict[str, Any]) -> None:
        line = f"{task.get('state')} {task.get('progress', 0):.0f}% {task.get('progress_message', '')}"
        if line not in seen:
            seen.add(line)
            print(line, file=sys.stderr)

    api.wait_task(accepted["task_id"], on_progress=show)
    print(f"task {accepted['task_id']} succeeded: {accepted['kind']} {what}")
    return 0


def switch_list(args: argparse.Namespace) -> int:
    switches = api_from(args).request("GET", "/api/v1/switches")["switches"]
    if args.json:
        print(json.dumps(switches, indent=2))
        return 0
    if not switches:
        print("no switches")
        return 0
    rows = [[s["name"], s["bridge"], s["uplink"] or "-", str(s["vlan"] or "-"), s["address"] or "-",
             "on" if s["nat"] else "off", s["description"]] for s in switches]
    print(format_table(rows, ["NAME", "BRIDGE", "UPLINK", "VLAN", "ADDRESS", "NAT", "DESCRIPTION"]))
    return 0


def switch_show(args: argparse.Namespace) -> int:
    print(json.dumps(api_from(args).request("GET", f"/api/v1/switches/{args.name}"), indent=2))
    return 0


def switch_create(args: argparse.Namespace) -> int:
    body = {"name": args.name, "uplink": args.uplink, "vlan": args.vlan, "mtu": args.mtu, "address": args.address,
            "nat": args.nat, "nat_interface": args.nat_interface, "description": args.description or ""}
    api = api_from(args)
    return follow(api, api.request("POST", "/api/v1/switches", body), args, args.name)


def switch_destroy(args: argparse.Namespace) -> int:
    api = api_from(args)
    return follow(api, api.request("DELETE", f"/api/v1/switches/{args.name}"), args, args.name)


def switch_add_uplink(args: argparse.Namespace) -> int:
    api = api_from(args)
    body = {"uplink": args.uplink, "vlan": args.vlan}
    return follow(api, api.request("POST", f"/api/v1/switches/{args.name}/uplink", body), args, args.name)


def switch_remove_uplink(args: argparse.Namespace) -> int:
    api = api_from(args)
    return follow(api, api.request("DELETE", f"/api/v1/switches/{args.name}/uplink"), args, args.name)


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype switch`` sub-commands."""
    sub = parser.add_subparsers(dest="switch_command", metavar="COMMAND", required=True)

    def add(name: str, handler: Any, help: str, named: bool = True, wait: bool = True) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help)
        if named:
            command.add_argument("name", help="the switch")
        if wait:
            command.add_argument("--wait", action="store_true", help="follow the task until it ends")
        connection_options(command)
        command.set_defaults(switch_handler=handler)
        return command

    listing = add("list", switch_list, "every switch", named=False, wait=False)
    listing.add_argument("--json", action="store_true", help="print JSON")
    add("show", switch_show, "one switch and the VMs on it", wait=False)
    create = add("create", switch_create, "create a switch (admins)")
    create.add_argument("--uplink", help="host NIC to bridge (none: a private network between VMs)")
    create.add_argument("--vlan", type=int, help="bridge the uplink's VLAN (<uplink>.<vlan>) instead")
    create.add_argument("--mtu", type=int, help="MTU of the bridge and its VM ports")
    create.add_argument("--address", help="host address on the switch, e.g. 10.77.0.1/24")
    create.add_argument("--nat", action="store_true", help="NAT the switch's subnet out of the host (off by default)")
    create.add_argument("--nat-interface", help="outgoing interface for NAT (FreeBSD; default: the default route's)")
    create.add_argument("--description", help="free text")
    add("destroy", switch_destroy, "remove a switch no VM uses (admins)")
    uplink = add("add-uplink", switch_add_uplink, "bridge a host NIC into the switch (admins)")
    uplink.add_argument("uplink", help="host NIC, e.g. igb0 or eth0")
    uplink.add_argument("--vlan", type=int, help="bridge <uplink>.<vlan> instead of the NIC")
    add("remove-uplink", switch_remove_uplink, "make the switch private again (admins)")


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen sub-command."""
    return args.switch_handler(args)


def command() -> CliCommand:
    """The ``bhype switch`` command record."""
    return CliCommand(name="switch", help="manage virtual switches", configure=configure, run=run)
