"""BHYPE-MIB as shipped in the package, and installing it where net-snmp looks for MIBs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import ValidationErrors

MIB_NAME = "BHYPE-MIB"
MIB_FILE = Path(__file__).resolve().parent / "mibs" / f"{MIB_NAME}.txt"
# net-snmp's default MIB directories (snmp_config(5): DATADIR/snmp/mibs): the port's PREFIX
# /usr/local on FreeBSD, /usr on Debian.
DEFAULT_DIRS = {"freebsd": "/usr/local/share/snmp/mibs", "linux": "/usr/share/snmp/mibs"}


def mib_text() -> str:
    """The module's text."""
    return MIB_FILE.read_text()


def install(directory: str) -> Path:
    """Write ``BHYPE-MIB.txt`` into ``directory`` (mode 0644), replacing an older copy
    atomically; a symlink in the way is refused, never followed (O_NOFOLLOW).

    :raises ValidationErrors: the directory is not an absolute path to an existing directory.
    """
    base = Path(directory)
    if not base.is_absolute() or not base.is_dir() or base.is_symlink():
        raise ValidationErrors([("directory", f"{directory!r} is not an absolute path to an existing directory")])
    target = base / f"{MIB_NAME}.txt"
    temporary = base / f".{MIB_NAME}.txt.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(mib_text())
        os.chmod(temporary, 0o644)  # whatever the umask: net-snmp tools run as any user
        os.replace(temporary, target)  # rename(2) replaces a symlink itself, never its target
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return target


def install_task(context: Any, directory: str | None = None) -> dict[str, Any]:
    """Task ``snmp.install_mib`` (worker, root): install the MIB into ``directory`` (default:
    net-snmp's MIB directory for this platform)."""
    from bhype_core.plugin_api import detect_platform

    chosen = directory or DEFAULT_DIRS.get(str(detect_platform()).lower(), DEFAULT_DIRS["linux"])
    path = install(chosen)
    context.log(f"installed {path}")
    return {"path": str(path)}
