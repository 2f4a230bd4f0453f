"""Undo action for ``switch.create`` cut off by a crash: remove the half-made switch from the host.

``switch.create`` builds the bridge (uplink, VLAN interface, address, NAT) first and stores the
row last; a ``kill -9`` in between left a bridge no record owns. Its intent, written before the
first host change, lets recovery remove it (issue 11). Conservative: nothing is removed when a
switch record of that name exists, and interfaces that existed before the create are kept.
"""

from __future__ import annotations

from typing import Any

from bhype_core.db.session import session
from bhype_core.registry import UndoAction

REMOVE_SWITCH = "switch.remove_host"


def remove_switch(context: Any, config: dict[str, Any], existed: list[str]) -> str | None:
    """Remove the NAT rules and the interfaces of switch ``config`` the create made."""
    from bhype_core.network.models import validate_switch
    from bhype_core.network.service import find_switch, switch_host

    switch = validate_switch(config)
    with session(context.runtime) as db:
        if find_switch(db, switch.name) is not None:
            context.log(f"switch {switch.name} kept: its record exists", level="warning")
            return None
    host = switch_host(context.runtime, context.log)
    have = host.interfaces()
    made = [name for name in (switch.uplink_member(switch.vlan), switch.bridge)
            if name and name in have and name not in existed and name != switch.uplink]
    if switch.nat:
        host.remove_nat(switch)
    host.remove_interfaces(made)  # newest last in the list: removed bridge first
    return f"switch {switch.name} on the host ({', '.join(reversed(made)) or 'no interfaces'})"


UNDO_ACTIONS = (UndoAction(REMOVE_SWITCH, remove_switch, "remove what an interrupted switch.create built"),)
