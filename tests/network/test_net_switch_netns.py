"""Switches for real on Linux: the ``switch.*`` tasks and NIC plugging build real bridges and
taps inside a network namespace; veth endpoints in further namespaces stand in for hosts and
prove who can reach whom. All traffic stays inside the test's namespaces."""

from __future__ import annotations

from pathlib import Path

import pytest
from _netkit import NetnsRunner, in_ns, links, pings, reaches, task_context, veth_into

from bhype_core.db.session import session
from bhype_core.errors import Conflict, ValidationErrors
from bhype_core.network.host import SwitchHost
from bhype_core.network.models import linux_tap_name, validate_switch, vlan_bridge_name
from bhype_core.network.service import add_uplink, create_switch, destroy_switch, get_switch, remove_uplink
from bhype_core.network.taps import TAPS_FILE, plug_nics, unplug_nics
from bhype_core.spec import validate_spec
from bhype_core.testing.parts import require_program
from bhype_core.vm.models import VM

pytestmark = pytest.mark.slow


def test_switch_tasks_build_uplink_bridges_that_carry_traffic(netns, network_runtime) -> None:
    host_ns, a, b = netns("host"), netns("a"), netns("b")
    network_runtime.__dict__["runner"] = NetnsRunner(host_ns)
    veth_into(host_ns, "up0", a, "10.61.0.1/24")
    veth_into(host_ns, "up1", b, "10.61.0.2/24")

    create_switch(task_context(network_runtime, "switch.create"), name="lan", uplink="up0", mtu=1400)
    assert links(host_ns, "vm-lan") == {"up0"}
    assert not pings(a, "10.61.0.2")  # b is not on the switch yet

    add_uplink(task_context(network_runtime, "switch.add_uplink"), name="lan", uplink="up1")
    assert links(host_ns, "vm-lan") == {"up1"}  # the uplink was swapped, not added
    with session(network_runtime) as db:
        assert get_switch(db, "lan").uplink == "up1"

    # a second switch bridging a's cable joins the two namespaces only through its own bridge
    create_switch(task_context(network_runtime, "switch.create"), name="lan2", uplink="up0")
    assert not pings(a, "10.61.0.2")
    remove_uplink(task_context(network_runtime, "switch.remove_uplink"), name="lan2")
    in_ns(host_ns, "ip", "link", "set", "dev", "up0", "master", "vm-lan")  # by hand: both on vm-lan
    assert reaches(a, "10.61.0.2")

    destroy_switch(task_context(network_runtime, "switch.destroy"), name="lan")
    destroy_switch(task_context(network_runtime, "switch.destroy"), name="lan2")
    assert {"vm-lan", "vm-lan2"}.isdisjoint(links(host_ns))
    assert {"up0", "up1"} <= links(host_ns)  # the uplink NICs themselves stay


def test_failed_create_leaves_nothing_behind(netns, network_runtime) -> None:
    host_ns = netns("host")
    network_runtime.__dict__["runner"] = NetnsRunner(host_ns)
    with pytest.raises(ValidationErrors) as caught:
        create_switch(task_context(network_runtime, "switch.create"), name="lan", uplink="nosuch0")
    assert caught.value.errors[0].path == "uplink"
    assert "vm-lan" not in links(host_ns)
    with session(network_runtime) as db, pytest.raises(Exception, match="no switch"):
        get_switch(db, "lan")


def test_nic_vlans_get_separate_bridges_and_are_isolated(netns, network_runtime) -> None:
    host_ns = netns("host")
    ends = {tag: netns(tag) for tag in ("x10", "y10", "z20")}
    host = SwitchHost(NetnsRunner(host_ns), "linux")
    private = validate_switch({"name": "priv"})
    bridges = {}
    for index, (tag, ns) in enumerate(ends.items()):
        vlan = int(tag[1:])
        bridges[tag] = host.ensure_segment(private, vlan)
        veth_into(host_ns, f"p{index}", ns, f"10.62.0.{index + 1}/24")
        in_ns(host_ns, "ip", "link", "set", "dev", f"p{index}", "master", bridges[tag])
    assert bridges["x10"] == bridges["y10"] == vlan_bridge_name("priv", 10)
    assert bridges["z20"] == vlan_bridge_name("priv", 20)
    assert reaches(ends["x10"], "10.62.0.2")  # same VLAN
    assert not pings(ends["x10"], "10.62.0.3")  # other VLAN
    host.destroy_switch(private)
    assert not {bridges["x10"], bridges["z20"]} & links(host_ns)


def test_plug_and_unplug_nics_for_a_vm(netns, network_runtime, tmp_path: Path) -> None:
    host_ns = netns("host")
    network_runtime.__dict__["runner"] = NetnsRunner(host_ns)
    create_switch(task_context(network_runtime, "switch.create"), name="lan")
    spec = validate_spec({"name": "web1", "nics": [{"switch": "lan"}, {}, {"switch": "lan", "vlan": 30}]})
    taps = plug_nics(network_runtime, spec, tmp_path)
    first, third = linux_tap_name(str(spec.uuid), 0), linux_tap_name(str(spec.uuid), 2)
    assert taps == [first, None, third]  # the NIC without a switch uses QEMU user networking
    assert links(host_ns, "vm-lan") == {first}
    assert links(host_ns, vlan_bridge_name("lan", 30)) == {third}
    assert (tmp_path / TAPS_FILE).exists()

    # a start after a crash: the stale taps are replaced, not duplicated
    assert plug_nics(network_runtime, spec, tmp_path) == taps
    assert unplug_nics(network_runtime, spec, tmp_path) == [first, third]
    assert {first, third, vlan_bridge_name("lan", 30)}.isdisjoint(links(host_ns))
    assert "vm-lan" in links(host_ns)  # the switch itself stays

    with pytest.raises(ValidationErrors) as caught:
        plug_nics(network_runtime, validate_spec({"name": "x", "nics": [{"switch": "nope"}]}), tmp_path)
    assert caught.value.errors[0].path == "nics.0.switch"


def test_switch_in_use_cannot_be_destroyed(netns, network_runtime) -> None:
    network_runtime.__dict__["runner"] = NetnsRunner(netns("host"))
    create_switch(task_context(network_runtime, "switch.create"), name="lan")
    spec = validate_spec({"name": "db1", "owner": "alice", "nics": [{"switch": "lan"}]})
    with session(network_runtime) as db:
        db.add(VM(name="db1", uuid=str(spec.uuid), owner="alice", datastore="default", spec=spec.to_data()))
    with pytest.raises(Conflict, match="db1"):
        destroy_switch(task_context(network_runtime, "switch.destroy"), name="lan")
    with pytest.raises(Conflict, match="already exists"):
        create_switch(task_context(network_runtime, "switch.create"), name="lan")


def test_nat_switch_masquerades_its_subnet_out_of_the_host(netns, network_runtime) -> None:
    require_program("nft", "nftables")
    host_ns, vm, wan = netns("host"), netns("vm"), netns("wan")
    network_runtime.__dict__["runner"] = NetnsRunner(host_ns)
    veth_into(host_ns, "wan0", wan, "10.64.0.1/24")  # wan knows no route back to 10.63.0.0/24
    in_ns(host_ns, "ip", "addr", "add", "10.64.0.2/24", "dev", "wan0")
    create_switch(task_context(network_runtime, "switch.create"), name="natnet", address="10.63.0.1/24", nat=True)
    veth_into(host_ns, "g0", vm, "10.63.0.5/24")
    in_ns(host_ns, "ip", "link", "set", "dev", "g0", "master", "vm-natnet")
    in_ns(vm, "ip", "route", "add", "default", "via", "10.63.0.1")
    assert reaches(vm, "10.63.0.1")  # the host's leg on the switch
    assert reaches(vm, "10.64.0.1")  # only possible through the masquerade
    assert "bhype_vm_natnet" in in_ns(host_ns, "nft", "list", "tables").stdout
    in_ns(host_ns, "nft", "delete", "table", "ip", "bhype_vm_natnet")
    assert not pings(vm, "10.64.0.1")  # proof that the table did it
    host = SwitchHost(network_runtime.runner, "linux")
    config = validate_switch({"name": "natnet", "address": "10.63.0.1/24", "nat": True})
    host.apply_nat(config)
    host.apply_nat(config)  # re-applying replaces the table
    assert reaches(vm, "10.64.0.1")

    in_ns(host_ns, "ip", "link", "set", "dev", "g0", "nomaster")
    destroy_switch(task_context(network_runtime, "switch.destroy"), name="natnet")
    assert "bhype_vm_natnet" not in in_ns(host_ns, "nft", "list", "tables").stdout
