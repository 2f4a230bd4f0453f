"""``bhype hosts [--json]``: the group's hosts, versions and states, via the API."""

from __future__ import annotations

import argparse
import json

from bhype_core.commands.plugins import format_table
from bhype_core.commands.template import connection_options
from bhype_core.commands.vm_client import api_from
from bhype_core.registry import CliCommand
from bhype_core.units import human_size


def hosts_list(args: argparse.Namespace) -> int:
    """Print every host (a table, or JSON with ``--json``)."""
    hosts = api_from(args).request("GET", "/api/v1/hosts")["hosts"]
    if args.json:
        print(json.dumps(hosts, indent=2))
        return 0
    if not hosts:
        print("no hosts registered (no worker has started yet)")
        return 0
    rows = []
    for host in hosts:
        capacity = host["capacity"]
        versions = host["versions"]
        plugins = ", ".join(f"{name} {version}" for name, version in sorted(versions.items()) if name != "bhype-core")
        age = host["heartbeat_age"]
        rows.append([host["name"], host["state"], "-" if age is None else f"{age:.0f}s", host["address"],
                     f"{host['platform']}/{host['hypervisor']}", str(capacity.get("cpus", "?")),
                     human_size(capacity.get("memory_free") or 0), versions.get("bhype-core", "?"), plugins or "-"])
    print(format_table(rows, ["NAME", "STATE", "HEARTBEAT", "ADDRESS", "PLATFORM", "CPUS", "MEM FREE", "BHYPE",
                              "PLUGINS"]))
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """``--json`` and the API connection options."""
    parser.add_argument("--json", action="store_true", help="print JSON")
    connection_options(parser)


def command() -> CliCommand:
    """The ``bhype hosts`` command record."""
    return CliCommand(name="hosts", help="list the group's hosts, versions and states", configure=configure,
                      run=hosts_list)
