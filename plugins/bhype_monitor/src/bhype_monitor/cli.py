"""``bhype top`` (refreshing, like top(1)) and ``bhype stats VM [--json]``: clients of
``/api/v1/monitor`` with the token ``bhype login`` stored, so the caller sees what the API lets
them see (an operator: their own VMs)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bhype_core.plugin_api import CliCommand, api_from, connection_options, format_table, human_size

MONITOR = "/api/v1/monitor"
CLEAR = "\033[H\033[2J"  # cursor home, clear screen (ECMA-48), as top(1) redraws


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{human_size(int(value))}/s"


def top_lines(host: dict[str, Any] | None, ranked: list[dict[str, Any]], by: str) -> list[str]:
    """The screen: a host summary line, then the VMs ranked."""
    lines = []
    if host:
        metrics = host.get("metrics", {})
        lines.append(f"host  cpu {metrics.get('cpu_percent', 0):.1f}%  load {metrics.get('load1', 0):.2f} "
                     f"{metrics.get('load5', 0):.2f} {metrics.get('load15', 0):.2f}  "
                     f"mem {human_size(int(metrics.get('mem_used', 0)))}"
                     f"/{human_size(int(metrics.get('mem_total', 0)))}  "
                     f"up {int(metrics.get('uptime', 0)) // 3600} h")
    rows = [[vm["name"], vm.get("owner") or "",
             f"{vm['cpu_percent']:.1f}" if vm.get("cpu_percent") is not None else "-",
             human_size(int(vm["mem_rss"])) if vm.get("mem_rss") is not None else "-",
             _rate(vm.get("disk_bps")), _rate(vm.get("net_bps"))] for vm in ranked]
    lines.append(f"VMs by {by}:")
    lines.append(format_table(rows, ["NAME", "OWNER", "CPU%", "RSS", "DISK", "NET"]) if rows else "(no running VM)")
    return lines


def run_top(args: argparse.Namespace) -> int:
    """``top [--by cpu|memory|disk|network] [--limit N] [--interval S] [--once]``."""
    api = api_from(args)
    while True:
        current = api.request("GET", f"{MONITOR}/current")
        ranked = api.request("GET", f"{MONITOR}/top", by=args.by, limit=args.limit)
        screen = "\n".join(top_lines(current.get("host"), ranked["vms"], args.by))
        if current.get("message"):
            screen = current["message"] + "\n" + screen
        if args.once:
            print(screen)
            return 0
        sys.stdout.write(CLEAR + screen + "\n")
        sys.stdout.flush()
        try:
            time.sleep(args.interval)
        except KeyboardInterrupt:
            return 0


def run_stats(args: argparse.Namespace) -> int:
    """``stats VM [--json] [--since SECONDS]``: the VM's live values, with ``--since`` its series."""
    api = api_from(args)
    body: dict[str, Any] = api.request("GET", f"{MONITOR}/vms/{args.vm}")
    if args.since:
        now = time.time()
        body["series"] = api.request("GET", f"{MONITOR}/vms/{args.vm}/series", **{"from": now - args.since, "to": now})
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
        return 0
    metrics = body.get("metrics", {})
    print(f"{body.get('name')}  {body.get('state')}")
    for key in sorted(metrics):
        print(f"  {key:<20} {metrics[key]}")
    return 0


def _configure_top(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--by", choices=("cpu", "memory", "disk", "network"), default="cpu")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    parser.add_argument("--once", action="store_true", help="print one screen and exit")
    connection_options(parser)


def _configure_stats(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("vm")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--since", type=float, default=0, help="also the series of the last SECONDS")
    connection_options(parser)


COMMANDS = (
    CliCommand(name="top", help="VMs ranked by CPU, memory, disk or network, refreshing", configure=_configure_top,
               run=run_top),
    CliCommand(name="stats", help="one VM's live metrics (and history with --since)", configure=_configure_stats,
               run=run_stats),
)
