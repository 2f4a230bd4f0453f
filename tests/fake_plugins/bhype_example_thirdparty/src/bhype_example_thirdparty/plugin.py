"""The example plugin: a settings section, a router and a notification handler."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter

from bhype_core.plugin_api import Event, RouterEntry, Runtime, RuntimeDep, Section, SettingsSection, hookimpl
from bhype_example_thirdparty import __version__


class ExampleSettings(Section):
    """``[example]``."""

    greeting: str = "hello from a third party"
    events_file: Path | None = None


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare ``[example]``."""
    register(SettingsSection("example", ExampleSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/example``."""
    router = APIRouter()

    @router.get("/hello")
    def hello(runtime: RuntimeDep) -> dict:
        """Greet, with the configured greeting."""
        return {"message": runtime.settings.section("example").greeting, "version": __version__}

    register(RouterEntry("example", router))


@hookimpl
def bhype_notify(event: Event, runtime: Runtime) -> None:
    """Append the event as one JSON line to ``[example] events_file`` (if set)."""
    target = runtime.settings.section("example").events_file if runtime else None
    if target is not None:
        with open(target, "a", encoding="utf-8") as file:
            file.write(json.dumps(event.to_dict()) + "\n")
