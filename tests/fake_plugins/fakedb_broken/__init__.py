"""A fake plugin whose migration creates a table and then fails (nothing may be left behind)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bhype_core.hookspecs import hookimpl
from bhype_core.registry import ModelSet

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    register(ModelSet(name="fakedb_broken", models=(), migrations=MIGRATIONS))
