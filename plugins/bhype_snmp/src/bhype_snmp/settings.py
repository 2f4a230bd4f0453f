"""The ``[snmp]`` settings section: trap targets, v2c community or v3 user security."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, SecretStr, ValidationInfo, field_validator

from bhype_core.plugin_api import Section

DEFAULT_TRAP_PORT = 162  # snmptrapd(8) listens on UDP 162 unless told otherwise
# RFC 1123 host names (dot-separated labels of letters, digits and inner hyphens); covers IPv4 too.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")
# RFC 3414 section 11.2 (and net-snmp's snmpd.conf(5) createUser): shorter pass phrases are refused.
MIN_PASSPHRASE = 8


def split_target(text: str) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6addr]`` or ``[v6addr]:port`` → ``(host, port)``.

    :raises ValueError: naming what is wrong with ``text``.
    """
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket:
            raise ValueError(f"{text!r}: missing ']' after the IPv6 address")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':port' after ']'")
        port_text = rest[1:] if rest else ""
    else:
        if text.count(":") > 1:
            raise ValueError(f"{text!r}: write IPv6 addresses in brackets, e.g. [::1]:162")
        host, _, port_text = text.partition(":")
        if not _HOSTNAME.fullmatch(host):
            raise ValueError(f"{text!r}: {host!r} is not a valid host name or IPv4 address")
    if not port_text:
        return host, DEFAULT_TRAP_PORT
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be a number from 1 to 65535")
    return host, int(port_text)


def _valid_target(text: str) -> str:
    split_target(text)
    return text.strip()


TrapTarget = Annotated[str, AfterValidator(_valid_target)]
AuthProtocol = Literal["SHA", "SHA224", "SHA256", "SHA384", "SHA512", "MD5"]
PrivProtocol = Literal["AES", "AES192", "AES256", "DES", "none"]


class SnmpSettings(Section):
    """``[snmp]``: where traps go and how they are authenticated. Field order matters: the v3
    checks read ``version`` (validated first)."""

    version: Literal["2c", "3"] = Field("2c", description="SNMP version of the traps")
    trap_targets: list[TrapTarget] = Field(default_factory=list, description="host[:port] receivers")
    community: SecretStr = Field(SecretStr("public"), description="v2c community (a shared secret)")
    v3_user: str = Field("", description="v3 security name (USM user)")
    v3_auth_protocol: AuthProtocol = "SHA256"
    v3_auth_password: SecretStr = SecretStr("")
    v3_priv_protocol: PrivProtocol = "AES"
    v3_priv_password: SecretStr = SecretStr("")

    @field_validator("community")
    @classmethod
    def _community_for_v2c(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if info.data.get("version") == "2c" and not value.get_secret_value():
            raise ValueError("must not be empty for SNMP v2c")
        return value

    @field_validator("v3_user")
    @classmethod
    def _user_for_v3(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("version") == "3" and not value:
            raise ValueError("is required for SNMP v3")
        return value

    @field_validator("v3_auth_password")
    @classmethod
    def _auth_for_v3(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        if info.data.get("version") == "3" and len(value.get_secret_value()) < MIN_PASSPHRASE:
            raise ValueError(f"must be at least {MIN_PASSPHRASE} characters for SNMP v3 (RFC 3414)")
        return value

    @field_validator("v3_priv_password")
    @classmethod
    def _priv_for_v3(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        needs_priv = info.data.get("version") == "3" and info.data.get("v3_priv_protocol") != "none"
        if needs_priv and len(value.get_secret_value()) < MIN_PASSPHRASE:
            raise ValueError(
                f"must be at least {MIN_PASSPHRASE} characters for SNMP v3 privacy "
                '(or set v3_priv_protocol = "none")'
            )
        return value
