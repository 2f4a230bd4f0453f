"""Which host platform bHype runs on (FreeBSD with bhyve, or Linux with QEMU), decided at call time."""

from __future__ import annotations

import os
import sys

from bhype_core.errors import ConfigError

PLATFORMS = ("freebsd", "linux")


def detect_platform(override: str | None = None, *, system: str | None = None) -> str:
    """Return ``"freebsd"`` or ``"linux"``.

    :param override: ``[core] platform``: ``"freebsd"``/``"linux"`` win outright;
        ``None``/``"auto"`` means detect.
    :param system: the kernel name to judge (``sys.platform`` or ``uname -s`` style, e.g.
        ``"FreeBSD"``, ``"linux"``); defaults to this machine's. Lets tests and tools ask
        "what would bHype pick there?" without a FreeBSD host.
    :raises ConfigError: an unknown override (naming ``core.platform``) or an unsupported system.
    """
    if override not in (None, "auto"):
        if override in PLATFORMS:
            return override
        raise ConfigError(f"core.platform: {override!r} is not one of auto, {', '.join(PLATFORMS)}")
    names = [system] if system is not None else [sys.platform, os.uname().sysname]
    for name in names:
        lowered = name.lower()
        # sys.platform is "freebsd13"/"freebsd14" on FreeBSD; uname -s says "FreeBSD".
        for platform in PLATFORMS:
            if lowered.startswith(platform):
                return platform
    raise ConfigError(
        f"core.platform: cannot run on {names[0]!r} (supported: {', '.join(PLATFORMS)}); "
        "set core.platform explicitly only if this is wrong"
    )
