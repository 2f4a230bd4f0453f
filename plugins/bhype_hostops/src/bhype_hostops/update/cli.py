"""``bhype host update plan|run|status|resume|abort [--json]``: the host update from the shell,
through the API (every change a task). ``run`` always shows the plan first and changes
nothing without ``--yes``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from bhype_core.plugin_api import CliCommand, NotFound, api_from, connection_options, follow

BASE = "/api/v1/hostops/update"


def render_plan(plan: dict[str, Any]) -> str:
    """The plan as lines for people."""
    updates = plan.get("updates") or {}
    if updates.get("known"):
        base = updates.get("base") or []
        packages = updates.get("packages") or []
        pending = f"base: {len(base)} update(s); packages: {len(packages)} update(s)"
    else:
        pending = f"unknown ({updates.get('reason', 'no check yet')})"
    be = plan.get("boot_environment") or {}
    lines = [
        f"platform: {plan.get('platform') or 'none'} (base system via {plan.get('base_mode') or '-'})",
        f"boot environment to create: {be.get('create')} (booted now: {be.get('booted')}, "
        f"expected after the reboot: {be.get('expected_after_reboot')})",
        f"VMs to stop, in this order: {_stop_list(plan) or 'none running'}",
        f"  {plan.get('vm_shutdown', '')}",
        f"VMs to bring back, in this order: {', '.join(plan.get('start_order') or []) or 'none'}",
        f"VMs not running (left alone): {', '.join(plan.get('left_alone') or []) or 'none'}",
        f"services to stop: {', '.join(plan.get('services') or []) or 'none'}",
        f"updates: {pending}",
        f"reboot: {plan.get('reboot')}",
        f"checks after: {'hostops.check' if plan.get('check_after') else 'not available'}",
    ]
    lines += [f"PROBLEM: {problem}" for problem in plan.get("problems") or []]
    return "\n".join(lines)


def _stop_list(plan: dict[str, Any]) -> str:
    """``beta (suspend), alpha (shutdown)``: each VM with how it goes down."""
    actions = plan.get("vm_actions") or {}
    return ", ".join(f"{name} ({actions[name]})" if name in actions else name for name in plan.get("stop_order") or [])


def _plan(api: Any) -> dict[str, Any]:
    accepted = api.request("POST", f"{BASE}/plan")
    return api.wait_task(accepted["task_id"], timeout=600)["result"]


def _open_run(api: Any, run: int | None) -> int:
    if run is not None:
        return run
    for item in api.request("GET", f"{BASE}/runs"):
        if item["state"] in ("failed", "running"):
            return int(item["id"])
    raise NotFound("no host update run is stopped or running")


def _print_log(event: Any) -> None:
    if event.event == "log":
        print(event.data.get("message", ""))


def run_command(args: argparse.Namespace) -> int:
    """Dispatch ``bhype host update <action>``."""
    api = api_from(args)
    action = args.update_action
    if action == "plan":
        plan = _plan(api)
        print(json.dumps(plan, indent=2) if args.json else render_plan(plan))
        return 1 if plan.get("problems") else 0
    if action == "status":
        items = api.request("GET", f"{BASE}/runs")
        if not items:
            print("[]" if args.json else "no host update run yet")
            return 0
        run = items[0]
        if args.json:
            print(json.dumps(run, indent=2))
        else:
            print(f"run {run['id']}: {run['state']} (step {run['step'] or '-'})")
            for step in run["steps"]:
                print(f"  {step['step']}: {step['state']}: {step['message']}")
            if run["error"]:
                print(run["error"])
        return 0 if run["state"] in ("done", "brought_back", "running") else 1
    if action == "run":
        plan = _plan(api)
        if not args.json:
            print(render_plan(plan))
        if plan.get("problems"):
            return 1
        if not args.yes:
            print(json.dumps({"plan": plan, "started": False}, indent=2) if args.json
                  else "nothing changed: run again with --yes to update the host as planned")
            return 0
        accepted = api.request("POST", f"{BASE}/run", {"confirm": True})
    else:
        run_id = _open_run(api, args.run)
        verb = "resume" if action == "resume" else "abort"
        accepted = api.request("POST", f"{BASE}/runs/{run_id}/{verb}")
    if args.json:
        print(json.dumps(accepted, indent=2))
        return 0
    print(f"task {accepted['task_id']} queued")
    if not args.follow:
        return 0
    task = follow(api, accepted["task_id"], _print_log)
    return 0 if task.get("state") == "succeeded" else 1


def configure(parser: argparse.ArgumentParser) -> None:
    """The ``plan``, ``run``, ``status``, ``resume`` and ``abort`` actions."""
    actions = parser.add_subparsers(dest="update_action", metavar="ACTION", required=True)
    helps = {"plan": "what an update would do (nothing changes)",
             "run": "show the plan, then with --yes update the host and bring the VMs back",
             "status": "the newest run and its steps",
             "resume": "resume the stopped run from the step that failed",
             "abort": "stop updating: bring the stopped run's VMs and services back"}
    for name, text in helps.items():
        action = actions.add_parser(name, help=text)
        action.add_argument("--json", action="store_true", help="print JSON")
        if name == "run":
            action.add_argument("--yes", action="store_true", help="start the update (after the plan)")
        if name in ("resume", "abort"):
            action.add_argument("--run", type=int, help="the run (default: the stopped or running one)")
        if name in ("run", "resume", "abort"):
            action.add_argument("--follow", action="store_true", help="show the task's log until it ends")
        connection_options(action)


def command() -> CliCommand:
    """``bhype host update``: nested under the core's ``bhype host``."""
    return CliCommand(name="host update", help="update the host (plan first) and bring its VMs back",
                      configure=configure, run=run_command)
