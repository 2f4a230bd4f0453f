"""The ``[snmp]`` section: defaults (agent off), bounds named by key, target and host parsing."""

from __future__ import annotations

import pytest

from bhype_core.errors import ConfigError
from bhype_snmp.settings import check_host, split_target


def test_defaults_send_nothing_anywhere_and_keep_the_agent_off(snmp_runtime):
    settings = snmp_runtime().settings.section("snmp")
    assert settings.agent_enabled is False and settings.agent_community.get_secret_value() == ""
    assert (settings.rate_limit, settings.rate_window, settings.queue_size) == (10, 60, 10000)
    assert settings.web_url == "" and settings.agent_address == "127.0.0.1:1161"


@pytest.mark.parametrize(
    ("values", "key", "why"),
    [
        ({"queue_size": 1}, "snmp.queue_size", "greater than or equal to 10"),
        ({"rate_limit": -1}, "snmp.rate_limit", "greater than or equal to 0"),
        ({"rate_window": 0}, "snmp.rate_window", "greater than or equal to 1"),
        ({"agent_enabled": "perhaps"}, "snmp.agent_enabled", "valid boolean"),
        ({"trap_targets": []}, "snmp.trap_targets", "Extra inputs are not permitted"),
    ],
)
def test_invalid_values_name_the_key(snmp_runtime, values, key, why):
    with pytest.raises(ConfigError) as caught:
        snmp_runtime(**values)
    assert f"{key}:" in caught.value.message and why in caught.value.message


def test_the_agent_community_is_never_echoed_in_errors(snmp_runtime):
    with pytest.raises(ConfigError) as caught:
        snmp_runtime(agent_community="agent-S3cret", agent_refresh=0)
    assert "snmp.agent_refresh" in caught.value.message and "agent-S3cret" not in caught.value.message


def test_split_target_forms():
    assert split_target("nms.example.net") == ("nms.example.net", 162)
    assert split_target("192.0.2.7:10162") == ("192.0.2.7", 10162)
    assert split_target("[2001:db8::7]") == ("2001:db8::7", 162)
    assert split_target("[::1]:1162") == ("::1", 1162)
    for bad, why in (("nms:70000", "port must be"), ("::1", "brackets"), ("[fe80::zz]", "not an IPv6"),
                     ("bad_host!", "not a valid host name")):
        with pytest.raises(ValueError, match=why):
            split_target(bad)


def test_check_host_forms():
    assert check_host(" nms.example.net ") == "nms.example.net"
    assert check_host("2001:db8::7") == "2001:db8::7"
    for bad in ("bad_host!", "fe80::zz", ""):
        with pytest.raises(ValueError):
            check_host(bad)
