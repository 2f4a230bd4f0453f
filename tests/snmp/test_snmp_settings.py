"""The ``[snmp]`` section: trap targets, v2c and v3 security, errors that name the key and never a secret."""

from __future__ import annotations

import pytest

from bhype_core.errors import ConfigError
from bhype_snmp.settings import split_target

V3 = {
    "version": "3",
    "v3_user": "bhype",
    "v3_auth_password": "auth-secret-1",
    "v3_priv_password": "priv-secret-2",
}


def test_defaults_are_v2c_without_targets(snmp_runtime):
    settings = snmp_runtime().settings.section("snmp")
    assert settings.version == "2c" and settings.trap_targets == []
    assert settings.community.get_secret_value() == "public"


def test_v3_settings_are_read(snmp_runtime):
    settings = snmp_runtime(**V3, v3_auth_protocol="SHA512").settings.section("snmp")
    assert settings.v3_user == "bhype" and settings.v3_auth_protocol == "SHA512"
    assert settings.v3_priv_password.get_secret_value() == "priv-secret-2"


def test_v3_without_privacy_needs_no_priv_password(snmp_runtime):
    values = {**V3, "v3_priv_protocol": "none", "v3_priv_password": ""}
    assert snmp_runtime(**values).settings.section("snmp").v3_priv_protocol == "none"


@pytest.mark.parametrize(
    ("values", "key", "why"),
    [
        ({"trap_targets": ["nms.example.net:70000"]}, "snmp.trap_targets.0", "port must be a number from 1"),
        ({"trap_targets": ["ok:162", "::1"]}, "snmp.trap_targets.1", "write IPv6 addresses in brackets"),
        ({"trap_targets": ["[fe80::zz]:162"]}, "snmp.trap_targets.0", "is not an IPv6 address"),
        ({"trap_targets": ["bad_host!:162"]}, "snmp.trap_targets.0", "not a valid host name"),
        ({"trap_targets": "nms:162"}, "snmp.trap_targets", "valid list"),
        ({"version": "1"}, "snmp.version", "'2c' or '3'"),
        ({"community": ""}, "snmp.community", "must not be empty for SNMP v2c"),
        ({**V3, "v3_user": ""}, "snmp.v3_user", "required for SNMP v3"),
        ({**V3, "v3_auth_protocol": "SHA1"}, "snmp.v3_auth_protocol", "Input should be"),
        ({"traps": []}, "snmp.traps", "Extra inputs are not permitted"),
    ],
)
def test_invalid_values_name_the_key(snmp_runtime, values, key, why):
    with pytest.raises(ConfigError) as caught:
        snmp_runtime(**values)
    assert f"{key}:" in caught.value.message and why in caught.value.message


@pytest.mark.parametrize("field", ["v3_auth_password", "v3_priv_password"])
def test_short_pass_phrases_are_refused_without_echoing_them(snmp_runtime, field):
    with pytest.raises(ConfigError) as caught:
        snmp_runtime(**{**V3, field: "hunter2"})
    assert f"snmp.{field}: " in caught.value.message and "at least 8 characters" in caught.value.message
    assert "hunter2" not in caught.value.message


def test_split_target_forms():
    assert split_target("nms.example.net") == ("nms.example.net", 162)
    assert split_target("192.0.2.7:10162") == ("192.0.2.7", 10162)
    assert split_target("[2001:db8::7]") == ("2001:db8::7", 162)
    assert split_target("[::1]:1162") == ("::1", 1162)
