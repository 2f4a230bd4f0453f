"""``bhype template list|info``: the OS templates VMs are created from (through the API)."""

from __future__ import annotations

import argparse
import json

from bhype_core.commands.plugins import format_table
from bhype_core.commands.vm_client import api_from
from bhype_core.registry import CliCommand


def connection_options(parser: argparse.ArgumentParser) -> None:
    """``--url`` and ``--token``, on every sub-command that talks to the API."""
    parser.add_argument("--url", help="bHype API (default: $BHYPE_URL or http://<api.host>:<api.port>)")
    parser.add_argument("--token", help="API token (default: $BHYPE_TOKEN or the one `bhype login` stored)")


def boot_mode(defaults: dict) -> str:
    """The boot mode in template defaults (``boot = "uefi"`` or ``boot = {mode = ...}``)."""
    boot = defaults.get("boot", "uefi")
    return boot if isinstance(boot, str) else str(boot.get("mode", "uefi"))


def template_list(args: argparse.Namespace) -> int:
    """``bhype template list [--json]``."""
    answer = api_from(args).request("GET", "/api/v1/templates")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    rows = [
        [t["name"], t["os_type"], boot_mode(t["defaults"]), "yes" if t["cloud_init"] else "no", t["source"], t["title"]]
        for t in answer["templates"]
    ]
    print(format_table(rows, ["NAME", "OS", "BOOT", "CLOUD-INIT", "SOURCE", "TITLE"]))
    for path, problem in answer.get("errors", {}).items():
        print(f"broken admin template {path}: {problem}")
    return 0


def template_info(args: argparse.Namespace) -> int:
    """``bhype template info NAME [--json]``."""
    answer = api_from(args).request("GET", f"/api/v1/templates/{args.name}")
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    print(f"{answer['name']}: {answer['title']} ({answer['os_type']}, {answer['source']})")
    if answer.get("notes"):
        print(answer["notes"].strip())
    if answer.get("image"):
        image = answer["image"]
        print(f"cloud image: {image['name']} from {image['url']} (checked against {image['checksums']}; "
              f"`bhype image fetch {answer['name']}`)")
    print(json.dumps(answer["defaults"], indent=2))
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype template`` sub-commands."""
    sub = parser.add_subparsers(dest="template_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="list templates")
    listing.add_argument("--json", action="store_true", help="print JSON")
    connection_options(listing)
    listing.set_defaults(template_handler=template_list)
    info = sub.add_parser("info", help="one template and the spec it gives a new VM")
    info.add_argument("name")
    info.add_argument("--json", action="store_true", help="print JSON")
    connection_options(info)
    info.set_defaults(template_handler=template_info)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen sub-command."""
    return args.template_handler(args)


def command() -> CliCommand:
    """The ``bhype template`` command record."""
    return CliCommand(name="template", help="OS templates for new VMs", configure=configure, run=run)
