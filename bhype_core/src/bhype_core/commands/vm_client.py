"""The API client the ``bhype vm``/``bhype template`` commands use: bearer token, JSON, bHype errors.

The CLI talks to the API like any other client, with the API token ``bhype login`` stored
(or ``--token``/``$BHYPE_TOKEN``), so operators get exactly the ownership rules, validation
and task queue the web UI gets, and the CLI needs neither the database nor root.
"""

from __future__ import annotations

import os
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bhype_core.commands.api_client import ApiError, default_url, load_credentials, request_json
from bhype_core.errors import BhypeError, Conflict, Forbidden, NotFound, TaskFailed, Unauthorized, ValidationErrors

FINAL_TASK_STATES = ("succeeded", "failed", "cancelled", "interrupted")
_STATUS_ERRORS: dict[int, type[BhypeError]] = {401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict}


def bhype_error(exc: ApiError) -> BhypeError:
    """The bHype error an API error answer stands for (a 422 keeps its field paths)."""
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
    if exc.status == 422:
        fields = [(f.get("path", ""), f.get("message", "")) for f in error.get("fields") or []]
        return ValidationErrors(fields or [("", exc.message)])
    if exc.status == 401:
        return Unauthorized(f"{exc.message} (run `bhype login`, or pass --token / $BHYPE_TOKEN)")
    return _STATUS_ERRORS.get(exc.status or 0, BhypeError)(exc.message)


def all_vms(api: Any, **query: Any) -> list[dict[str, Any]]:
    """Every VM ``GET /api/v1/vms`` lists for ``query`` (owner, state, q, sort), following
    the ``next`` cursors a page (1,000 VMs) at a time. ``api`` is anything with
    :meth:`VmApi.request`."""
    vms: list[dict[str, Any]] = []
    after = None
    while True:
        page = api.request("GET", "/api/v1/vms", limit=1000, after=after, **query)
        vms += page["vms"]
        after = page.get("next")
        if not after:
            return vms


@dataclass
class VmApi:
    """Requests to one bHype server (``base_url``) with a bearer ``token``."""

    base_url: str
    token: str | None = None

    def request(self, method: str, path: str, body: Any = None, **query: Any) -> Any:
        """One request; JSON in and out.

        :raises BhypeError: the matching subclass for an error answer (422 with fields).
        """
        url = self.base_url.rstrip("/") + path
        pairs = {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in query.items() if v is not None}
        if pairs:
            url += "?" + urllib.parse.urlencode(pairs)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            return request_json(urllib.request.build_opener(), method, url, body, headers)
        except ApiError as exc:
            raise bhype_error(exc) from None

    def wait_task(
        self,
        task_id: str,
        timeout: float = 3600.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        interval: float = 0.5,
    ) -> dict[str, Any]:
        """Poll ``GET /api/v1/tasks/<id>`` until the task ends and return it.

        :raises TaskFailed: it ended failed, cancelled or interrupted (with its error message).
        :raises TimeoutError: it was still going after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            task = self.request("GET", f"/api/v1/tasks/{urllib.parse.quote(task_id)}")
            if on_progress is not None:
                on_progress(task)
            state = task.get("state")
            if state in FINAL_TASK_STATES:
                if state != "succeeded":
                    error = task.get("error") or {}
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise TaskFailed(f"task {task.get('kind', '')} {state}: {message or state}",
                                     task_id=task_id, kind=task.get("kind", ""))
                return task
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_id} still {state} after {timeout:g} s")
            time.sleep(interval)


def api_from(args: Any) -> VmApi:
    """The client for one CLI run: ``--url``, ``$BHYPE_URL`` or the configured API address;
    ``--token``, ``$BHYPE_TOKEN`` or the token ``bhype login`` stored for that URL."""
    url = (getattr(args, "url", None) or default_url(args.runtime.settings)).rstrip("/")
    token = getattr(args, "token", None) or os.environ.get("BHYPE_TOKEN")
    if not token:
        stored = load_credentials(url)
        token = stored.token if stored is not None else None
    return VmApi(url, token)
