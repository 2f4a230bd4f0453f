"""``bhype snmp …``: manager add|list|test|remove and status, clients of ``/api/v1/snmp``.

Secrets never go on the command line (other users see argv in ps(1)): the community and the
v3 keys come from ``$BHYPE_SNMP_COMMUNITY``, ``$BHYPE_SNMP_AUTH_KEY`` and
``$BHYPE_SNMP_PRIV_KEY``, or are asked for on the terminal.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import urllib.parse
from collections.abc import Callable
from functools import partial
from typing import Any

from bhype_core.plugin_api import (
    CliCommand,
    ValidationErrors,
    api_from,
    api_subcommand,
    format_table,
)

SNMP = "/api/v1/snmp"
SECRET_ENV = {"community": "BHYPE_SNMP_COMMUNITY", "auth_key": "BHYPE_SNMP_AUTH_KEY", "priv_key": "BHYPE_SNMP_PRIV_KEY"}
Handler = Callable[[argparse.Namespace], int]


# Sub-commands that talk to the API: --json, --url/--token, and the handler under snmp_handler.
_command = partial(api_subcommand, key="snmp_handler")


def _print_json(data: Any) -> int:
    print(json.dumps(data, indent=2, default=str))
    return 0


def _secret(field: str, prompt: str) -> str:
    value = os.environ.get(SECRET_ENV[field])
    if value:
        return value
    if not sys.stdin.isatty():
        raise ValidationErrors([(field, f"set ${SECRET_ENV[field]} (stdin is no terminal to ask on); "
                                        "nothing was added")])
    return getpass.getpass(f"{prompt}: ")


def manager_add(args: argparse.Namespace) -> int:
    """``manager add NAME HOST [--port] [--v3 --user U] [--inform] …``."""
    body: dict[str, Any] = {"name": args.name, "host": args.host, "port": args.port,
                            "version": "3" if args.v3 else "2c",
                            "notify_type": "inform" if args.inform else "trap", "min_severity": args.min_severity,
                            "rate_limit": args.rate_limit, "timeout": args.timeout, "retries": args.retries,
                            "enabled": not args.disabled}
    if args.v3:
        body.update(user=args.user or "", auth_protocol=args.auth_protocol, priv_protocol=args.priv_protocol,
                    auth_key=_secret("auth_key", "v3 authentication pass phrase"),
                    priv_key=_secret("priv_key", "v3 privacy pass phrase"))
    else:
        body["community"] = _secret("community", "v2c community")
    added = api_from(args).request("POST", f"{SNMP}/managers", body)
    if args.json:
        return _print_json(added)
    target = f"{added['host']}:{added['port']}"
    print(f"manager {added['name']}: {added['notify_type']}s (SNMPv{added['version']}) to {target}")
    return 0


def manager_list(args: argparse.Namespace) -> int:
    """``manager list [--json]``."""
    rows = api_from(args).request("GET", f"{SNMP}/managers")
    if args.json:
        return _print_json(rows)
    if not rows:
        print("no managers")
        return 0
    table = [[r["name"], f"{r['host']}:{r['port']}", f"v{r['version']}", r["notify_type"], r["min_severity"],
              "-" if r["rate_limit"] is None else str(r["rate_limit"]), "yes" if r["enabled"] else "no"] for r in rows]
    print(format_table(table, ["NAME", "TARGET", "VERSION", "TYPE", "MIN SEVERITY", "RATE LIMIT", "ENABLED"]))
    return 0


def manager_test(args: argparse.Namespace) -> int:
    """``manager test NAME [--json]``: exit 0 when sent (trap) or acknowledged (inform), else 1."""
    api = api_from(args)
    accepted = api.request("POST", f"{SNMP}/managers/{urllib.parse.quote(args.name, safe='')}/test")
    result = api.wait_task(accepted["task_id"], timeout=300)["result"]
    ok = result["acknowledged"] is True or (result["acknowledged"] is None and not result["error"])
    if args.json:
        _print_json(result)
    elif result["acknowledged"] is True:
        print(f"manager {args.name}: inform acknowledged (attempt {result['attempts']})")
    elif result["acknowledged"] is False:
        print(f"manager {args.name}: inform NOT acknowledged after {result['attempts']} attempt(s): {result['error']}")
    elif result["error"]:
        print(f"manager {args.name}: trap not sent: {result['error']}")
    else:
        print(f"manager {args.name}: trap sent (traps are not acknowledged; use --inform to know it arrived)")
    return 0 if ok else 1


def manager_remove(args: argparse.Namespace) -> int:
    """``manager remove NAME``."""
    api_from(args).request("DELETE", f"{SNMP}/managers/{urllib.parse.quote(args.name, safe='')}")
    print(f"manager {args.name} removed")
    return 0


def snmp_status(args: argparse.Namespace) -> int:
    """``status [--json]``: the engine IDs v3 trap receivers need (this host's, then the
    other group hosts'), and the agent."""
    status = api_from(args).request("GET", f"{SNMP}/status")
    if args.json:
        return _print_json(status)
    print(f"engine ID: 0x{status['engine_id']} (this host, {status['host']})")
    for host, engine_id in status["sender_engine_ids"].items():  # a group: each host sends as its own
        if host != status["host"]:
            print(f"engine ID of {host}: 0x{engine_id}")
    print(f"managers: {status['managers']} ({status['enabled_managers']} enabled)")
    print(f"agent: {'on ' + status['agent_address'] if status['agent_enabled'] else 'off'}"
          f" (SNMPv2c {'on' if status['agent_v2c'] else 'off'}, {status['agent_users']} v3 user(s))")
    print(f"agent engine ID: 0x{status['agent_engine_id']}")
    return 0


def agent_user_add(args: argparse.Namespace) -> int:
    """``agent user add NAME [--auth-protocol] [--priv-protocol]``: keys from the environment
    or the terminal, never argv."""
    body = {"name": args.name, "auth_protocol": args.auth_protocol, "priv_protocol": args.priv_protocol,
            "auth_key": _secret("auth_key", "v3 authentication pass phrase"),
            "priv_key": _secret("priv_key", "v3 privacy pass phrase")}
    added = api_from(args).request("POST", f"{SNMP}/agent/users", body)
    if args.json:
        return _print_json(added)
    print(f"agent user {added['name']}: {added['auth_protocol']} + {added['priv_protocol']} (authPriv)")
    return 0


def agent_user_list(args: argparse.Namespace) -> int:
    """``agent user list [--json]``."""
    rows = api_from(args).request("GET", f"{SNMP}/agent/users")
    if args.json:
        return _print_json(rows)
    if not rows:
        print("no agent users")
        return 0
    print(format_table([[r["name"], r["auth_protocol"], r["priv_protocol"]] for r in rows], ["NAME", "AUTH", "PRIV"]))
    return 0


def agent_user_remove(args: argparse.Namespace) -> int:
    """``agent user remove NAME``."""
    api_from(args).request("DELETE", f"{SNMP}/agent/users/{urllib.parse.quote(args.name, safe='')}")
    print(f"agent user {args.name} removed")
    return 0


def mib_show(args: argparse.Namespace) -> int:
    """``mib show``: BHYPE-MIB's text as this package ships it (also ``GET /api/v1/snmp/mib``)."""
    from bhype_snmp.mib import mib_text

    print(mib_text(), end="")
    return 0


def mib_install(args: argparse.Namespace) -> int:
    """``mib install [--dir DIR]``: the worker writes BHYPE-MIB.txt into net-snmp's MIB directory."""
    api = api_from(args)
    accepted = api.request("POST", f"{SNMP}/mib/install", {"directory": args.dir})
    result = api.wait_task(accepted["task_id"], timeout=300)["result"]
    if args.json:
        return _print_json(result)
    print(f"installed {result['path']} (load it with: snmptranslate -m +BHYPE-MIB …)")
    return 0


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``bhype snmp`` sub-commands."""
    sub = parser.add_subparsers(dest="snmp_command", metavar="COMMAND", required=True)
    _command(sub, "status", snmp_status, "engine ID, managers, agent (admins)")
    mib = sub.add_parser("mib", help="BHYPE-MIB")
    mibs = mib.add_subparsers(dest="mib_command", metavar="COMMAND", required=True)
    mibs.add_parser("show", help="print BHYPE-MIB").set_defaults(snmp_handler=mib_show)
    _command(mibs, "install", mib_install, "install BHYPE-MIB where net-snmp finds MIBs (admins)").add_argument(
        "--dir", default=None, help="default: /usr/local/share/snmp/mibs (FreeBSD), /usr/share/snmp/mibs (Linux)")
    manager = sub.add_parser("manager", help="notification receivers (admins)")
    inner = manager.add_subparsers(dest="manager_command", metavar="COMMAND", required=True)
    add = _command(inner, "add", manager_add, "add a manager (secrets from $BHYPE_SNMP_* or the terminal)")
    add.add_argument("name")
    add.add_argument("host")
    add.add_argument("--port", type=int, default=162)
    add.add_argument("--v3", action="store_true", help="SNMPv3 (user, SHA-2 auth, AES privacy) instead of v2c")
    add.add_argument("--user", help="v3 user name")
    add.add_argument("--auth-protocol", default="SHA256", choices=["SHA224", "SHA256", "SHA384", "SHA512"])
    add.add_argument("--priv-protocol", default="AES", choices=["AES", "AES192", "AES256"])
    add.add_argument("--inform", action="store_true", help="informs (acknowledged, retried) instead of traps")
    add.add_argument("--min-severity", default="info", choices=["info", "warning", "error", "critical"])
    add.add_argument("--rate-limit", type=int, default=None, metavar="N", help="per event kind per window")
    add.add_argument("--timeout", type=int, default=1, help="seconds before an inform's first retry")
    add.add_argument("--retries", type=int, default=3, help="inform retries (each waits twice as long)")
    add.add_argument("--disabled", action="store_true", help="store it without sending to it")
    _command(inner, "list", manager_list, "every manager (no secrets)")
    _command(inner, "test", manager_test, "send a test notification; says whether an inform was acknowledged"
             ).add_argument("name")
    _command(inner, "remove", manager_remove, "remove a manager").add_argument("name")
    agent = sub.add_parser("agent", help="the read-only agent (admins)")
    agents = agent.add_subparsers(dest="agent_command", metavar="COMMAND", required=True)
    user = agents.add_parser("user", help="SNMPv3 users the agent answers")
    users = user.add_subparsers(dest="agent_user_command", metavar="COMMAND", required=True)
    add_user = _command(users, "add", agent_user_add, "add a v3 user (keys from $BHYPE_SNMP_* or the terminal)")
    add_user.add_argument("name")
    add_user.add_argument("--auth-protocol", default="SHA256", choices=["SHA224", "SHA256", "SHA384", "SHA512"])
    add_user.add_argument("--priv-protocol", default="AES", choices=["AES", "AES192", "AES256"])
    _command(users, "list", agent_user_list, "the agent's v3 users (no keys)")
    _command(users, "remove", agent_user_remove, "remove a v3 user").add_argument("name")


def run(args: argparse.Namespace) -> int:
    """Run the chosen sub-command."""
    handler: Handler = args.snmp_handler
    return handler(args)


def command() -> CliCommand:
    """The ``bhype snmp`` command record."""
    return CliCommand(name="snmp", help="SNMP notification managers and the agent", configure=configure, run=run)
