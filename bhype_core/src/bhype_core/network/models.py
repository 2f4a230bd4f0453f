"""Virtual switches: the ``core_switch`` table, the validated switch config, and interface names.

A switch is an if_bridge (FreeBSD) or Linux bridge named ``vm-<name>``; VM NICs join it
through a tap each. ``uplink`` adds a host NIC (a switch without one is a private network
between VMs); ``vlan`` bridges the uplink's ``<uplink>.<vlan>`` vlan(4) interface instead of
the NIC itself; a NIC's own ``vlan`` puts it on a separate bridge for that VLAN (one bridge per
VLAN, as vm-bhyve does, because if_bridge VLAN filtering is not in 13/14: reference 5.1).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import Text
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from bhype_core.db.models import utcnow
from bhype_core.db.types import ID, TABLE_OPTIONS, UTCDateTime
from bhype_core.errors import ValidationErrors

# Switch names end up in interface names, pf anchors and nftables tables: no dots (ifconfig
# reads "a.100" as a vlan(4) interface), at most 32 characters.
SWITCH_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
# Host interface names: IFNAMSIZ is 16 on FreeBSD and Linux (15 characters plus NUL).
IFNAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,14}$")
IFNAMSIZ = 15
BRIDGE_PREFIX = "vm-"
MIN_MTU, MAX_MTU = 576, 9216


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def bridge_name(switch: str) -> str:
    """The main bridge of ``switch``: ``vm-<name>`` when it fits 15 characters, else
    ``vm-<12 hex of sha256(name)>`` (vm-bhyve's prefix, so admins recognise it)."""
    full = BRIDGE_PREFIX + switch
    return full if len(full) <= IFNAMSIZ else BRIDGE_PREFIX + _digest(switch, IFNAMSIZ - len(BRIDGE_PREFIX))


def vlan_bridge_name(switch: str, vlan: int) -> str:
    """The bridge carrying VLAN ``vlan`` of ``switch`` for NICs with their own VLAN:
    ``vm<vlan>-<hex of sha256(name)>``, always 15 characters."""
    prefix = f"vm{vlan}-"
    return prefix + _digest(switch, IFNAMSIZ - len(prefix))


def vlan_interface_name(uplink: str, vlan: int) -> str:
    """vlan(4) interface on ``uplink``: ``<uplink>.<vlan>`` (the rc.conf ``vlans_`` style) when
    it fits, else ``vlan<vlan>-<hex>``."""
    full = f"{uplink}.{vlan}"
    if len(full) <= IFNAMSIZ:
        return full
    prefix = f"vlan{vlan}-"
    return prefix + _digest(uplink, IFNAMSIZ - len(prefix))


def linux_tap_name(vm_uuid: str, index: int) -> str:
    """A stable tap name for NIC ``index`` of a VM on Linux (``bh<8 hex>n<index>``): found
    again after a crash, so a new start can remove a stale one first."""
    return f"bh{_digest(vm_uuid, 8)}n{index}"


def nic_description(vm: str, index: int, switch: str) -> str:
    """What a tap is described as (``vmnet/<vm>/<n>/<switch>``, vm-bhyve's convention)."""
    return f"vmnet/{vm}/{index}/{switch}"


class SwitchConfig(BaseModel):
    """A validated switch (what the API accepts and the host side applies)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    uplink: str | None = None
    vlan: int | None = Field(None, ge=1, le=4094)
    mtu: int | None = Field(None, ge=MIN_MTU, le=MAX_MTU)
    address: str | None = Field(None, description="host address on the switch, e.g. 10.77.0.1/24")
    nat: bool = Field(False, description="NAT the switch's subnet out of the host (needs address, no uplink)")
    nat_interface: str | None = Field(None, description="outgoing interface for NAT (FreeBSD pf); default route's")
    description: str = Field("", max_length=255)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SWITCH_NAME_RE.match(value):
            raise ValueError("must be 1-32 letters, digits, '-' or '_', starting with a letter or digit")
        return value

    @field_validator("uplink", "nat_interface")
    @classmethod
    def _ifname(cls, value: str | None) -> str | None:
        if value is not None and not IFNAME_RE.match(value):
            raise ValueError("must be a host interface name (at most 15 letters, digits, '.', '_', '-')")
        if value is not None and value.startswith(BRIDGE_PREFIX):
            raise ValueError("must be a host NIC, not a bHype bridge")
        return value

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            interface = ipaddress.ip_interface(value)
        except ValueError:
            raise ValueError("must be an address with prefix length, e.g. 10.77.0.1/24") from None
        if "/" not in value or interface.ip == interface.network.network_address:
            raise ValueError("must be a host address with prefix length, e.g. 10.77.0.1/24")
        return str(interface)

    @field_validator("description")
    @classmethod
    def _description(cls, value: str) -> str:
        if any(ord(c) < 32 for c in value):
            raise ValueError("must be one line of printable text")
        return value

    @model_validator(mode="after")
    def _nat(self) -> SwitchConfig:
        if self.nat and self.address is None:
            raise ValueError("nat needs an address (the guests' gateway), e.g. 10.77.0.1/24")
        if self.nat and self.uplink is not None:
            raise ValueError("nat is for private switches: remove the uplink or turn nat off")
        if self.nat and ipaddress.ip_interface(self.address or "0.0.0.0/0").version != 4:
            raise ValueError("nat supports IPv4 addresses only")
        return self

    @property
    def bridge(self) -> str:
        """The main bridge interface."""
        return bridge_name(self.name)

    @property
    def network(self) -> str | None:
        """The switch's subnet (``10.77.0.0/24``) when it has an address."""
        return str(ipaddress.ip_interface(self.address).network) if self.address else None

    def segment_bridge(self, nic_vlan: int | None) -> str:
        """The bridge a NIC with VLAN ``nic_vlan`` joins (the main one unless it has its own)."""
        vlan = nic_vlan or self.vlan
        return self.bridge if vlan == self.vlan else vlan_bridge_name(self.name, vlan)  # type: ignore[arg-type]

    def uplink_member(self, vlan: int | None) -> str | None:
        """What bridges the uplink for ``vlan``: the NIC itself, its vlan(4) interface, or none."""
        if self.uplink is None:
            return None
        return self.uplink if vlan is None else vlan_interface_name(self.uplink, vlan)


def validate_switch(data: Mapping[str, Any]) -> SwitchConfig:
    """Validate switch input, collecting every problem with its field name.

    :raises ValidationErrors: naming each bad field.
    """
    from bhype_core.spec import pydantic_errors

    try:
        return SwitchConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise pydantic_errors(exc) from None


class SwitchBase(SQLModel):
    """A stored switch."""

    name: str = SQLField(max_length=32, unique=True)
    bridge: str = SQLField(max_length=16, unique=True)
    uplink: str | None = SQLField(default=None, max_length=16)
    vlan: int | None = None
    mtu: int | None = None
    address: str | None = SQLField(default=None, max_length=64)
    nat: bool = False
    nat_interface: str | None = SQLField(default=None, max_length=16)
    description: str = SQLField(default="", sa_type=Text)
    created: datetime = SQLField(default_factory=utcnow, sa_type=UTCDateTime)
    # The group host it lives on (issue 22, bhype_core.hosts).
    host: str = SQLField(default="", max_length=63, index=True, sa_column_kwargs={"server_default": ""})


class Switch(SwitchBase, table=True):
    """Table ``core_switch``."""

    __tablename__ = "core_switch"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = SQLField(default=None, primary_key=True, sa_type=ID)

    def config(self) -> SwitchConfig:
        """The row as a :class:`SwitchConfig`."""
        return SwitchConfig(
            name=self.name, uplink=self.uplink, vlan=self.vlan, mtu=self.mtu, address=self.address,
            nat=self.nat, nat_interface=self.nat_interface, description=self.description,
        )


class SwitchPublic(SwitchBase):
    """A switch as the API shows it."""

    id: int


SWITCH_MODELS: tuple[type[SQLModel], ...] = (Switch,)


def row_from(config: SwitchConfig, host: str = "") -> Switch:
    """A new row for ``config`` on group host ``host``."""
    return Switch(bridge=config.bridge, host=host, **config.model_dump())


def errors_for(exc: ValidationErrors, prefix: str = "") -> ValidationErrors:
    """``exc`` with every path under ``prefix`` (API bodies nest fields)."""
    out = ValidationErrors()
    out.extend(exc, prefix=prefix)
    return out
