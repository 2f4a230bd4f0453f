"""The ``snmp`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import (
    CliCommand,
    Event,
    ModelSet,
    RouterEntry,
    Runtime,
    Sampler,
    SettingsSection,
    TaskKind,
    hookimpl,
)
from bhype_snmp.settings import SnmpSettings


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[snmp]`` section."""
    register(SettingsSection(name="snmp", model=SnmpSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/snmp``."""
    from bhype_snmp.api import make_router

    register(RouterEntry(name="snmp", router=make_router()))


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Tables ``snmp_manager`` and ``snmp_engine`` (branch ``snmp``)."""
    from bhype_snmp.models import MIGRATIONS, SNMP_MODELS

    register(ModelSet(name="snmp", models=SNMP_MODELS, migrations=MIGRATIONS))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``snmp.test``: a test notification to one manager; ``snmp.install_mib``: BHYPE-MIB into
    net-snmp's MIB directory (admins)."""
    from bhype_snmp.api import INSTALL_MIB_KIND, TEST_KIND
    from bhype_snmp.mib import install_task
    from bhype_snmp.tasks import check_manager

    register(TaskKind(name=TEST_KIND, run=check_manager, role="admin",
                      description="send a test notification to an SNMP manager; "
                                  "says whether an inform was acknowledged"))
    register(TaskKind(name=INSTALL_MIB_KIND, run=install_task, role="admin",
                      description="install BHYPE-MIB where net-snmp finds MIBs on this host"))


@hookimpl
def bhype_register_samplers(register: Callable[[Sampler], None]) -> None:
    """``snmp.agent``: BHYPE-MIB's host scalars and VM table over SNMP, once per host (does
    nothing unless ``[snmp] agent_enabled``)."""
    from bhype_snmp.agent_service import start_agent

    register(Sampler(name="snmp.agent", start=start_agent, interval=1.0,
                     description="serve BHYPE-MIB's VM table (read-only SNMP agent; off by default)"))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype snmp …``."""
    from bhype_snmp.cli import command

    register(command())


@hookimpl
def bhype_notify(event: Event, runtime: Runtime) -> None:
    """Queue ``event`` for every manager (any kind in the catalog: the kind travels as a
    var-bind); returns at once, the sender thread does the network work."""
    if runtime is None:
        return
    from bhype_snmp.sender import sender_for

    sender_for(runtime).submit(event)


@hookimpl(optionalhook=True)
def bhype_webui_register_pages(register: Callable[[Any], None]) -> None:
    """``/ui/snmp`` (admins)."""
    from bhype_snmp.ui import page

    register(page())


@hookimpl(optionalhook=True)
def bhype_webui_register_assets(register: Callable[[Any], None]) -> None:
    """The page's template directory."""
    from bhype_snmp.ui import assets

    register(assets())
