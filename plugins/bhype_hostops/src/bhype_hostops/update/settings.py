"""The ``[hostops_update]`` settings section: the host update workflow's platform and limits."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bhype_core.plugin_api import NAME_RE, Section

SECTION = "hostops_update"


class UpdateSettings(Section):
    """``[hostops_update]``: how the host update workflow installs, reboots and waits.

    ``platform`` picks where the installer, ``bectl`` and the reboot come from: ``freebsd``
    runs the real tools (freebsd-update(8), pkg-upgrade(8), bectl(8), shutdown(8)); ``standin``
    runs :mod:`bhype_hostops.update.standin`, which behaves like those tools (their documented
    output) on a development host, keeping its state under ``standin_dir``, and whose reboot
    stops bHype's worker like a power cycle; ``auto`` is ``freebsd`` on FreeBSD and *no
    installer* elsewhere (the plan says so and the run refuses).
    """

    platform: Literal["auto", "freebsd", "standin"] = Field(
        "auto", description="installer/reboot platform: freebsd, standin (development host) or auto")
    standin_dir: str = Field("", description="state directory of the stand-in tools (platform = standin)")
    base: Literal["auto", "freebsd-update", "pkgbase", "none"] = Field(
        "auto", description="how the base system is updated (auto: pkgbase when `pkg which /usr/bin/uname` "
                            "succeeds, else freebsd-update)")
    services: list[str] = Field(
        default_factory=list, description="non-essential services stopped during the update and started after "
                                          "(through the service.stop/start tasks)")
    vm_stop_timeout: int | None = Field(
        None, ge=1, le=3600, description="seconds for each VM's ACPI shutdown before it is forced off "
                                         "(default: the VM's autostart.stop_timeout, else vm.stop_timeout)")
    vm_suspend: bool = Field(
        True, description="suspend each running VM to disk instead of shutting it down where the VM driver "
                          "can (detected: QEMU, bhyve built with BHYVE_SNAPSHOT); resumed after the update. "
                          "A failed suspend falls back to the ACPI shutdown")
    vm_start_wait: float = Field(600.0, gt=0, le=7200,
                                 description="seconds a VM's start or stop may wait for a lock another task holds")
    install_timeout: float = Field(7200.0, gt=0, le=86400, description="seconds allowed per install command")
    reboot_wait: float = Field(900.0, gt=0, le=7200,
                               description="seconds to wait for the host to go down after asking for a reboot")
    window_enabled: bool = Field(False, description="start a host update at the window (off by default)")
    window_days: list[str] = Field(default_factory=lambda: ["sun"],
                                   description="days of the update window: mon … sun")
    window_hour: int = Field(3, ge=0, le=23, description="hour (host local time) the window begins")
    window_owner: str = Field("", max_length=255,
                              description="the admin account a window's run belongs to (required when enabled)")
    be_prefix: str = Field("bhype-update", min_length=1, max_length=40,
                           description="prefix of the boot environment created before installing")

    @field_validator("services")
    @classmethod
    def _service_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not NAME_RE.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid service name (letters, digits, '.', '_', '-')")
        return value

    @field_validator("window_days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        unknown = [day for day in value if day not in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")]
        if unknown:
            raise ValueError(f"unknown day(s) {', '.join(unknown)}: use mon, tue, wed, thu, fri, sat, sun")
        return value

    @model_validator(mode="after")
    def _owner(self) -> UpdateSettings:
        if self.window_enabled and not self.window_owner:
            raise ValueError("window_enabled needs window_owner: the admin account the scheduled run belongs to")
        return self

    @field_validator("be_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError("must be letters, digits, '.', '_' and '-' (a ZFS dataset name part)")
        return value


def update_settings(runtime: object) -> UpdateSettings:
    """The validated ``[hostops_update]`` section of ``runtime``'s settings."""
    return runtime.settings.section(SECTION)  # type: ignore[attr-defined]
