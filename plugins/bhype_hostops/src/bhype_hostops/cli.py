"""``bhype service …``: host services through ``/api/v1/hostops`` (admins), like ``bhype vm``.

The command needs neither root nor the database: it asks the API (``--url``/``$BHYPE_URL``,
the token ``bhype login`` stored or ``--token``), follows the queued task to its end (its log
on stderr: the service command's own output), and prints the result on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bhype_core.plugin_api import (
    CliCommand,
    StreamEvent,
    TaskFailed,
    api_from,
    connection_options,
    follow,
    format_table,
)
from bhype_hostops.service_tasks import ACTIONS

API = "/api/v1/hostops"


def session_hint() -> str:
    """``ssh`` when this CLI runs in an SSH login (sshd sets SSH_CONNECTION, sshd(8)
    ENVIRONMENT), else ``local``: the API uses it to guard stopping sshd."""
    return "ssh" if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_CLIENT") else "local"


def _follow(api: Any, accepted: dict[str, Any]) -> dict[str, Any]:
    def show(event: StreamEvent) -> None:
        if event.event == "log":
            print(event.data["message"], file=sys.stderr, flush=True)

    final = follow(api, accepted["task_id"], show) or {}
    if final.get("state") != "succeeded":
        error = final.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise TaskFailed(f"task {accepted['kind']} {final.get('state')}: {message}", task_id=accepted["task_id"],
                         kind=accepted["kind"])
    return final.get("result") or {}


def _yes_no(value: Any) -> str:
    return "?" if value is None else ("yes" if value else "no")


def list_services(args: argparse.Namespace) -> int:
    """``bhype service list``: the allow-listed services as last probed (``--refresh``: probe now)."""
    api = api_from(args)
    if args.refresh:
        _follow(api, api.request("POST", f"{API}/services/refresh"))
    services = api.request("GET", f"{API}/services")["services"]
    if args.json:
        print(json.dumps(services, indent=2))
        return 0
    rows = [[s["name"], {True: "running", False: "stopped"}.get(s["running"], "unknown"), _yes_no(s["enabled"]),
             " ".join(map(str, s["pids"] or [])), s["probed_at"] or "never"] for s in services]
    print(format_table(rows, ["SERVICE", "STATE", "AT BOOT", "PIDS", "PROBED"]))
    return 0


def act(args: argparse.Namespace) -> int:
    """``bhype service ACTION NAME``: queue the action and follow it."""
    api = api_from(args)
    body = {"session_hint": session_hint(), "confirm_session_loss": bool(getattr(args, "confirm_session_loss", False))}
    result = _follow(api, api.request("POST", f"{API}/services/{args.name}/{args.action}", body))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        state = "running" if result.get("running") else "stopped"
        print(f"{result.get('name')}: {state}, at boot: {_yes_no(result.get('enabled'))}")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype service`` sub-commands."""
    sub = parser.add_subparsers(dest="service_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="the allow-listed host services and their state")
    listing.add_argument("--refresh", action="store_true", help="query the host now, then list")
    listing.add_argument("--json", action="store_true", help="print JSON")
    connection_options(listing)
    listing.set_defaults(service_handler=list_services)
    for action in ACTIONS:
        one = sub.add_parser(action, help=f"{action} an allow-listed host service (admins)")
        one.add_argument("name")
        one.add_argument("--json", action="store_true", help="print JSON")
        if action == "stop":
            one.add_argument("--confirm-session-loss", action="store_true",
                             help="stop it even if this session depends on it (sshd over SSH)")
        connection_options(one)
        one.set_defaults(service_handler=act, action=action)


def run(args: argparse.Namespace) -> int:
    """Run the chosen sub-command; errors are bHype errors (one line, no traceback)."""
    return int(args.service_handler(args))


def command() -> CliCommand:
    """The ``bhype service`` command record."""
    return CliCommand(name="service", help="host services: list, start, stop, restart, reload, enable, disable",
                      configure=configure, run=run)
