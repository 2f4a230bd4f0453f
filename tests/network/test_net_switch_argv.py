"""Switch host commands, golden: the exact ifconfig(8)/pfctl(8) (FreeBSD) and ip(8)/nft(8) (Linux)
argv sequences, run against a runner that answers with the recorded outputs in fixtures/.

FreeBSD cannot run here, so its runner is a stand-in at that boundary; the Linux sequences run
for real in test_net_switch_netns.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bhype_core.errors import CommandError, ValidationErrors
from bhype_core.host.process import Result
from bhype_core.host.runner import Runner
from bhype_core.network import freebsd, linux, nat
from bhype_core.network.host import SwitchHost
from bhype_core.network.models import (
    bridge_name,
    linux_tap_name,
    validate_switch,
    vlan_bridge_name,
    vlan_interface_name,
)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


class ScriptedRunner(Runner):
    """Records every argv (and stdin); ``answer(argv)`` gives ``(exit status, stdout)``."""

    def __init__(self, answer: Callable[[list[str]], tuple[int, str]]) -> None:
        super().__init__()
        self.answer = answer
        self.calls: list[list[str]] = []
        self.inputs: list[bytes | None] = []

    @property
    def target(self) -> str:
        return "scripted"

    def _execute(self, argv, *, timeout, input, env, cwd) -> Result:
        self.calls.append(argv)
        self.inputs.append(input)
        status, stdout = self.answer(argv)
        return Result(argv, status, stdout, "" if status == 0 else "failed", stdout.encode(), b"", 0.0)


def freebsd_host(interfaces: str, bridge_status: str = "", tap: str = "tap3\n") -> tuple[SwitchHost, ScriptedRunner]:
    def answer(argv: list[str]) -> tuple[int, str]:
        if argv == ["/sbin/ifconfig", "-l"]:
            return 0, interfaces
        if argv == ["/sbin/ifconfig", "tap", "create"]:
            return 0, tap
        if argv == ["/sbin/route", "-n", "get", "default"]:
            return 0, fixture("freebsd/route_get_default.txt")
        if len(argv) == 2 and argv[0] == "/sbin/ifconfig":
            return 0, bridge_status
        return 0, ""

    runner = ScriptedRunner(answer)
    return SwitchHost(runner, "freebsd"), runner


def test_names_fit_ifnamsiz_and_are_stable() -> None:
    assert bridge_name("lan") == "vm-lan"
    assert bridge_name("a-very-long-switch-name") == bridge_name("a-very-long-switch-name")
    assert len(bridge_name("a-very-long-switch-name")) == 15
    assert len(vlan_bridge_name("lan", 4094)) == 15 and vlan_bridge_name("lan", 5).startswith("vm5-")
    assert vlan_interface_name("igb0", 100) == "igb0.100"
    assert len(vlan_interface_name("enp0s31f6long", 100)) <= 15
    assert linux_tap_name("0f2c", 1) == linux_tap_name("0f2c", 1) != linux_tap_name("0f2c", 0)


def test_freebsd_create_switch_with_tagged_uplink_mtu_and_address() -> None:
    host, runner = freebsd_host("igb0 lo0\n", fixture("freebsd/ifconfig_bridge_empty.txt"))
    config = validate_switch({"name": "lan", "uplink": "igb0", "vlan": 100, "mtu": 9000, "address": "10.0.5.1/24"})
    created = host.ensure_switch(config)
    assert created == ["vm-lan", "igb0.100"]
    assert runner.calls == [
        ["/sbin/ifconfig", "-l"],
        ["/sbin/ifconfig", "bridge", "create", "name", "vm-lan"],
        ["/sbin/ifconfig", "vm-lan", "descr", "vm/lan", "group", "vm-switch", "mtu", "9000", "up"],
        ["/sbin/ifconfig", "igb0", "up"],
        ["/sbin/ifconfig", "vlan", "create", "vlandev", "igb0", "vlan", "100", "name", "igb0.100", "up"],
        ["/sbin/ifconfig", "vm-lan"],
        ["/sbin/ifconfig", "igb0.100", "up"],
        ["/sbin/ifconfig", "vm-lan", "addm", "igb0.100"],
        ["/sbin/ifconfig", "vm-lan", "inet", "10.0.5.1/24"],
    ]


def test_freebsd_existing_switch_is_left_alone_and_a_nic_gets_a_kernel_named_tap() -> None:
    host, runner = freebsd_host(fixture("freebsd/ifconfig_l.txt"), fixture("freebsd/ifconfig_bridge.txt"),
                                fixture("freebsd/ifconfig_tap_create.txt"))
    config = validate_switch({"name": "lan", "uplink": "igb0", "vlan": 100, "mtu": 9000})
    tap = host.plug(config, None, "vmnet/web1/0/lan", "bhffffffffn0")
    assert tap == "tap3"
    assert runner.calls == [
        ["/sbin/ifconfig", "-l"],
        ["/sbin/ifconfig", "vm-lan", "descr", "vm/lan", "group", "vm-switch", "mtu", "9000", "up"],
        ["/sbin/ifconfig", "vm-lan"],  # igb0.100 is a member already: no addm
        ["/sbin/ifconfig", "-l"],
        ["/sbin/ifconfig", "tap", "create"],
        ["/sbin/ifconfig", "tap3", "descr", "vmnet/web1/0/lan", "group", "vm-port", "mtu", "9000", "up"],
        ["/sbin/ifconfig", "vm-lan", "addm", "tap3"],
    ]


def test_a_tap_takes_the_bridges_live_mtu_when_the_switch_sets_none() -> None:
    # The bridge is at 9000 (a jumbo-frame uplink), the switch configures no MTU: a 1500 tap
    # could not join it (if_bridge(4)), so the tap copies the bridge's live MTU.
    host, runner = freebsd_host(fixture("freebsd/ifconfig_l.txt"), fixture("freebsd/ifconfig_bridge.txt"),
                                fixture("freebsd/ifconfig_tap_create.txt"))
    config = validate_switch({"name": "lan", "uplink": "igb0", "vlan": 100})
    host.plug(config, None, "vmnet/web1/0/lan", "bhffffffffn0")
    assert runner.calls[-3:] == [
        ["/sbin/ifconfig", "vm-lan"],  # the live MTU, from its first line
        ["/sbin/ifconfig", "tap3", "descr", "vmnet/web1/0/lan", "group", "vm-port", "mtu", "9000", "up"],
        ["/sbin/ifconfig", "vm-lan", "addm", "tap3"],
    ]


def test_freebsd_nic_with_its_own_vlan_gets_a_vlan_bridge_which_goes_with_its_last_tap() -> None:
    bridge = vlan_bridge_name("lan", 200)
    host, runner = freebsd_host(f"igb0 lo0 vm-lan igb0.100 {bridge} igb0.200\n", "")
    config = validate_switch({"name": "lan", "uplink": "igb0", "vlan": 100})
    host.unplug("tap7", config, 200)
    assert runner.calls == [
        ["/sbin/ifconfig", "-l"],
        [freebsd.IFCONFIG, bridge],  # no members left (empty status)
        [freebsd.IFCONFIG, "igb0.200", "destroy"],
        [freebsd.IFCONFIG, bridge, "destroy"],
    ]


def test_freebsd_nat_loads_a_pf_anchor_through_the_default_route_interface() -> None:
    host, runner = freebsd_host("em0 lo0\n")
    config = validate_switch({"name": "nat1", "address": "10.77.0.1/24", "nat": True})
    host.apply_nat(config)
    assert runner.calls == [
        ["/sbin/sysctl", "net.inet.ip.forwarding=1"],
        ["/sbin/route", "-n", "get", "default"],
        ["/sbin/pfctl", "-a", "bhype/nat1", "-f", "-"],
    ]
    assert runner.inputs[-1] == (
        b"nat on em0 inet from 10.77.0.0/24 to ! 10.77.0.0/24 -> (em0)\n"
        b"pass quick on vm-nat1 inet from 10.77.0.0/24 to any keep state\n"
    )
    host.remove_nat(config)
    assert runner.calls[-1] == ["/sbin/pfctl", "-a", "bhype/nat1", "-F", "all"]


def test_freebsd_destroy_removes_nat_vlan_bridges_and_vlan_interfaces_but_not_the_nic() -> None:
    extra = vlan_bridge_name("lan", 300)
    host, runner = freebsd_host(f"igb0 lo0 vm-lan igb0.100 igb0.300 {extra} igb0.999\n")
    host.destroy_switch(validate_switch({"name": "lan", "uplink": "igb0", "vlan": 100}))
    destroyed = [argv[1] for argv in runner.calls if argv[-1] == "destroy"]
    assert sorted(destroyed) == sorted([extra, "vm-lan", "igb0.100", "igb0.300"])
    assert "igb0" not in destroyed and "igb0.999" not in destroyed  # not bHype's


def test_freebsd_failed_step_undoes_what_was_created() -> None:
    def answer(argv: list[str]) -> tuple[int, str]:
        if argv[-1] == "inet" or "inet" in argv:
            return 1, ""
        return 0, "igb0 lo0\n" if argv[-1] == "-l" else ""

    runner = ScriptedRunner(answer)
    host = SwitchHost(runner, "freebsd")
    with pytest.raises(CommandError):
        host.ensure_switch(validate_switch({"name": "lan", "uplink": "igb0", "vlan": 7, "address": "10.1.1.1/24"}))
    assert runner.calls[-2:] == [["/sbin/ifconfig", "igb0.7", "destroy"], ["/sbin/ifconfig", "vm-lan", "destroy"]]


def test_missing_uplink_is_a_validation_error_naming_the_field() -> None:
    host, _ = freebsd_host("lo0\n")
    with pytest.raises(ValidationErrors) as caught:
        host.ensure_switch(validate_switch({"name": "lan", "uplink": "igb9"}))
    assert caught.value.errors[0].path == "uplink"


def test_linux_sequences() -> None:
    listing = fixture("linux/ip_link.json")

    def answer(argv: list[str]) -> tuple[int, str]:
        if argv == ["ip", "-j", "link", "show"]:
            return 0, listing
        if argv[:4] == ["ip", "-j", "-d", "link"]:
            return 0, fixture("linux/ip_link_master.json")
        return 0, ""

    runner = ScriptedRunner(answer)
    host = SwitchHost(runner, "linux")
    config = validate_switch({"name": "lan", "uplink": "eth1", "mtu": 1400})
    assert host.ensure_switch(config) == []  # the captured host already has vm-lan with eth1
    tap = host.plug(config, None, "vmnet/web1/1/lan", "bh0011aabbn1")
    assert tap == "bh0011aabbn1"
    assert runner.calls == [
        ["ip", "-j", "link", "show"],
        ["ip", "link", "set", "dev", "vm-lan", "alias", "vm/lan", "mtu", "1400", "up"],
        ["ip", "-j", "-d", "link", "show", "master", "vm-lan"],
        ["ip", "-j", "link", "show"],
        ["ip", "link", "set", "dev", "vm-lan", "alias", "vm/lan", "mtu", "1400", "up"],
        ["ip", "-j", "-d", "link", "show", "master", "vm-lan"],
        ["ip", "-j", "link", "show"],
        ["ip", "tuntap", "add", "dev", "bh0011aabbn1", "mode", "tap"],
        ["ip", "link", "set", "dev", "bh0011aabbn1", "alias", "vmnet/web1/1/lan", "mtu", "1400",
         "master", "vm-lan", "up"],
    ]


def test_linux_stale_tap_of_a_crashed_run_is_replaced() -> None:
    runner = ScriptedRunner(lambda argv: (0, fixture("linux/ip_link.json") if argv[1:3] == ["-j", "link"] else "[]"))
    host = SwitchHost(runner, "linux")
    host.plug(None, None, "vmnet/web1/0/none", "bh0011aabbn0")
    assert ["ip", "link", "del", "dev", "bh0011aabbn0"] in runner.calls
    assert runner.calls[-1] == ["ip", "link", "set", "dev", "bh0011aabbn0", "alias", "vmnet/web1/0/none", "up"]


def test_linux_nat_is_one_nft_table_replaced_atomically() -> None:
    runner = ScriptedRunner(lambda argv: (0, ""))
    host = SwitchHost(runner, "linux")
    config = validate_switch({"name": "nat1", "address": "10.77.0.1/24", "nat": True})
    host.apply_nat(config)
    assert runner.calls == [["sysctl", "-w", "net.ipv4.ip_forward=1"], ["nft", "-f", "-"]]
    script = runner.inputs[-1].decode()
    assert script.startswith("add table ip bhype_vm_nat1\ndelete table ip bhype_vm_nat1\n")
    assert "ip saddr 10.77.0.0/24 ip daddr != 10.77.0.0/24 masquerade" in script
    host.remove_nat(config)
    assert runner.calls[-1] == ["nft", "delete", "table", "ip", "bhype_vm_nat1"]


def test_parsers_read_the_documented_formats() -> None:
    assert freebsd.parse_members(fixture("freebsd/ifconfig_bridge.txt")) == ["tap3", "igb0.100"]
    assert freebsd.parse_members(fixture("freebsd/ifconfig_bridge_empty.txt")) == []
    assert freebsd.parse_description(fixture("freebsd/ifconfig_bridge.txt")) == "vm/lan"
    assert freebsd.parse_interfaces(fixture("freebsd/ifconfig_l.txt")) == {"igb0", "lo0", "vm-lan", "igb0.100"}
    assert freebsd.created_tap("tap12\n", "x") == "tap12"
    with pytest.raises(ValueError):
        freebsd.created_tap("ifconfig: SIOCIFCREATE2: File exists\n", "x")
    assert nat.parse_route_interface(fixture("freebsd/route_get_default.txt")) == "em0"
    assert linux.parse_members(fixture("linux/ip_link_master.json")) == ["eth1", "bh0011aabbn0"]
    assert "vm-lan" in linux.parse_interfaces(fixture("linux/ip_link.json"))
    assert freebsd.parse_mtu(fixture("freebsd/ifconfig_bridge.txt")) == 9000
    assert freebsd.parse_mtu("") is None
    assert linux.parse_mtu(fixture("linux/ip_link_dev.json")) == 9000
    assert linux.parse_mtu("[]") is None


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"name": "has.dot"}, "name"),
        ({"name": "lan", "uplink": "eth 0"}, "uplink"),
        ({"name": "lan", "uplink": "vm-other"}, "uplink"),
        ({"name": "lan", "vlan": 4095}, "vlan"),
        ({"name": "lan", "mtu": 100}, "mtu"),
        ({"name": "lan", "address": "10.0.0.0/24"}, "address"),
        ({"name": "lan", "address": "10.0.0.1"}, "address"),
        ({"name": "lan", "nat": True}, ""),
        ({"name": "lan", "nat": True, "address": "10.0.0.1/24", "uplink": "em0"}, ""),
        ({"name": "lan", "colour": "red"}, "colour"),
    ],
)
def test_bad_switch_input_names_the_field(data: dict, path: str) -> None:
    with pytest.raises(ValidationErrors) as caught:
        validate_switch(data)
    assert caught.value.errors[0].path == path
