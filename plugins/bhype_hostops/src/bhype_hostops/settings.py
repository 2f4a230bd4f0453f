"""The ``[hostops]`` settings section: which host services bHype may manage, and the checks."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from bhype_core.plugin_api import Section

# rc.d script and Debian init.d script names: letters, digits, "_", "-", "."; no path parts.
SERVICE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")


def check_service_name(name: str) -> str:
    """Return ``name`` if it can be a service (rc.d/init.d script) name, else raise ValueError."""
    if not SERVICE_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a service name (letters, digits, '_', '-', '.'; at most 63)")
    return name


class HostopsSettings(Section):
    """``[hostops]``: host services bHype may start and stop, and the vulnerability/patch checks."""

    services: list[str] = Field(
        default_factory=lambda: ["sshd", "rsyncd"],
        description="allow-list of services admins may manage (FreeBSD rc.d names, e.g. ntpd, snmpd, nginx)",
    )
    service_platform: Literal["auto", "freebsd", "sysv"] = Field(
        "auto", description="service manager: freebsd = service(8)+sysrc(8); sysv = Debian service(8)+update-rc.d(8)"
    )
    script_names: dict[str, str] = Field(
        default_factory=lambda: {"sshd": "ssh", "rsyncd": "rsync"},
        description="sysv only: the init.d script behind an allow-listed name (Debian calls sshd 'ssh')",
    )
    config_checks: dict[str, list[str]] = Field(
        default_factory=lambda: {"sshd": ["/usr/sbin/sshd", "-t"]},
        description="argv run before reload/restart of a service; a non-zero exit stops the action",
    )
    front_end_services: list[str] = Field(
        default_factory=list,
        description="services the API's own front end runs on (e.g. nginx): stopping them needs a confirmation",
    )
    command_timeout: float = Field(60.0, gt=0, le=3600, description="seconds allowed per service command")
    rsyncd_config: str = Field(
        "/usr/local/etc/rsync/rsyncd.conf", min_length=1, description="rsyncd.conf bHype writes (rsyncd(8) port)"
    )
    rsyncd_secrets: str = Field(
        "/usr/local/etc/rsync/rsyncd.secrets", min_length=1, description="the rsync daemon's secrets file (0600)"
    )
    rsyncd_pid_file: str = Field("/var/run/rsyncd.pid", min_length=1, description="kept: the rc script relies on it")
    rsyncd_port: int = Field(873, ge=1, le=65535, description="TCP port of the rsync daemon")
    rsyncd_address: str = Field("", description="address the rsync daemon binds (empty: all)")
    rsyncd_service: str = Field("rsyncd", description="the allow-listed service reloaded after a config change")
    pkg_command: str = Field("pkg", min_length=1, description="pkg(8) executable")
    freebsd_update_command: str = Field("freebsd-update", min_length=1, description="freebsd-update(8) executable")
    freebsd_version_command: str = Field("freebsd-version", min_length=1, description="freebsd-version(1) executable")
    check_platform: Literal["auto", "freebsd", "debian", "none"] = Field(
        "auto", description="auto: the FreeBSD checks on FreeBSD only; debian: apt-get -s upgrade (opt-in); none: never"
    )
    check_timeout: float = Field(900.0, gt=0, le=86400, description="seconds allowed per check command")
    dismiss_days: int = Field(7, ge=1, le=365, description="a dismissed finding comes back after this many days")

    @field_validator("services", "front_end_services")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            check_service_name(name)
        return value

    @field_validator("script_names")
    @classmethod
    def _scripts(cls, value: dict[str, str]) -> dict[str, str]:
        for name, script in value.items():
            check_service_name(name)
            check_service_name(script)
        return value

    @field_validator("config_checks")
    @classmethod
    def _checks(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, argv in value.items():
            check_service_name(name)
            if not argv or not all(isinstance(part, str) and part for part in argv):
                raise ValueError(f"config check for {name!r} must be a non-empty argv list")
        return value
