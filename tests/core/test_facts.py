"""Host facts (``core_fact``): what the worker probed, stored for the API, on SQLite and MariaDB."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import BaseModel

from bhype_core.builtins import models as core_models
from bhype_core.db.migrate import upgrade
from bhype_core.errors import ValidationErrors
from bhype_core.facts import Fact, FactStore, ProbeState, read_probe
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import Runtime, build_runtime
from bhype_core.testing import make_settings


@pytest.fixture
def runtime(database_url: str, tmp_path: Path) -> Iterator[Runtime]:
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_models", core_models)])
    built = build_runtime(make_settings(tmp_path / "data", core={"database_url": database_url}), pm)
    upgrade(built)
    yield built
    built.engine.dispose()


def test_put_then_get_keeps_the_value_and_the_time(runtime: Runtime) -> None:
    assert isinstance(runtime.facts, FactStore) and runtime.facts is runtime.facts
    assert runtime.facts.get("zfs.status") is None
    before = datetime.now(UTC)
    stored = runtime.facts.put("zfs.status", {"tools": {"found": True, "version": "2.2.4"}, "pool": "tänk"})
    after = datetime.now(UTC)
    fact = runtime.facts.get("zfs.status")
    assert fact == stored
    assert fact.value == {"tools": {"found": True, "version": "2.2.4"}, "pool": "tänk"}
    # Aware UTC, with microseconds kept (MariaDB's DATETIME(6)).
    assert fact.updated.tzinfo is not None and before <= fact.updated <= after
    assert fact.updated.utcoffset() == timedelta(0)


def test_put_replaces_the_earlier_value(runtime: Runtime) -> None:
    first = runtime.facts.put("backup.status", {"rsync": {"found": False}})
    second = runtime.facts.put("backup.status", {"rsync": {"found": True, "protocol": 31}})
    fact = runtime.facts.get("backup.status")
    assert fact.value == {"rsync": {"found": True, "protocol": 31}}
    assert fact.updated == second.updated >= first.updated
    runtime.facts.put("monitor.status", {"host": None})
    assert runtime.facts.get("backup.status").value == second.value  # keys are independent


def test_racing_first_puts_leave_one_row(runtime: Runtime) -> None:
    # Two probes storing the first value at once: one inserts, the other must end up updating.
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def put(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            FactStore(runtime.engine).put("race", {"n": n})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert runtime.facts.get("race").value["n"] in range(4)


@pytest.mark.parametrize(
    ("key", "value", "paths"),
    [
        ("", {}, ["key"]),
        ("x" * 129, {}, ["key"]),
        (None, {}, ["key"]),
        ("zfs.status", ["not", "an", "object"], ["value"]),
        ("zfs.status", {"when": datetime(2025, 1, 1)}, ["value"]),
        ("zfs.status", {"ratio": float("nan")}, ["value"]),
        (7, "both bad", ["key", "value"]),
    ],
)
def test_bad_facts_are_refused_naming_the_field(runtime: Runtime, key, value, paths) -> None:
    with pytest.raises(ValidationErrors) as caught:
        runtime.facts.put(key, value)
    assert [field["path"] for field in caught.value.to_dict()["error"]["fields"]] == paths
    if isinstance(key, str) and key:
        assert runtime.facts.get(key[:128]) is None  # nothing half-stored


class Sample(BaseModel):
    found: bool
    version: str | None = None


def test_read_probe_parses_the_stored_document_and_says_how_old_it_is(runtime: Runtime) -> None:
    value, state = read_probe(runtime.facts, "x.status", Sample, what="the thing", refresh="POST /x/refresh")
    assert value is None and state.probed is False and state.probed_at is None
    assert state.message.startswith("the worker has not probed the thing yet") and "POST /x/refresh" in state.message

    stored = runtime.facts.put("x.status", {"found": True, "version": "1.0"})
    later = stored.updated + timedelta(seconds=90)
    value, state = read_probe(runtime.facts, "x.status", Sample, what="the thing", refresh="POST /x/refresh", now=later)
    assert value == Sample(found=True, version="1.0")
    assert state == ProbeState(probed=True, probed_at=stored.updated, age_seconds=90.0)

    # A document an older plugin version stored, which no longer fits: reported, not a 500.
    runtime.facts.put("x.status", {"version": "0.9"})
    value, state = read_probe(runtime.facts, "x.status", Sample, what="the thing", refresh="POST /x/refresh")
    assert value is None and state.probed is False and "older version" in state.message


def test_age_is_never_negative() -> None:
    now = datetime.now(UTC)
    assert Fact("k", {}, now + timedelta(seconds=5)).age(now) == 0.0
    assert Fact("k", {}, now - timedelta(seconds=5)).age(now) == 5.0
