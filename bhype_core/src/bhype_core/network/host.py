"""Applying switches to the host through the runner: bridges, uplinks, VLANs, taps and NAT.

:class:`SwitchHost` drives either argv module (:mod:`.freebsd` or :mod:`.linux`, chosen by the
platform at call time) with the same steps, and is idempotent: it lists the host's interfaces
first and only creates what is missing, so re-applying after a host reboot (bridges do not
survive one unless rc.conf creates them) or after a failed half-way start is safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from bhype_core.errors import CommandError, ValidationErrors
from bhype_core.network import freebsd, linux, nat
from bhype_core.network.models import SwitchConfig, vlan_bridge_name

UNDO_TIMEOUT = 30.0


class SwitchHost:
    """The host side of switches on one platform, through ``runner``.

    :param platform: ``freebsd`` (ifconfig, pf) or ``linux`` (iproute2, nftables).
    :param log: called with one line per host change (a task's ``context.log``).
    """

    def __init__(self, runner: Any, platform: str, log: Any = None) -> None:
        if platform not in ("freebsd", "linux"):
            raise ValidationErrors([("platform", f"must be freebsd or linux, not {platform!r}")])
        self.runner = runner
        self.platform = platform
        self.argv: ModuleType = freebsd if platform == "freebsd" else linux
        self._log = log or (lambda line: None)

    # -- reading ---------------------------------------------------------------------------

    def interfaces(self) -> set[str]:
        """Every interface name on the host now."""
        return self.argv.parse_interfaces(self.runner.run(self.argv.list_interfaces(), timeout=30).stdout)

    def members(self, bridge: str) -> list[str]:
        """The members of ``bridge`` now."""
        return self.argv.parse_members(self.runner.run(self.argv.show(bridge), timeout=30).stdout)

    def mtu(self, interface: str) -> int | None:
        """The live MTU of ``interface`` now."""
        return self.argv.parse_mtu(self.runner.run(self.argv.link(interface), timeout=30).stdout)

    def _run(self, steps: Iterable[list[str]], input: str | None = None) -> None:
        for argv in steps:
            self._log("host: " + " ".join(argv))
            self.runner.run(argv, timeout=60, input=input)

    # -- switches --------------------------------------------------------------------------

    def ensure_switch(self, switch: SwitchConfig) -> list[str]:
        """Create whatever of ``switch`` is missing: bridge, uplink (or its vlan interface),
        host address, NAT. Returns the interfaces it created (for undo).

        :raises CommandError: a host command failed; the caller undoes what was created.
        """
        have = self.interfaces()
        created: list[str] = []
        try:
            created += self._ensure_bridge(switch.bridge, f"vm/{switch.name}", switch.mtu, have)
            created += self._ensure_uplink(switch, switch.bridge, switch.vlan, have)
            if switch.address:
                self._run(self.argv.set_address(switch.bridge, switch.address))
            if switch.nat:
                self.apply_nat(switch)
        except Exception:
            self.remove_interfaces(created)
            raise
        return created

    def _ensure_bridge(self, bridge: str, description: str, mtu: int | None, have: set[str]) -> list[str]:
        created = []
        if bridge not in have:
            try:
                self._run(self.argv.create_bridge(bridge))
                created.append(bridge)
            except CommandError:
                if bridge not in self.interfaces():  # not a concurrent creation: a real failure
                    raise
        self._run(self.argv.configure_bridge(bridge, description, mtu))
        have.add(bridge)
        return created

    def _ensure_uplink(self, switch: SwitchConfig, bridge: str, vlan: int | None, have: set[str]) -> list[str]:
        member = switch.uplink_member(vlan)
        if member is None:
            return []
        created = []
        if switch.uplink not in have:
            raise ValidationErrors([("uplink", f"the host has no interface {switch.uplink!r}")])
        if vlan is not None and member not in have:
            self._run(self.argv.create_vlan(switch.uplink, vlan, member))
            created.append(member)
            have.add(member)
        if member not in self.members(bridge):
            self._run(self.argv.add_member(bridge, member))
        return created

    def destroy_switch(self, switch: SwitchConfig) -> None:
        """Remove NAT, the per-VLAN bridges, bHype's vlan interfaces and the bridge (members
        are released, the uplink NIC itself is left as it was)."""
        have = self.interfaces()
        if switch.nat:
            self.remove_nat(switch)
        pattern = re.compile(r"^vm\d{1,4}-[0-9a-f]+$")
        doomed = [name for name in sorted(have) if pattern.match(name) and _is_vlan_bridge_of(switch, name)]
        if switch.bridge in have:
            doomed.append(switch.bridge)
        if switch.uplink:
            from bhype_core.network.models import vlan_interface_name

            doomed += [vlan_interface_name(switch.uplink, v) for v in range(1, 4095)
                       if vlan_interface_name(switch.uplink, v) in have and _vlan_used(switch, v, have)]
        self.remove_interfaces(doomed)

    def remove_interfaces(self, names: Iterable[str]) -> None:
        """Destroy ``names`` (newest first); failures are logged, not raised (undo paths)."""
        for name in reversed(list(names)):
            try:
                self._run(self.argv.destroy(name))
            except CommandError as exc:
                self._log(f"could not remove {name}: {exc.message}")

    def set_uplink(self, old: SwitchConfig, new: SwitchConfig) -> None:
        """Swap the main bridge's uplink member from ``old``'s to ``new``'s."""
        have = self.interfaces()
        previous = old.uplink_member(old.vlan)
        if previous and old.bridge in have and previous in self.members(old.bridge):
            self._run(self.argv.remove_member(old.bridge, previous))
            if old.vlan is not None and previous in have:
                self.remove_interfaces([previous])
        self.ensure_switch(new)

    # -- NICs ------------------------------------------------------------------------------

    def ensure_segment(self, switch: SwitchConfig, nic_vlan: int | None) -> str:
        """The bridge a NIC with ``nic_vlan`` joins, created (with its uplink) if missing."""
        bridge = switch.segment_bridge(nic_vlan)
        if bridge == switch.bridge:
            self.ensure_switch(switch)
            return bridge
        have = self.interfaces()
        vlan = nic_vlan or switch.vlan
        if switch.bridge not in have:
            self.ensure_switch(switch)
        created = self._ensure_bridge(bridge, f"vm/{switch.name}/vlan{vlan}", switch.mtu, have)
        try:
            self._ensure_uplink(switch, bridge, vlan, have)
        except Exception:
            self.remove_interfaces(created)
            raise
        return bridge

    def plug(self, switch: SwitchConfig | None, nic_vlan: int | None, description: str, hint: str) -> str:
        """Create a tap, describe it and add it to its switch segment; return its name. A NIC
        without a switch gets a tap on no bridge (bhyve needs one; the guest sees a cable
        plugged into nothing)."""
        bridge = self.ensure_segment(switch, nic_vlan) if switch else None
        if hint in self.interfaces():  # a stale tap from a crashed run (Linux names are stable)
            self.remove_interfaces([hint])
        self._log("host: " + " ".join(self.argv.create_tap(hint)))
        result = self.runner.run(self.argv.create_tap(hint), timeout=30)
        tap = self.argv.created_tap(result.stdout, hint)
        try:
            # A tap joins its bridge only with the bridge's MTU (if_bridge(4) refuses another on
            # FreeBSD): the switch's configured MTU, else whatever the bridge has now (a jumbo
            # uplink gives it 9000 without any switch setting).
            mtu = (switch.mtu or self.mtu(bridge)) if switch and bridge else None
            self._run(self.argv.configure_tap(tap, description, bridge, mtu))
        except Exception:
            self.remove_interfaces([tap])
            raise
        return tap

    def unplug(self, tap: str, switch: SwitchConfig | None = None, nic_vlan: int | None = None) -> None:
        """Destroy ``tap``; a per-VLAN bridge left with no VM port is removed too."""
        have = self.interfaces()
        if tap in have:
            self.remove_interfaces([tap])
        if switch is None:
            return
        bridge = switch.segment_bridge(nic_vlan)
        if bridge != switch.bridge and bridge in have:
            uplink = switch.uplink_member(nic_vlan or switch.vlan)
            if not [m for m in self.members(bridge) if m != uplink]:
                self.remove_interfaces([n for n in (bridge, uplink) if n and n in have and n != switch.uplink])

    # -- NAT -------------------------------------------------------------------------------

    def apply_nat(self, switch: SwitchConfig) -> None:
        """Enable forwarding and load the switch's NAT rules (pf anchor / nftables table)."""
        self._run([self.argv.enable_forwarding()])
        if self.platform == "freebsd":
            egress = switch.nat_interface or nat.parse_route_interface(
                self.runner.run(nat.default_route(), timeout=30).stdout
            )
            if not egress:
                raise ValidationErrors([("nat_interface", "no default route: name the outgoing interface")])
            self._run([nat.pf_load(switch)], input=nat.pf_rules(switch, egress))
        else:
            self._run([nat.nft_load()], input=nat.nft_ruleset(switch))

    def remove_nat(self, switch: SwitchConfig) -> None:
        """Unload the switch's NAT rules (forwarding stays: other things may rely on it)."""
        argv = nat.pf_flush(switch) if self.platform == "freebsd" else nat.nft_delete(switch)
        result = self.runner.run(argv, timeout=30, check=False)
        self._log(f"host: {' '.join(argv)} (exit {result.returncode})")


def _is_vlan_bridge_of(switch: SwitchConfig, name: str) -> bool:
    vlan = int(name[2:].split("-", 1)[0])
    return 1 <= vlan <= 4094 and vlan_bridge_name(switch.name, vlan) == name


def _vlan_used(switch: SwitchConfig, vlan: int, have: set[str]) -> bool:
    # Only vlan interfaces this switch would have made: its own VLAN or a per-NIC VLAN bridge's.
    return vlan == switch.vlan or vlan_bridge_name(switch.name, vlan) in have
