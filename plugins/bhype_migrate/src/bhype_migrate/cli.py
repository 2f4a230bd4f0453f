"""``bhype peer …`` and ``bhype vm move …``: clients of ``/api/v1/migrate`` like ``bhype vm``.

They talk to the API with the stored token (``bhype login``, ``--token``/``$BHYPE_TOKEN``),
follow the queued task to its end (its log on stderr) and print the result on stdout. A
peer's token is read from ``--token-file`` or ``$BHYPE_PEER_TOKEN`` (or ``--token``), sent once
and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import (
    CliCommand,
    StreamEvent,
    TaskFailed,
    ValidationErrors,
    api_from,
    api_subcommand,
    connection_options,
    follow,
    format_table,
)

MIGRATE = "/api/v1/migrate"
Handler = Callable[[argparse.Namespace], int]


# Sub-commands that talk to the API: --json, --url/--token, and the handler under migrate_handler.
_sub = partial(api_subcommand, key="migrate_handler")


def run_task(api: Any, accepted: dict[str, Any]) -> Any:
    """Follow a queued task, its log lines on stderr; its result, or :class:`TaskFailed`."""

    def show(event: StreamEvent) -> None:
        if event.event == "log":
            level = event.data.get("level", "info")
            text = event.data["message"]
            print(text if level == "info" else f"{level}: {text}", file=sys.stderr, flush=True)

    final = follow(api, accepted["task_id"], show)
    if final["state"] != "succeeded":
        error = final.get("error") or {}
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise TaskFailed(f"task {accepted['kind']} {final['state']}: {message}", task_id=accepted["task_id"],
                         kind=accepted["kind"])
    return final.get("result")


def _print(args: argparse.Namespace, data: Any, text: str) -> int:
    print(json.dumps(data, indent=2) if getattr(args, "json", False) else text)
    return 0


def peer_add(args: argparse.Namespace) -> int:
    token = args.token or os.environ.get("BHYPE_PEER_TOKEN")
    if args.token_file:
        token = Path(args.token_file).read_text().strip()
    if not token:
        raise ValidationErrors([("token",
                                 "give the other host's admin token (--token-file, $BHYPE_PEER_TOKEN or --token)")])
    body = {"name": args.name, "url": args.peer_url, "token": token, "ssh_host": args.ssh_host or "",
            "ssh_port": args.ssh_port, "ssh_user": args.ssh_user}
    # --url/--token name the peer here (as the docs write it); this host's API is --api-url/--api-token.
    api = api_from(argparse.Namespace(runtime=args.runtime, url=args.api_url, token=args.api_token))
    result = run_task(api, api.request("POST", f"{MIGRATE}/peers", body))
    text = (f"peer {args.name} added ({result['peer']['url']}); host key pinned.\n"
            f"Add this line to ~{args.ssh_user}/.ssh/authorized_keys on {args.name}:\n{result['public_key']}")
    return _print(args, result, text)


def peer_list(args: argparse.Namespace) -> int:
    peers = api_from(args).request("GET", f"{MIGRATE}/peers")["peers"]
    rows = [[p["name"], p["url"], f"{p['ssh_user']}@{p['ssh_host']}:{p['ssh_port']}",
             {True: "ok", False: "FAILED", None: "-"}[p["test_ok"]]] for p in peers]
    return _print(args, peers, format_table(rows, ["NAME", "URL", "SSH", "TEST"]))


def peer_show(args: argparse.Namespace) -> int:
    peer = api_from(args).request("GET", f"{MIGRATE}/peers/{args.name}")
    lines = [f"{key}: {value}" for key, value in peer.items() if key != "test_report"]
    for check in (peer.get("test_report") or {}).get("checks", []):
        lines.append(f"  {check['check']}: {'ok' if check['ok'] else 'FAILED'}: {check['detail']}")
    return _print(args, peer, "\n".join(lines))


def peer_test(args: argparse.Namespace) -> int:
    api = api_from(args)
    accepted = api.request("POST", f"{MIGRATE}/peers/{args.name}/test", vm=args.vm)
    result = run_task(api, accepted)
    lines = [f"{c['check']}: {'ok' if c['ok'] else 'FAILED'}: {c['detail']}" for c in result["checks"]]
    return _print(args, result, "\n".join(lines))


def peer_remove(args: argparse.Namespace) -> int:
    api = api_from(args)
    result = run_task(api, api.request("DELETE", f"{MIGRATE}/peers/{args.name}"))
    return _print(args, result, f"peer {args.name} removed")


def move(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"vm": args.vm, "to": args.to, "mode": args.mode, "transport": args.transport,
                            "keep_source": args.keep_source, "start": args.start, "dry_run": args.dry_run}
    if args.as_name:
        body["as"] = args.as_name
    api = api_from(args)
    result = run_task(api, api.request("POST", f"{MIGRATE}/moves", body))
    if args.dry_run:
        lines = [f"move {result['vm']} to {result['to']} ({result['mode']}, {result['transport']}): "
                 f"{len(result['files'])} file(s), {result['bytes_allocated']} bytes allocated",
                 f"expected offline window: {result['estimated_offline_seconds']} s; {result['identity']}",
                 f"not moved: {', '.join(result['not_moved'])}"]
        lines += [f"REFUSED: {path}: {reason}" for path, reason in result["problems"]]
        _print(args, result, "\n".join(lines))
        return 1 if result["problems"] else 0
    text = (f"VM {result['vm']} moved to {result['to']} ({result['bytes_sent']} bytes sent, offline "
            f"{result['offline_seconds']} s); source {result['source']}")
    return _print(args, result, text)


def configure_peer(parser: argparse.ArgumentParser) -> None:
    """``bhype peer add|list|show|test|remove``."""
    sub = parser.add_subparsers(dest="peer_command", metavar="COMMAND", required=True)
    add = sub.add_parser("add", help="pair with another bHype host (admins)")
    add.add_argument("--json", action="store_true", help="print JSON")
    add.add_argument("--api-url", help="this host's bHype API (default: $BHYPE_URL or the configured one)")
    add.add_argument("--api-token", help="API token here (default: $BHYPE_TOKEN or the one `bhype login` stored)")
    add.set_defaults(migrate_handler=peer_add)
    add.add_argument("name")
    add.add_argument("--url", dest="peer_url", required=True, help="the other host's bHype API URL")
    add.add_argument("--token-file", help="file holding an admin API token of the other host")
    add.add_argument("--token", help="the other host's admin token (visible in ps; prefer --token-file "
                                     "or $BHYPE_PEER_TOKEN)")
    add.add_argument("--ssh-host", help="host for the data path (default: the URL's)")
    add.add_argument("--ssh-port", type=int, default=22)
    add.add_argument("--ssh-user", default="root")
    _sub(sub, "list", peer_list, "paired hosts")
    _sub(sub, "show", peer_show, "one peer and its last test").add_argument("name")
    test = _sub(sub, "test", peer_test, "check API, SSH, hypervisor, space (and a VM's needs) on a peer")
    test.add_argument("name")
    test.add_argument("--vm", help="also check what this VM needs there")
    _sub(sub, "remove", peer_remove, "forget a peer").add_argument("name")


def configure_move(parser: argparse.ArgumentParser) -> None:
    """``bhype vm move NAME --to PEER …``."""
    parser.add_argument("vm")
    parser.add_argument("--to", required=True, help="a host of this group (`bhype hosts`) or a paired peer")
    parser.add_argument("--mode", choices=["cold", "warm"], default="cold")
    parser.add_argument("--transport", choices=["auto", "rsync", "zfs"], default="auto",
                        help="auto: zfs send/receive when both datastores are ZFS, else rsync")
    parser.add_argument("--keep-source", action="store_true", help="keep the source, stopped and marked moved")
    parser.add_argument("--start", action="store_true", help="start the VM there")
    parser.add_argument("--as", dest="as_name", help="a copy under this name (with --keep-source)")
    parser.add_argument("--dry-run", action="store_true", help="show the plan; change nothing")
    parser.add_argument("--json", action="store_true", help="print JSON")
    connection_options(parser)
    parser.set_defaults(migrate_handler=move)


def run(args: argparse.Namespace) -> int:
    """Run the chosen sub-command."""
    handler: Handler = args.migrate_handler
    return handler(args)


def peer_command() -> CliCommand:
    """The ``bhype peer`` command record."""
    return CliCommand(name="peer", help="other bHype hosts VMs move to (admins)", configure=configure_peer, run=run)


def move_command() -> CliCommand:
    """The ``bhype vm move`` command record (nested under the core's ``bhype vm``)."""
    return CliCommand(name="vm move", help="move a VM to another host of the group or a peer (cold or warm)",
                      configure=configure_move, run=run)
