"""The ``[zfs]`` settings section."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from bhype_core.plugin_api import Section

# zpool-create(8) / zpool(8) "pool name": begins with a letter; letters, digits, "_", "-", ":",
# "." (and space, which bHype refuses: it only causes quoting trouble in logs and paths).
_POOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")
# Reserved by zpool(8): the vdev type words, and names beginning with c<digit> (device names).
_RESERVED_PREFIXES = ("mirror", "raidz", "draid", "spare")
_RESERVED_NAMES = ("log",)
_ROOT_PART = re.compile(r"[A-Za-z0-9_.:][A-Za-z0-9_.:-]*")


def check_pool_name(name: str) -> str:
    """Return ``name`` if it is a valid pool name (or empty: not configured), else raise ValueError."""
    if not name:
        return name
    if len(name) > 255 or not _POOL_NAME.fullmatch(name):
        raise ValueError(
            "must begin with a letter and contain only letters, digits, '_', '-', ':' and '.' "
            "(zpool-create(8))"
        )
    if name in _RESERVED_NAMES or name.startswith(_RESERVED_PREFIXES) or re.match(r"c[0-9]", name):
        raise ValueError(f"{name!r} is reserved by zpool(8)")
    return name


class ZfsSettings(Section):
    """``[zfs]``: where bHype keeps VM datasets and how it reaches the ZFS tools."""

    pool: str = Field("", description="pool holding VM datasets; empty = ZFS storage not configured")
    root: str = Field("bhype", description="bHype's dataset under the pool: <pool>/<root>/{vms,isos,templates}")
    zfs_command: str = Field("zfs", min_length=1, description="zfs executable (name or absolute path)")
    zpool_command: str = Field("zpool", min_length=1, description="zpool executable (name or absolute path)")
    platform: Literal["auto", "freebsd", "linux"] = Field(
        "auto", description="platform of the host the runner reaches (auto: core.platform / this machine)"
    )
    command_timeout: float = Field(10.0, gt=0, le=300, description="seconds allowed per status command")
    task_timeout: float = Field(
        600.0, gt=0, le=86400, description="seconds allowed per command inside a task (zpool create, send)"
    )
    copy_timeout: float = Field(
        86400.0, gt=0, le=7 * 86400, description="seconds allowed per full copy (zfs send | zfs receive) of a disk"
    )
    capacity_warning: int = Field(80, ge=1, le=100, description="pool capacity (%) that raises a warning event")
    capacity_critical: int = Field(95, ge=1, le=100, description="pool capacity (%) that raises a critical event")

    @field_validator("pool")
    @classmethod
    def _valid_pool(cls, value: str) -> str:
        return check_pool_name(value)

    @field_validator("root")
    @classmethod
    def _valid_root(cls, value: str) -> str:
        parts = value.split("/")
        if not value or any(part in (".", "..") or not _ROOT_PART.fullmatch(part) for part in parts):
            raise ValueError("must be a dataset path below the pool such as 'bhype' or 'vm/bhype'")
        return value

    @property
    def root_dataset(self) -> str:
        """``<pool>/<root>`` (empty when no pool is configured)."""
        return f"{self.pool}/{self.root}" if self.pool else ""
