"""Parsers for what service(8), sysrc(8) and Debian's runlevel links say about a service."""

from __future__ import annotations

import re
from dataclasses import dataclass

# rc.subr(8) run_rc_command, "status": "sshd is running as pid 1234." (exit 0) or
# "sshd is not running." (exit 1). Several pids are possible ("as pids 12 13.").
_RUNNING = re.compile(r"^\S+ is running as pids? ([\d ]+)\.?\s*$", re.MULTILINE)


@dataclass(frozen=True)
class ServiceState:
    """What bHype knows about one allow-listed service."""

    name: str
    running: bool
    enabled: bool | None  # None: the manager does not know the service (no rc.conf/link entry)
    pids: tuple[int, ...] = ()
    detail: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "running": self.running, "enabled": self.enabled,
                "pids": list(self.pids), "detail": self.detail}


def parse_freebsd_status(returncode: int, stdout: str) -> tuple[bool, tuple[int, ...]]:
    """``service NAME onestatus`` → (running, pids). rc.subr(8): exit 0 running, 1 not."""
    match = _RUNNING.search(stdout)
    pids = tuple(int(pid) for pid in match.group(1).split()) if match else ()
    return returncode == 0, pids


def parse_sysrc_value(returncode: int, stdout: str, stderr: str) -> bool | None:
    """``sysrc -n VAR`` → True for YES (and its rc.subr(8) synonyms TRUE/ON/1), False for any
    other value, None when the variable is unset (exit 1, "unknown variable").

    :raises ValueError: another failure (sysrc(8) could not read rc.conf).
    """
    if returncode != 0:
        if "unknown variable" in stderr:
            return None
        raise ValueError(f"sysrc failed (exit {returncode}): {stderr.strip()}")
    # rc.subr checkyesno: yes/true/on/1 in any case are YES, no/false/off/0 are NO.
    return stdout.strip().lower() in ("yes", "true", "on", "1")


def parse_sysrc_change(stdout: str) -> tuple[str, str | None, str] | None:
    """``sysrc VAR=VALUE`` → (var, old or None, new). sysrc(8) prints ``sshd_enable: NO -> YES``
    (``var:  -> YES`` when it was unset); None when the line is not of that shape."""
    match = re.search(r"^(\w+): (.*?) -> (.*)$", stdout, re.MULTILINE)
    if not match:
        return None
    old = match.group(2).strip()
    return match.group(1), old or None, match.group(3).strip()


def parse_sysv_links(stdout: str, script: str) -> bool | None:
    """``ls -1 /etc/rc2.d … /etc/rc5.d`` → True when ``script`` has an S (start) link in a
    multi-user runlevel, False when it has only K links there, None when it has none
    (update-rc.d(8) never made its links). Link names are ``S01name``/``K01name``."""
    pattern = re.compile(rf"^([SK])\d\d{re.escape(script)}$")
    kinds = {match.group(1) for line in stdout.splitlines() if (match := pattern.match(line.strip()))}
    if "S" in kinds:
        return True
    return False if kinds else None
