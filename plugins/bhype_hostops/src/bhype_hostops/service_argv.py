"""Argv builders for the host's service manager: FreeBSD service(8)/sysrc(8), Debian's sysv tools."""

from __future__ import annotations

ACTIONS = ("start", "stop", "restart", "reload", "status")

# The directories Debian's update-rc.d(8) puts a script's S/K links into for its
# Default-Start runlevels (multi-user: 2-5); "enabled at boot" means an S link there.
SYSV_RUNLEVEL_DIRS = ("/etc/rc2.d", "/etc/rc3.d", "/etc/rc4.d", "/etc/rc5.d")


def freebsd_service(name: str, action: str) -> list[str]:
    """``service NAME oneACTION`` (service(8), rc.subr(8)).

    The ``one`` prefix acts whether or not ``NAME_enable`` is YES: plain ``start`` on a service
    that is not enabled prints "Cannot 'start' …" and exits 0 (rc.subr ``run_rc_command``), so
    bHype starts what the admin asks and keeps "enabled at boot" a separate switch.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown service action {action!r}")
    return ["service", name, f"one{action}"]


def freebsd_enable_var(name: str) -> str:
    """The rc.conf(5) variable that starts ``name`` at boot (``sshd`` → ``sshd_enable``)."""
    return f"{name.replace('-', '_').replace('.', '_')}_enable"


def freebsd_sysrc_set(name: str, enabled: bool) -> list[str]:
    """``sysrc NAME_enable=YES|NO`` (sysrc(8): prints ``sshd_enable: NO -> YES``)."""
    return ["sysrc", f"{freebsd_enable_var(name)}={'YES' if enabled else 'NO'}"]


def freebsd_sysrc_get(name: str) -> list[str]:
    """``sysrc -n NAME_enable`` (sysrc(8): the value only; an unset variable exits 1 with
    ``sysrc: unknown variable`` on stderr)."""
    return ["sysrc", "-n", freebsd_enable_var(name)]


def sysv_service(script: str, action: str) -> list[str]:
    """``service SCRIPT ACTION`` (Debian service(8): runs ``/etc/init.d/SCRIPT ACTION`` in a
    clean environment; LSB init scripts answer ``status`` with 0 running, 3 not running)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown service action {action!r}")
    return ["service", script, action]


def sysv_update_rc(script: str, verb: str) -> list[str]:
    """``update-rc.d SCRIPT defaults|enable|disable`` (update-rc.d(8): ``defaults`` makes the
    links from the script's LSB header; ``enable``/``disable`` turn its S links in the
    multi-user runlevels into K links and back)."""
    if verb not in ("defaults", "enable", "disable"):
        raise ValueError(f"unknown update-rc.d verb {verb!r}")
    return ["update-rc.d", script, verb]


def sysv_list_links() -> list[str]:
    """``ls -1 /etc/rc2.d … /etc/rc5.d``: the runlevel links (ls(1) prints ``DIR:`` headers)."""
    return ["ls", "-1", *SYSV_RUNLEVEL_DIRS]
