"""Parsing freebsd-update(8) and ``pkg upgrade -n`` (pkg-upgrade(8)) output into pending patches.

freebsd-update: usr.sbin/freebsd-update/freebsd-update.sh; pkg: freebsd/pkg src/upgrade.c and
src/utils.c. pkg's exit status for ``-n`` changed in 2.4 (0 whatever is pending; before, 1 when
something was), so only the lines decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bhype_hostops.audit_parse import CheckError

PKGBASE_REFUSAL = "freebsd-update is incompatible with the use of packaged base"
NO_TTY = "should not be run non-interactively"


@dataclass(frozen=True)
class BaseUpdate:
    """What ``freebsd-update fetch`` staged: the version it updates to and the files."""

    target: str
    files: tuple[str, ...]


def parse_updatesready(returncode: int, stdout: str, stderr: str) -> bool:
    """``freebsd-update updatesready`` → whether fetched updates wait to be installed
    (``There are updates available to install.``, exit 0; ``No updates are available to
    install.``, exit 2).

    :raises CheckError: a pkgbase host, or any other answer.
    """
    text = stdout + stderr
    if PKGBASE_REFUSAL in text:
        raise CheckError("freebsd-update refuses on a pkgbase host (the base system comes from pkg)")
    if returncode == 0 and "There are updates available to install." in text:
        return True
    if returncode == 2 and "No updates are available to install." in text:
        return False
    raise CheckError(f"freebsd-update updatesready: unexpected answer (exit {returncode}): {text.strip()[:300]}")


def parse_fetch(returncode: int, stdout: str, stderr: str) -> BaseUpdate | None:
    """``freebsd-update --not-running-from-cron fetch`` (with ``PAGER=cat``) → the staged update,
    or None when ``No updates needed to update system to …``.

    :raises CheckError: it refused (no tty without ``--not-running-from-cron``, pkgbase,
        not a -RELEASE) or failed.
    """
    text = stdout + stderr
    if PKGBASE_REFUSAL in text:
        raise CheckError("freebsd-update refuses on a pkgbase host (the base system comes from pkg)")
    if NO_TTY in text:
        raise CheckError("freebsd-update fetch refused to run without a terminal (run it as "
                         "'freebsd-update --not-running-from-cron fetch' or 'freebsd-update cron')")
    if returncode != 0:
        raise CheckError(f"freebsd-update fetch failed (exit {returncode}): {text.strip().splitlines()[-1:] or ''}")
    if re.search(r"^No updates needed to update system to (\S+?)\.?$", text, re.MULTILINE):
        return None
    match = re.search(r"^The following files will be (?:updated|added|removed) as part of updating to\s+(\S+?):?$",
                      text, re.MULTILINE)
    if not match:
        raise CheckError("freebsd-update fetch: neither 'No updates needed' nor a list of files in its output")
    files = tuple(line.strip() for line in text[match.end():].splitlines() if line.startswith("/"))
    return BaseUpdate(match.group(1).rstrip(":."), files)


@dataclass(frozen=True)
class Upgrade:
    """One line of ``Installed packages to be UPGRADED:``."""

    name: str
    old: str
    new: str
    repository: str = ""
    vulnerable: bool = False


# "\t<name>: <old> -> <new>[ [repo]][ (vulnerable!)]" (src/utils.c print_jobs_summary_pkg)
_UPGRADE = re.compile(r"^\t(\S+): (\S+) -> (\S+)(?: \[([^\]]+)\])?( \(vulnerable!\))?$")


def parse_pkg_upgrade_dry_run(stdout: str) -> list[Upgrade]:
    """``pkg upgrade -n`` → the packages it would upgrade (empty: up to date).

    :raises CheckError: neither ``Your packages are up to date.`` nor a job summary.
    """
    if "Your packages are up to date." in stdout:
        return []
    if not re.search(r"^The following \d+ package\(s\) will be affected|^Installed packages to be \w+:|"
                     r"^New packages to be INSTALLED:|^Number of packages to be", stdout, re.MULTILINE):
        raise CheckError("pkg upgrade -n: neither 'Your packages are up to date.' nor a job summary")
    upgrades = []
    section = ""
    for line in stdout.splitlines():
        if not line.startswith("\t") and line.rstrip().endswith(":"):
            section = line.strip()
            continue
        if section.startswith("Installed packages to be UPGRADED") and (match := _UPGRADE.match(line.rstrip("\n"))):
            upgrades.append(Upgrade(match.group(1), match.group(2), match.group(3), match.group(4) or "",
                                    bool(match.group(5))))
    return upgrades
