"""``bhype image list|fetch``: templates' official cloud images, fetched once into the library.

``fetch TEMPLATE`` asks the API (``POST /api/v1/templates/{name}/image``) and follows the
``image.fetch`` task to its end with progress on stderr; when the library already has the
image it says so and does nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from typing import Any

from bhype_core.commands.plugins import format_table
from bhype_core.commands.template import connection_options
from bhype_core.commands.vm_client import api_from
from bhype_core.registry import CliCommand


def image_list(args: argparse.Namespace) -> int:
    """``bhype image list``: every template with a cloud image, and whether the library has it."""
    api = api_from(args)
    rows: list[dict[str, Any]] = []
    for template in api.request("GET", "/api/v1/templates")["templates"]:
        if template.get("image"):
            rows.append(api.request("GET", f"/api/v1/templates/{urllib.parse.quote(template['name'])}/image",
                                    datastore=args.datastore))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = [[r["template"], r["name"], "yes" if r["present"] else "no", r["user"] or "-"] for r in rows]
    headers = ["TEMPLATE", "IMAGE", "IN LIBRARY", "LOGIN"]
    print(format_table(table, headers) if table else "no template names a cloud image")
    return 0


def image_fetch(args: argparse.Namespace) -> int:
    """``bhype image fetch TEMPLATE``."""
    api = api_from(args)
    answer = api.request("POST", f"/api/v1/templates/{urllib.parse.quote(args.template)}/image",
                         datastore=args.datastore)
    if not answer.get("task_id"):
        print(answer["message"])
        return 0
    if args.no_wait:
        print(f"task {answer['task_id']} queued: image.fetch {answer['image']}")
        return 0
    print(answer["message"], file=sys.stderr)
    seen: set[str] = set()

    def show(task: dict[str, Any]) -> None:
        line = f"{task.get('state')} {task.get('progress', 0):.0f}% {task.get('progress_message', '')}"
        if line not in seen:
            seen.add(line)
            print(line, file=sys.stderr)

    task = api.wait_task(answer["task_id"], on_progress=show)
    print((task.get("result") or {}).get("message") or f"{answer['image']} fetched")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype image`` sub-commands."""
    sub = parser.add_subparsers(dest="image_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="templates' cloud images and whether the library has them")
    listing.add_argument("--json", action="store_true", help="print JSON")
    fetch = sub.add_parser("fetch", help="download a template's cloud image into the library (once, verified)")
    fetch.add_argument("template", help="template name (`bhype image list`)")
    fetch.add_argument("--no-wait", action="store_true", help="queue the task and return")
    for command, handler in ((listing, image_list), (fetch, image_fetch)):
        command.add_argument("--datastore", help="datastore (default: vm.default_datastore)")
        connection_options(command)
        command.set_defaults(image_handler=handler)


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen sub-command."""
    return args.image_handler(args)


def command() -> CliCommand:
    """The ``bhype image`` command record."""
    return CliCommand(name="image", help="templates' cloud images", configure=configure, run=run)
