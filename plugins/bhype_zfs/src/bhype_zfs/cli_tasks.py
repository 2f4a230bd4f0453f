"""What every ``bhype zfs`` sub-command shares: queuing through the API, following the task to
its end (its log on stderr, so stdout carries only the result), confirmation and tables."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from bhype_core.plugin_api import NotFound, StreamEvent, TaskFailed, ValidationErrors, VmApi, api_from, follow

__all__ = ["ZFS", "api_from", "confirm", "print_json", "queue_and_follow", "run_task", "when"]

ZFS = "/api/v1/zfs"


def log_text(line: dict[str, Any]) -> str:
    """A task log line as printed: the message, prefixed with its level unless ``info``."""
    level = line.get("level", "info")
    return line["message"] if level == "info" else f"{level}: {line['message']}"


def run_task(api: VmApi, accepted: dict[str, Any], *, log: bool = True) -> Any:
    """Follow the queued task (``{"task_id", "kind"}``) until it ends and return its result.

    :param log: print the task's log lines on stderr as they arrive.
    :raises TaskFailed: the task failed, was cancelled or interrupted (its error message).
    :raises NotFound: the task was deleted while followed.
    """
    task_id, kind = accepted["task_id"], accepted["kind"]
    held: list[dict[str, Any]] = []  # error lines wait: the last may be the failure record

    def show(event: StreamEvent) -> None:
        if not log or event.event != "log":
            return
        if event.data.get("level") == "error":
            held.append(event.data)
            return
        for line in [*held, event.data]:
            print(log_text(line), file=sys.stderr, flush=True)
        held.clear()

    try:
        final = follow(api, task_id, show)
    except KeyboardInterrupt:
        print(f"\nstopped following; task {task_id} goes on (bhype task follow {task_id})", file=sys.stderr)
        raise
    if final is None:
        raise NotFound(f"task {task_id} ({kind}) no longer exists")
    error = final.get("error")
    message = str(error.get("message") or "") if isinstance(error, dict) else ""
    for line in held:  # the worker's own "failed: <type>: <message>" line repeats the error below
        if not (message and line["message"].startswith("failed: ") and line["message"].endswith(message)):
            print(log_text(line), file=sys.stderr, flush=True)
    if final["state"] != "succeeded":
        raise TaskFailed(f"task {kind} {final['state']}: {message or final['state']}", task_id=task_id, kind=kind)
    return final.get("result")


def queue_and_follow(args: argparse.Namespace, path: str, body: Any = None, *, log: bool = True,
                     **query: Any) -> Any:
    """``POST /api/v1/zfs<path>`` (a route answering 202 with a task) and :func:`run_task` it."""
    api = api_from(args)
    return run_task(api, api.request("POST", ZFS + path, body, **query), log=log)


def confirm(args: argparse.Namespace, question: str, what: str) -> bool:
    """``--yes``, else the answer to ``question`` on the terminal.

    :raises ValidationErrors: no ``--yes`` and stdin is no terminal to ask on (nothing ran).
    """
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise ValidationErrors([("--yes", f"confirm {what} with --yes when not on a terminal; nothing ran")])
    if input(f"{question} [y/N] ").strip().lower() in ("y", "yes"):
        return True
    print("nothing ran")
    return False


def print_json(data: Any) -> int:
    """Print ``data`` as indented JSON; exit status 0."""
    print(json.dumps(data, indent=2, default=str))
    return 0


def when(value: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS`` (the zone as given), or ``-``."""
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value
