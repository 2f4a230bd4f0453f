"""``bhype task list|show|follow|cancel|retry``: the per-user task queue over the REST API.

Like ``bhype vm``, it talks to the API with the token ``bhype login`` stored (or ``--token`` /
``$BHYPE_TOKEN``), so operators see exactly their own tasks and admins everyone's.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse
from typing import Any, TextIO

from bhype_core.commands.plugins import format_table
from bhype_core.commands.task_follow import StreamEvent, follow
from bhype_core.commands.template import connection_options
from bhype_core.commands.vm_client import VmApi, api_from
from bhype_core.registry import CliCommand

STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
COLUMNS = ("id", "owner", "kind", "target", "state", "progress", "created", "message")


def _path(task_id: str, suffix: str = "") -> str:
    return f"/api/v1/tasks/{urllib.parse.quote(task_id, safe='')}{suffix}"


def _time(value: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` (UTC), or ``-``."""
    return value.replace("T", " ")[:19] if value else "-"


def task_rows(tasks: list[dict[str, Any]]) -> list[list[str]]:
    """One table row per task."""
    return [
        [task["id"], task["owner"], task["kind"], task["target"] or "-", task["state"],
         f"{task['progress']:.0f}%", _time(task["created"]), task["progress_message"] or "-"]
        for task in tasks
    ]


def describe(task: dict[str, Any]) -> str:
    """A task's fields and log as ``bhype task show`` prints them."""
    stopping = " (cancel requested)" if task["cancel_requested"] and task["state"] == "running" else ""
    lines = [
        f"task      {task['id']}",
        f"kind      {task['kind']}",
        f"owner     {task['owner']}",
        f"target    {task['target'] or '-'}",
        f"state     {task['state']}{stopping}",
        f"progress  {task['progress']:.0f}% {task['progress_message']}".rstrip(),
        f"created   {_time(task['created'])}",
        f"started   {_time(task['started'])}",
        f"finished  {_time(task['finished'])}",
        f"arguments {json.dumps(task['arguments'])}",
    ]
    if task.get("retry_of"):
        lines.append(f"retry of  {task['retry_of']}")
    if task.get("error"):
        lines.append(f"error     {task['error']['code']}: {task['error']['message']}")
    if task.get("result") is not None:
        lines.append(f"result    {json.dumps(task['result'])}")
    if task.get("log"):
        lines.append("log:")
        lines += [log_line(line) for line in task["log"]]
    return "\n".join(lines)


def log_line(line: dict[str, Any]) -> str:
    """One log line: time, level (when not info) and message."""
    level = "" if line["level"] == "info" else f" {line['level'].upper()}"
    return f"  {_time(line['time'])}{level} {line['message']}"


def outcome(task: dict[str, Any]) -> tuple[int, str]:
    """Exit status and closing line for a finished task (0 only when it succeeded)."""
    if task["state"] == "succeeded":
        return 0, f"task {task['id']} succeeded"
    error = task.get("error") or {}
    return 1, f"task {task['id']} {task['state']}: {error.get('message', task['state'])}"


def follow_task(api: VmApi, task_id: str, out: TextIO | None = None) -> int:
    """Print the task's log lines and progress as they happen; exit status as :func:`outcome`."""
    out = out or sys.stdout

    def show(event: StreamEvent) -> None:
        if event.event == "log":
            print(log_line(event.data), file=out, flush=True)
        elif event.event == "progress":
            data = event.data
            print(f"[{data['progress']:3.0f}%] {data['state']}: {data['message']}", file=out, flush=True)

    final = follow(api, task_id, show)
    if final is None:
        print(f"task {task_id} no longer exists", file=out)
        return 1
    status, line = outcome(final)
    print(line, file=out)
    return status


def cmd_list(api: VmApi, args: argparse.Namespace) -> int:
    answer = api.request("GET", "/api/v1/tasks", user=args.user, state=args.state, kind=args.kind,
                         limit=args.limit)
    tasks = answer["tasks"]
    if args.json:
        print(json.dumps(tasks, indent=2))
    elif tasks:
        print(format_table(task_rows(tasks), COLUMNS))
    else:
        print("no tasks")
    return 0


def cmd_show(api: VmApi, args: argparse.Namespace) -> int:
    task = api.request("GET", _path(args.id))
    print(json.dumps(task, indent=2) if args.json else describe(task))
    return 0


def cmd_follow(api: VmApi, args: argparse.Namespace) -> int:
    return follow_task(api, args.id)


def cmd_cancel(api: VmApi, args: argparse.Namespace) -> int:
    task = api.request("POST", _path(args.id, "/cancel"))
    if task["state"] == "cancelled":
        print(f"task {task['id']} cancelled")
    else:
        print(f"task {task['id']} is {task['state']}: asked to stop at its next safe point")
    return 0


def cmd_retry(api: VmApi, args: argparse.Namespace) -> int:
    task = api.request("POST", _path(args.id, "/retry"))
    print(f"task {task['id']} queued (retry of {args.id})")
    return follow_task(api, task["id"]) if args.follow else 0


HANDLERS = {"list": cmd_list, "show": cmd_show, "follow": cmd_follow, "cancel": cmd_cancel, "retry": cmd_retry}


def configure(parser: argparse.ArgumentParser) -> None:
    """The sub-commands and their options."""
    sub = parser.add_subparsers(dest="task_command", metavar="COMMAND", required=True)
    listing = sub.add_parser("list", help="your tasks, newest first (admins: everyone's)")
    listing.add_argument("--user", help="only this user's tasks (admins)")
    listing.add_argument("--state", choices=STATES, help="only tasks in this state")
    listing.add_argument("--kind", help="only tasks of this kind (core.ping, vm.start, ...)")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show", help="one task with its log")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="print JSON")
    following = sub.add_parser("follow", help="print a task's log and progress live until it ends")
    following.add_argument("id")
    cancel = sub.add_parser("cancel", help="cancel a queued task, or ask a running one to stop")
    cancel.add_argument("id")
    retry = sub.add_parser("retry", help="queue a failed, cancelled or interrupted task again")
    retry.add_argument("id")
    retry.add_argument("--follow", action="store_true", help="then follow the new task")
    for child in (listing, show, following, cancel, retry):
        connection_options(child)


def run(args: argparse.Namespace) -> int:
    """Run one ``bhype task`` sub-command; errors are bHype errors (one line, no traceback)."""
    return HANDLERS[args.task_command](api_from(args), args)


def command() -> CliCommand:
    """The ``bhype task`` command record."""
    return CliCommand(name="task", help="list, show, follow, cancel and retry tasks", configure=configure, run=run)
