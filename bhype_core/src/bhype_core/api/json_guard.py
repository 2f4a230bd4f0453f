"""Checks every JSON request body before FastAPI parses it: size, nesting depth and integer range.

Deeply nested JSON makes recursive code (pydantic, the JSON encoder, SQLAlchemy's JSON columns)
raise ``RecursionError``, and integers beyond 64 bits overflow the database drivers: both were
500s (issue 11). One ASGI middleware bounds them for every route of every plugin, so a new route
needs nothing to be safe. It looks only at bodies FastAPI would decode as JSON (a JSON media type,
or none at all and a body starting like a JSON object or array); uploads pass through untouched.

The depth is measured without recursion and without decoding: strings are cut out with one
regular expression, brackets become +1/-1 and a running sum gives the depth, all in C loops, so
a hostile megabyte costs milliseconds.
"""

from __future__ import annotations

import email.message
import json
import math
import re
from array import array
from collections.abc import Iterator
from itertools import accumulate
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bhype_core.api.errors import error_body
from bhype_core.api.limits import INT64_MAX, INT64_MIN, in_int64
from bhype_core.errors import ValidationErrors

# Deeper than any real VM spec, cloud-init document or task arguments (a dozen levels at most),
# far shallower than what breaks recursive code (a few hundred).
MAX_DEPTH = 32
# A JSON body bigger than this is refused with 413: VM specs and cloud-init user data are
# kilobytes; files travel as uploads (application/octet-stream), which this never reads.
MAX_JSON_BODY = 4 << 20

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_OPEN, _CLOSE = 1, 0xFF  # as signed bytes: +1 and -1
_BRACKETS = bytes.maketrans(b"[{]}", bytes([_OPEN, _OPEN, _CLOSE, _CLOSE]))
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{]}")


def json_depth(body: bytes) -> int:
    """Deepest nesting of arrays and objects in ``body`` (0 for a scalar). Brackets inside
    strings do not count; for invalid JSON the answer is an upper bound, which is all a limit
    needs."""
    without_strings = _STRING.sub(b'""', body)
    steps = array("b", without_strings.translate(_BRACKETS, _NOT_BRACKETS))
    return max(accumulate(steps), default=0)


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every (dotted path, scalar) of a decoded document, without recursion."""
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((f"{where}.{key}", child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((f"{where}.{index}", child) for index, child in enumerate(item))
        else:
            yield where, item


def check_json(body: bytes) -> None:
    """Raise :class:`ValidationErrors` naming the problem when ``body`` nests deeper than
    :data:`MAX_DEPTH`, holds an integer outside the signed 64-bit range or a number that is not
    finite (``NaN``, ``Infinity``, ``1e999``); invalid JSON is left
    to FastAPI, which answers it with its own 422."""
    if json_depth(body) > MAX_DEPTH:
        raise ValidationErrors([("body", f"JSON nested deeper than {MAX_DEPTH} levels")])
    try:
        document = json.loads(body)
    except ValueError as exc:
        if isinstance(exc, json.JSONDecodeError):
            return  # FastAPI reports where the syntax is wrong
        # Python refuses to convert integers of more than 4300 digits (sys.set_int_max_str_digits).
        raise ValidationErrors([("body", "a number has too many digits")]) from None
    errors = ValidationErrors()
    for path, item in _walk(document, "body"):
        if isinstance(item, int) and not isinstance(item, bool) and not in_int64(item):
            errors.add(path, f"must be an integer from {INT64_MIN} to {INT64_MAX}")
        elif isinstance(item, float) and not math.isfinite(item):
            # NaN, Infinity and 1e999 decode to floats that JSON cannot carry back out (MariaDB's
            # JSON columns refuse them).
            errors.add(path, "must be a finite number")
    errors.raise_if_any()


def _is_json(scope: Scope) -> bool | None:
    """True for a JSON media type, False for another one, None when there is no Content-Type
    (FastAPI then decodes the body as JSON if the route takes one)."""
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            message = email.message.Message()
            message["content-type"] = value.decode("latin-1")
            subtype = message.get_content_subtype()
            return message.get_content_maintype() == "application" and (
                subtype == "json" or subtype.endswith("+json")
            )
    return None


class JsonGuardMiddleware:
    """Reads a JSON request body, refuses it in bHype's error shape if it is too big (413), too
    deep or holds an out-of-range integer (422), and otherwise hands the same bytes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = _is_json(scope) if scope["type"] == "http" else False
        if kind is False:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        decided = kind is True
        more = True
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(messages, receive), send)
                return
            size += len(message.get("body", b""))
            more = message.get("more_body", False)
            if not decided:
                head = b"".join(m.get("body", b"") for m in messages).lstrip()[:1]
                if head and head not in (b"{", b"["):
                    # No Content-Type and not a JSON object or array (a raw upload): pass it on.
                    await self.app(scope, _replay(messages, receive), send)
                    return
                decided = bool(head)
            if size > MAX_JSON_BODY:
                response = JSONResponse(
                    error_body("request_too_large", f"JSON bodies are limited to {MAX_JSON_BODY} bytes"),
                    status_code=413,
                )
                await response(scope, receive, send)
                return
        body = b"".join(m.get("body", b"") for m in messages)
        if body.strip():
            try:
                check_json(body)
            except ValidationErrors as exc:
                await JSONResponse(exc.to_dict(), status_code=exc.http_status)(scope, receive, send)
                return
        replayed: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([replayed], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that first gives back what was already read, then reads on."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
