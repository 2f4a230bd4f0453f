"""The ``[vm]`` settings section: datastores, admin templates, stop timeout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bhype_core.config import Section
from bhype_core.spec_parts import NAME_RE

SECTION = "vm"


class DatastoreSettings(BaseModel):
    """``[vm.datastores.<name>]``: which storage backend holds the disks, and its options.

    ``path`` is the directory backend's root (default ``<core.data_dir>/datastore``); other
    keys are passed to the backend's factory unchanged (a ZFS datastore names its dataset).
    """

    model_config = ConfigDict(extra="allow")

    backend: str = Field(default="directory", description="storage backend name (directory, zfs, ...)")
    path: str = Field(default="", description="directory backend: absolute root; empty = <data_dir>/datastore")

    def options(self, name: str) -> dict[str, Any]:
        """What the backend factory receives: every key, plus the datastore's ``name``."""
        return {**self.model_dump(), "name": name}


def _default_datastores() -> dict[str, DatastoreSettings]:
    return {"default": DatastoreSettings()}


class VmSettings(Section):
    """``[vm]``: where VM disks live and how long a graceful stop may take."""

    datastores: dict[str, DatastoreSettings] = Field(default_factory=_default_datastores)
    default_datastore: str = Field(default="default", description="datastore for new VMs that name none")
    templates_dir: Path | None = Field(
        default=None, description="admin templates (*.toml) added to the shipped ones; empty = <data_dir>/templates"
    )
    stop_timeout: float = Field(
        default=120.0, gt=0, le=3600, description="seconds a graceful stop waits before forcing"
    )
    orphan_grace: float = Field(
        default=600.0, ge=0, description="seconds a VM directory with no record must stay unchanged "
                                         "before the orphan sweep removes it"
    )
    sweep_interfaces: bool = Field(
        default=False, description="also remove bHype-named taps and bridges no record owns (only on a "
                                   "host that runs one bHype instance)"
    )

    @field_validator("datastores")
    @classmethod
    def _names(cls, value: dict[str, DatastoreSettings]) -> dict[str, DatastoreSettings]:
        for name in value:
            if not NAME_RE.match(name):
                raise ValueError(f"datastore name {name!r}: letters, digits, '-', '_', '.'")
        if not value:
            raise ValueError("at least one datastore is needed")
        return value

    @model_validator(mode="after")
    def _default_exists(self) -> VmSettings:
        if self.default_datastore not in self.datastores:
            raise ValueError(
                f"default_datastore {self.default_datastore!r} is not one of the datastores "
                f"({', '.join(sorted(self.datastores))})"
            )
        return self


def vm_settings(runtime: Any) -> VmSettings:
    """The runtime's ``[vm]`` section (defaults when the built-in that declares it is absent)."""
    try:
        return runtime.settings.section(SECTION)
    except Exception:  # ConfigError: core_vms not registered (a test with a bare manager)
        return VmSettings()


def templates_dir(runtime: Any) -> Path:
    """Where admin templates live: ``vm.templates_dir`` or ``<core.data_dir>/templates``."""
    return vm_settings(runtime).templates_dir or runtime.settings.core.data_dir / "templates"
