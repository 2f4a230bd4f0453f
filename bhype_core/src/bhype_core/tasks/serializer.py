"""A JSON serializer for huey: queued messages and results are data, never pickles."""

from __future__ import annotations

import datetime
import json
from typing import Any

from huey.registry import Message
from huey.serializer import Serializer
from huey.utils import SKIPPED, Error

# Why not huey's default (pickle): the queue crosses a privilege boundary. The API process
# runs unprivileged and the worker as root (issue 3), so whoever can write to Redis or the
# queue's SQLite file must not be able to run code in the worker by unpickling. JSON also
# keeps task arguments and results in the shape the Task rows and the API store and show.

_TAG = "__bhype__"


def _encode(value: Any) -> Any:
    """Turn the few non-JSON types huey puts in messages into tagged objects."""
    if isinstance(value, Message):
        fields = {name: _encode(getattr(value, name)) for name in Message._fields}
        return {_TAG: "message", "fields": fields}
    if isinstance(value, Error):
        return {_TAG: "error", "metadata": _encode(value.metadata)}
    if value is SKIPPED:
        return {_TAG: "skipped"}
    if isinstance(value, datetime.datetime):
        return {_TAG: "datetime", "value": value.isoformat()}
    if isinstance(value, datetime.timedelta):
        return {_TAG: "timedelta", "seconds": value.total_seconds()}
    if isinstance(value, dict):
        if _TAG in value:
            raise TypeError(f"a dict may not use the reserved key {_TAG!r}")
        return {_key(key): _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"dict keys must be strings, not {type(key).__name__} ({key!r})")
    return key


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {key: _decode(item) for key, item in value.items()}
    if tag == "message":
        fields = {name: _decode(item) for name, item in value["fields"].items()}
        # huey treats positional args as a tuple (pipelines concatenate tuples).
        fields["args"] = tuple(fields.get("args") or ())
        return Message(**{name: fields.get(name) for name in Message._fields})
    if tag == "error":
        return Error(_decode(value["metadata"]))
    if tag == "skipped":
        return SKIPPED
    if tag == "datetime":
        return datetime.datetime.fromisoformat(value["value"])
    if tag == "timedelta":
        return datetime.timedelta(seconds=value["seconds"])
    raise ValueError(f"unknown tagged value {tag!r} in queue data")


def check_json(value: Any, what: str = "value") -> None:
    """Raise ``TypeError`` naming ``what`` unless ``value`` is plain JSON data."""
    try:
        json.dumps(_encode(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON data: {exc}") from None


class JsonSerializer(Serializer):
    """huey serializer writing UTF-8 JSON; optional compression is huey's own."""

    def _serialize(self, data: Any) -> bytes:
        return json.dumps(_encode(data), allow_nan=False, separators=(",", ":")).encode()

    def _deserialize(self, data: bytes | memoryview) -> Any:
        return _decode(json.loads(bytes(data)))
