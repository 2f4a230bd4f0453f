"""Switch records and the ``switch.*`` tasks: create, destroy, add/remove uplink, apply.

Each task holds the lock ``switch:<name>``. A change is applied to the host first and stored
after; when the host step fails, what it created is removed and nothing is stored, so a
failure never leaves half a switch behind.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from bhype_core.db.session import session
from bhype_core.errors import Conflict, NotFound, ValidationErrors
from bhype_core.hosts.settings import local_host_name
from bhype_core.network.host import SwitchHost
from bhype_core.network.intents import REMOVE_SWITCH
from bhype_core.network.models import Switch, SwitchConfig, row_from, validate_switch

LOCK_PREFIX = "switch:"


def switch_lock(arguments: dict[str, Any]) -> list[str]:
    """``["switch:<name>"]`` for a switch task's arguments."""
    name = arguments.get("name")
    return [f"{LOCK_PREFIX}{name}"] if isinstance(name, str) and name else []


def switch_host(runtime: Any, log: Any = None) -> SwitchHost:
    """The host side for this runtime's platform and runner."""
    from bhype_core.host.platform import detect_platform

    return SwitchHost(runtime.runner, detect_platform(runtime.settings.core.platform), log)


def list_switches(db: Session) -> list[Switch]:
    """Every switch, by name."""
    return list(db.exec(select(Switch).order_by(col(Switch.name))).all())


def find_switch(db: Session, name: str) -> Switch | None:
    """The switch called ``name``, or ``None``."""
    return db.exec(select(Switch).where(Switch.name == name)).first()


def get_switch(db: Session, name: str) -> Switch:
    """The switch called ``name``.

    :raises NotFound: there is none.
    """
    row = find_switch(db, name)
    if row is None:
        raise NotFound(f"no switch named {name!r}")
    return row


def switch_configs(runtime: Any) -> dict[str, SwitchConfig]:
    """Every stored switch's config by name (for plugging NICs)."""
    with session(runtime) as db:
        return {row.name: row.config() for row in list_switches(db)}


def vms_on_switch(db: Session, name: str) -> list[str]:
    """Names of the VMs with a NIC on switch ``name`` (empty while ``core_vm`` is absent)."""
    try:
        from bhype_core.vm.models import VM
    except ImportError:  # the VM layer is a separate feature; without it nothing can use a switch
        return []
    users = []
    for vm_name, spec in db.exec(select(VM.name, VM.spec)).all():
        nics = (spec or {}).get("nics", [])
        if any(isinstance(nic, dict) and nic.get("switch") == name for nic in nics):
            users.append(vm_name)
    return sorted(users)


def check_new(db: Session, config: SwitchConfig) -> None:
    """Refuse a name or bridge that is taken.

    :raises Conflict: naming the clash.
    """
    if find_switch(db, config.name) is not None:
        raise Conflict(f"a switch named {config.name!r} already exists")
    clash = db.exec(select(Switch).where(Switch.bridge == config.bridge)).first()
    if clash is not None:
        raise Conflict(f"switch {config.name!r} would use bridge {config.bridge}, already used by {clash.name!r}")


def create_switch(context: Any, name: str, **fields: Any) -> dict[str, Any]:
    """Task ``switch.create``: validate, build the bridge (uplink, VLAN, address, NAT) on the
    host, then store the switch. Arguments are :class:`SwitchConfig` fields."""
    config = validate_switch({"name": name, **fields})
    runtime = context.runtime
    with session(runtime) as db:
        check_new(db, config)
    host = switch_host(runtime, context.log)
    context.progress(20, f"creating bridge {config.bridge}")
    # Recovery removes what a crash leaves half made (issue 11); what was there before stays.
    existed = sorted(host.interfaces() & {config.bridge, config.uplink_member(config.vlan) or ""})
    context.intent(REMOVE_SWITCH, f"switch {name} on the host", config=config.model_dump(mode="json"),
                   existed=existed)
    created = host.ensure_switch(config)
    try:
        with session(runtime, write=True) as db:
            check_new(db, config)  # a racing create of the same name under another lock key
            db.add(row_from(config, host=local_host_name(runtime)))
    except Exception:
        if config.nat:
            host.remove_nat(config)
        host.remove_interfaces(created)
        raise
    context.progress(100, f"switch {name} ready on {config.bridge}")
    return {"name": name, "bridge": config.bridge, "created": created}


def destroy_switch(context: Any, name: str) -> dict[str, Any]:
    """Task ``switch.destroy``: refused while a VM has a NIC on it; removes NAT, bridges and
    vlan interfaces from the host, then the record."""
    runtime = context.runtime
    with session(runtime) as db:
        row = get_switch(db, name)
        users = vms_on_switch(db, name)
        if users:
            raise Conflict(f"switch {name} is used by VM(s) {', '.join(users)}: move their NICs first")
        config = row.config()
    switch_host(runtime, context.log).destroy_switch(config)
    with session(runtime, write=True) as db:
        db.delete(get_switch(db, name))
    context.progress(100, f"switch {name} removed")
    return {"name": name}


def set_uplink(context: Any, name: str, uplink: str | None = None, vlan: int | None = None) -> dict[str, Any]:
    """Task ``switch.add_uplink`` (``uplink`` set) / ``switch.remove_uplink`` (``None``):
    swap the bridge's uplink member, then store the change."""
    runtime = context.runtime
    with session(runtime) as db:
        old = get_switch(db, name).config()
    data = old.model_dump()
    data.update(uplink=uplink, vlan=vlan if uplink is not None else old.vlan)
    new = validate_switch(data)
    switch_host(runtime, context.log).set_uplink(old, new)
    with session(runtime, write=True) as db:
        row = get_switch(db, name)
        row.uplink, row.vlan = new.uplink, new.vlan
        db.add(row)
    context.progress(100, f"switch {name} uplink: {new.uplink_member(new.vlan) or 'none'}")
    return {"name": name, "uplink": new.uplink, "vlan": new.vlan}


def add_uplink(context: Any, name: str, uplink: str, vlan: int | None = None) -> dict[str, Any]:
    """Task ``switch.add_uplink``: bridge host NIC ``uplink`` (tagged ``vlan`` if given)."""
    if not uplink:
        raise ValidationErrors([("uplink", "name the host interface to add")])
    return set_uplink(context, name, uplink, vlan)


def remove_uplink(context: Any, name: str) -> dict[str, Any]:
    """Task ``switch.remove_uplink``: the switch becomes a private network."""
    return set_uplink(context, name, None, None)


def host_switch_configs(runtime: Any) -> dict[str, SwitchConfig]:
    """The configs of the switches living on this group host (and rows from before the group,
    host ``''``), by name: another host's switches are its worker's business (issue 22)."""
    from bhype_core.hosts.settings import local_host_name

    here = local_host_name(runtime)
    with session(runtime) as db:
        return {row.name: row.config() for row in list_switches(db) if row.host in (here, "")}


def apply_switches(context: Any) -> dict[str, Any]:
    """Task ``switch.apply``: (re)create every stored switch of this host, e.g. after a reboot."""
    host = switch_host(context.runtime, context.log)
    configs = host_switch_configs(context.runtime)
    for index, config in enumerate(configs.values()):
        context.progress(100 * index / max(1, len(configs)), f"switch {config.name}")
        host.ensure_switch(config)
    return {"switches": sorted(configs)}
