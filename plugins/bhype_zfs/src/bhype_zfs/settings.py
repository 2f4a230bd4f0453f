"""The ``[zfs]`` settings section."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from bhype_core.config import Section

# zpool-create(8) / zpool(8) "pool name": begins with a letter; letters, digits, "_", "-", ":",
# "." (and space, which bHype refuses: it only causes quoting trouble in logs and paths).
_POOL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*")
# Reserved by zpool(8): the vdev type words, and names beginning with c<digit> (device names).
_RESERVED_PREFIXES = ("mirror", "raidz", "draid", "spare")
_RESERVED_NAMES = ("log",)


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
    zfs_command: str = Field("zfs", min_length=1, description="zfs executable (name or absolute path)")
    zpool_command: str = Field("zpool", min_length=1, description="zpool executable (name or absolute path)")
    command_timeout: float = Field(10.0, gt=0, le=300, description="seconds allowed per status command")

    @field_validator("pool")
    @classmethod
    def _valid_pool(cls, value: str) -> str:
        return check_pool_name(value)
