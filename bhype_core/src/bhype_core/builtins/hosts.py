"""Built-in plugin ``core_hosts``: ``[host]``, the heartbeat sampler, ``/api/v1/hosts``, ``bhype hosts``."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.hookspecs import hookimpl
from bhype_core.hosts.settings import SECTION, HostSettings
from bhype_core.registry import CliCommand, RouterEntry, Sampler, SettingsSection


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """``[host]``: this host's name in a group and how heartbeats are judged."""
    register(SettingsSection(name=SECTION, model=HostSettings))


@hookimpl
def bhype_register_samplers(register: Callable[[Sampler], None]) -> None:
    """``core.host_heartbeat``: register this host at worker start, then heartbeat."""
    from bhype_core.hosts.heartbeat import TICK, start

    register(Sampler(name="core.host_heartbeat", start=start, interval=TICK,
                     description="register this host in the group and heartbeat (issue 22)"))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """``GET /api/v1/hosts``."""
    from bhype_core.hosts import api

    register(RouterEntry(name="hosts", router=api.make_router()))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype hosts``."""
    from bhype_core.hosts import cli

    register(cli.command())
