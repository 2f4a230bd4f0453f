"""Role mapping, shadow(5) parsing and the [auth] settings model (pure functions, no users)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bhype_core.auth.identity import (
    Identity,
    NotInBhypeGroup,
    parse_shadow_line,
    role_for,
    shadow_refusal,
)
from bhype_core.auth.settings import AuthSettings, default_admin_groups

# Lines in the shadow(5) format, as written by useradd/chpasswd/usermod on Debian 12.
SHADOW_ACTIVE = "alice:$y$j9T$Q0q1cFqvFnGJ$8bU1:19700:0:99999:7:::\n"
SHADOW_LOCKED = "bob:!$y$j9T$Q0q1cFqvFnGJ$8bU1:19700:0:99999:7:::\n"
SHADOW_NO_PASSWORD = "svc:*:19700:0:99999:7:::\n"
SHADOW_NEW_NO_PASSWORD = "carol:!:19700:0:99999:7:::\n"
SHADOW_EXPIRES = "dave:$y$j9T$Q0q1cFqvFnGJ$8bU1:19700:0:99999:7::20000:\n"


def test_default_roles_per_platform():
    assert default_admin_groups("linux") == ["bhype-admin"]
    assert default_admin_groups("freebsd14") == ["bhype-admin", "wheel"]
    linux = AuthSettings(admin_groups=default_admin_groups("linux"))
    freebsd = AuthSettings(admin_groups=default_admin_groups("freebsd14"))
    assert role_for(["staff", "bhype-admin"], linux) == "admin"
    assert role_for(["bhype"], linux) == "operator"
    assert role_for(["bhype", "bhype-admin"], linux) == "admin"
    assert role_for(["wheel"], freebsd) == "admin"
    with pytest.raises(NotInBhypeGroup):
        role_for(["wheel"], linux)  # wheel means nothing special on Linux


def test_no_group_message_names_the_groups_to_join():
    settings = AuthSettings(admin_groups=["vmadmins"], operator_groups=["vmusers", "lab"])
    with pytest.raises(NotInBhypeGroup) as caught:
        role_for(["users", "audio"], settings)
    assert caught.value.http_status == 403
    assert "vmadmins, vmusers, lab" in caught.value.message


def test_parse_shadow_line_and_refusals():
    today = 19800
    assert shadow_refusal(parse_shadow_line(SHADOW_ACTIVE), today) == ""
    assert shadow_refusal(parse_shadow_line(SHADOW_LOCKED), today) == "locked"
    assert shadow_refusal(parse_shadow_line(SHADOW_NEW_NO_PASSWORD), today) == "locked"
    assert shadow_refusal(parse_shadow_line(SHADOW_NO_PASSWORD), today) == "no password login"
    expiring = parse_shadow_line(SHADOW_EXPIRES)
    assert expiring.expire_day == 20000
    assert shadow_refusal(expiring, 19999) == ""
    assert shadow_refusal(expiring, 20000) == "expired"  # shadow-utils isexpired: now >= expire


@pytest.mark.parametrize("line", ["alice:x:1", "", ":x:1:2:3:4:5:6:7", "a:h:1:0:9:7::soon:\n"])
def test_parse_shadow_line_rejects_malformed(line):
    with pytest.raises(ValueError):
        parse_shadow_line(line)


def test_identity_round_trip_and_validation():
    identity = Identity("alice", 1001, ("alice", "bhype"), "operator")
    assert Identity.from_dict(identity.to_dict()) == identity
    with pytest.raises(ValueError, match="identity.role"):
        Identity.from_dict({**identity.to_dict(), "role": "root"})
    with pytest.raises(ValueError, match="identity.uid"):
        Identity.from_dict({**identity.to_dict(), "uid": -1})
    with pytest.raises(ValueError, match="missing field"):
        Identity.from_dict({"username": "alice"})


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"pam_service": "../etc/passwd"}, "pam_service"),
        ({"pam_service": ""}, "pam_service"),
        ({"admin_groups": ["bad:name"]}, "admin_groups"),
        ({"session_idle_timeout": 0}, "session_idle_timeout"),
        ({"throttle": {"account_failures": 0}}, "throttle"),
        ({"unknown_key": 1}, "unknown_key"),
    ],
)
def test_auth_settings_reject_bad_values_naming_the_field(values, field):
    with pytest.raises(ValidationError) as caught:
        AuthSettings.model_validate(values)
    assert field in str(caught.value)


def test_auth_settings_absolute_timeout_not_shorter_than_idle():
    with pytest.raises(ValidationError, match="session_absolute_timeout"):
        AuthSettings(session_idle_timeout=3600, session_absolute_timeout=600)
    assert AuthSettings().pam_service == "bhype"
