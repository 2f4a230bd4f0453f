"""``[host]``: this host's name in a group and how heartbeats are judged (registered by ``core_hosts``)."""

from __future__ import annotations

import re
import socket
from typing import Any

from pydantic import Field, field_validator

from bhype_core.config import Section
from bhype_core.errors import ConfigError

SECTION = "host"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class HostSettings(Section):
    """``[host]``: nothing to set on a single host; in a group each worker host sets ``name``."""

    name: str = Field("", description="this host's name in the group; empty = the machine's hostname")
    address: str = Field("", description="how the others reach this host (shown in `bhype hosts`); empty = the name")
    heartbeat_interval: float = Field(5.0, gt=0, le=600, description="seconds between heartbeats")
    unreachable_after: float = Field(
        30.0, gt=0, le=86400, description="seconds without a heartbeat before the host shows as unreachable"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not NAME_RE.fullmatch(value):
            raise ValueError("letters, digits, '.', '_' and '-', at most 63, starting with a letter or digit")
        return value


def host_settings(runtime: Any) -> HostSettings:
    """The runtime's ``[host]`` section, or the defaults when no plugin declared it (a test
    runtime built without ``core_hosts``)."""
    try:
        section = runtime.settings.section(SECTION)
    except ConfigError:
        return HostSettings()
    return section if isinstance(section, HostSettings) else HostSettings.model_validate(section.model_dump())


def machine_name() -> str:
    """The machine's hostname, cut to a valid host name (its first label when too long)."""
    name = socket.gethostname()
    return name if NAME_RE.fullmatch(name) else (name.split(".")[0][:63] or "localhost")


def settings_host_name(settings: Any) -> str:
    """``[host] name`` of ``settings`` (read raw when no plugin declared the section), else the
    machine's hostname."""
    try:
        name = settings.section(SECTION).name
    except ConfigError:
        raw = getattr(settings, "raw", {}).get(SECTION) or {}
        name = raw.get("name", "") if isinstance(raw, dict) else ""
    return name or machine_name()


def local_host_name(runtime: Any) -> str:
    """This process's host: ``[host] name``, else the machine's hostname (cached per runtime)."""
    extras = getattr(runtime, "extras", None)
    if extras is not None and "host.name" in extras:
        return extras["host.name"]
    name = settings_host_name(runtime.settings)
    if extras is not None:
        extras["host.name"] = name
    return name


def queue_name(settings: Any, backend: str) -> str:
    """The huey queue name of this host: on the shared Redis each host consumes its own
    ``<queue.name>.<host>`` so only its worker runs its tasks; a SQLite queue is per host anyway."""
    base = settings.queue.name
    return f"{base}.{settings_host_name(settings)}" if backend == "redis" else base
