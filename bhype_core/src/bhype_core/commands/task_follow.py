"""Following a task live: read ``GET /api/v1/tasks/<id>/stream`` (Server-Sent Events)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bhype_core.commands.api_client import ApiError
from bhype_core.commands.vm_client import VmApi, bhype_error

# The server sends a comment at least every 15 s; silence for this long means a dead link.
READ_TIMEOUT = 60.0
RECONNECTS = 5  # a dropped stream resumes after the last log line it delivered


@dataclass(frozen=True)
class StreamEvent:
    """One Server-Sent Event: its name, id (log events only) and decoded JSON data."""

    event: str
    id: str | None
    data: Any


def parse_events(lines: Iterator[str]) -> Iterator[StreamEvent]:
    """Events from the lines of an ``text/event-stream`` body (comments skipped)."""
    fields: dict[str, str] = {}
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield StreamEvent(fields.get("event", "message"), fields.get("id"), json.loads(fields["data"]))
            fields = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        fields[name] = value[1:] if value.startswith(" ") else value


def _http_error(exc: urllib.error.HTTPError) -> ApiError:
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        body = {}
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return ApiError(exc.code, str(message or f"HTTP {exc.code} {exc.reason}"), body)


def _open(api: VmApi, task_id: str, last_id: str | None) -> Any:
    url = f"{api.base_url.rstrip('/')}/api/v1/tasks/{urllib.parse.quote(task_id)}/stream"
    request = urllib.request.Request(url, headers={"Accept": "text/event-stream"})
    if api.token:
        request.add_header("Authorization", f"Bearer {api.token}")
    if last_id:
        request.add_header("Last-Event-ID", last_id)
    try:
        return urllib.request.urlopen(request, timeout=READ_TIMEOUT)  # noqa: S310 (http/https only)
    except urllib.error.HTTPError as exc:
        raise bhype_error(_http_error(exc)) from None
    except (urllib.error.URLError, OSError) as exc:
        raise bhype_error(ApiError(None, f"cannot reach {url}: {getattr(exc, 'reason', exc)}")) from None


def follow(api: VmApi, task_id: str, on_event: Callable[[StreamEvent], None]) -> dict[str, Any]:
    """Hand every event of the task's stream to ``on_event`` until the ``end`` event, and return
    the finished task. A dropped connection is reopened (up to :data:`RECONNECTS` times) with
    ``Last-Event-ID``, so no log line is lost or repeated.

    :raises BhypeError: the task is unknown or not the caller's (404), the server is gone.
    """
    last_id: str | None = None
    failures = 0
    while True:
        response = _open(api, task_id, last_id)
        try:
            with response:
                lines = (raw.decode("utf-8") for raw in iter(response.readline, b""))
                for event in parse_events(lines):
                    failures = 0
                    if event.id is not None:
                        last_id = event.id
                    on_event(event)
                    if event.event == "end":
                        return event.data
        except OSError:
            pass  # read timeout or reset: reconnect below
        failures += 1
        if failures > RECONNECTS:
            raise bhype_error(ApiError(None, f"the stream of task {task_id} keeps breaking off"))
