"""FreeBSD argv builders for the host update workflow, each citing the man page it follows.

Pure functions: the platform (:mod:`bhype_hostops.update.platform`) puts the tool's path in
front (the real tool on FreeBSD, the stand-in on a development host); the runner runs them.
"""

from __future__ import annotations

from bhype_core.plugin_api import NAME_RE, ValidationErrors

# pkg.conf(5) / FreeBSD.conf of 15.x: the packaged base repository's name
# (usr.sbin/pkg/FreeBSD.conf.quarterly-release; next-features.md "pkgbase").
PKGBASE_REPOSITORY = "FreeBSD-base"

# freebsd-update(8): pages its file lists through $PAGER (default less); never wait on a pager.
FREEBSD_UPDATE_ENV = {"PAGER": "cat"}


def bectl_list() -> list[str]:
    """bectl(8) ``list -H``: one boot environment a line, TAB-separated, no header
    (parsed by :func:`bhype_hostops.update.parse.parse_bectl_list`)."""
    return ["bectl", "list", "-H"]


def bectl_create(name: str) -> list[str]:
    """bectl(8) ``create -r NAME``: a recursive clone of the active boot environment (what
    freebsd-update's ``install_create_be`` runs since EN-23:13), so the admin can boot the
    pre-update system from the loader menu."""
    if not NAME_RE.fullmatch(name):
        raise ValidationErrors([("be_name", f"{name!r} is not a valid boot environment name")])
    return ["bectl", "create", "-r", name]


def freebsd_update_install() -> list[str]:
    """freebsd-update(8) ``install``: install the updates fetched before (the checks run
    ``fetch``/``cron``). Exit 2 with ``No updates are available to install.`` when nothing is
    staged; run with :data:`FREEBSD_UPDATE_ENV`."""
    return ["freebsd-update", "install"]


def pkg_upgrade(repository: str | None = None) -> list[str]:
    """pkg-upgrade(8) ``upgrade -y [-r REPOSITORY]``: upgrade without asking (``-y``, assume
    yes); ``-r FreeBSD-base`` limits the job to the packaged base repository (pkgbase)."""
    argv = ["pkg", "upgrade", "-y"]
    if repository:
        argv += ["-r", repository]
    return argv


def pkg_which_uname() -> list[str]:
    """pkg-which(8) ``which /usr/bin/uname``: succeeds on a packaged-base host (the test
    freebsd-update.sh's ``check_pkgbase`` makes before refusing to run)."""
    return ["pkg", "which", "/usr/bin/uname"]


def reboot() -> list[str]:
    """shutdown(8) ``-r now``: reboot at once (rc.shutdown runs the rc.d stop scripts, bHype's
    included)."""
    return ["shutdown", "-r", "now"]


def boot_time() -> list[str]:
    """sysctl(8) ``-n kern.boottime``: when the running kernel booted (``{ sec = N, usec = M }
    …``); a different value after the reboot step proves the host really rebooted."""
    return ["sysctl", "-n", "kern.boottime"]
