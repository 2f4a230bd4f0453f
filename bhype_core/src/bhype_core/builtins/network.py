"""Built-in plugin ``core_network``: virtual switches (issue 5): their task kinds,
``/api/v1/switches`` and the ``bhype switch`` commands. The ISO library is ``core_isos``
(:mod:`bhype_core.builtins.isos`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.hookspecs import hookimpl
from bhype_core.network import intents as switch_intents
from bhype_core.network.service import (
    add_uplink,
    apply_switches,
    create_switch,
    destroy_switch,
    remove_uplink,
    switch_lock,
)
from bhype_core.registry import CliCommand, RouterEntry, TaskKind, UndoAction

SWITCH_KINDS: dict[str, tuple[Callable[..., Any], str]] = {
    "switch.create": (create_switch, "create a virtual switch (bridge, uplink, VLAN, address, NAT)"),
    "switch.destroy": (destroy_switch, "remove a switch no VM uses"),
    "switch.add_uplink": (add_uplink, "bridge a host NIC (or one of its VLANs) into a switch"),
    "switch.remove_uplink": (remove_uplink, "make a switch a private network again"),
}


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``switch.*`` (lock ``switch:<name>``) and ``switch.apply``: the host's network, for
    admins only."""
    for name, (run, description) in SWITCH_KINDS.items():
        register(TaskKind(name=name, run=run, description=description, locks=switch_lock, role="admin"))
    register(TaskKind(name="switch.apply", run=apply_switches, role="admin",
                      description="(re)create this host's stored switches, e.g. after a reboot"))


@hookimpl
def bhype_register_undo_actions(register: Callable[[UndoAction], None]) -> None:
    """Recovery of an interrupted ``switch.create``: remove the half-built switch from the host."""
    for action in switch_intents.UNDO_ACTIONS:
        register(action)


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """``/api/v1/switches``."""
    from bhype_core.api.routes import switches

    register(RouterEntry(name="switches", router=switches.make_router()))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype switch …``."""
    from bhype_core.commands import switch

    register(switch.command())
