"""Doctor checks for who can log in: the PAM service file and the bHype groups.

Checked on this host (the API's), not through the runner: PAM and the account database are
read by the process that checks passwords, whichever host the runner drives.
"""

from __future__ import annotations

import grp
import sys
from typing import Any

from bhype_core.auth.pam import service_file_path
from bhype_core.registry import CheckResult


def check_pam_service(service: str, platform: str | None = None) -> CheckResult:
    """The PAM service file bHype logs in through exists (else PAM uses ``other``)."""
    path = service_file_path(service, platform)
    shipped = "bhype.freebsd" if (platform or sys.platform).startswith("freebsd") else "bhype.linux"
    if path.is_file():
        return CheckResult("PAM service", True, f"{path}")
    # Optional: PAM then uses its 'other' service, which logs in on Debian (common-auth) but
    # may refuse everyone elsewhere.
    return CheckResult(
        "PAM service", False,
        f"{path} is missing: PAM falls back to the 'other' service, which may refuse every login",
        f"install bhype_core/auth/pam.d/{shipped} (shipped with bHype) as {path}; see docs/identity.md",
        optional=True,
    )  # fmt: skip


def check_groups(admin_groups: list[str], operator_groups: list[str], platform: str | None = None) -> CheckResult:
    """At least one admin group and one operator group exist, or nobody has a bHype role."""
    missing = [name for name in [*admin_groups, *operator_groups] if not _group_exists(name)]
    admins = [name for name in admin_groups if name not in missing]
    operators = [name for name in operator_groups if name not in missing]
    if admins and operators:
        return CheckResult("bHype groups", True, f"admins: {', '.join(admins)}; operators: {', '.join(operators)}")
    freebsd = (platform or sys.platform).startswith("freebsd")
    add = "pw groupadd {g}" if freebsd else "groupadd {g}"
    member = "pw groupmod {g} -m USER" if freebsd else "usermod -aG {g} USER"
    wanted = [g for g in (admin_groups[:1] if not admins else []) + (operator_groups[:1] if not operators else [])]
    fix = "; ".join(f"{add.format(g=g)} && {member.format(g=g)}" for g in wanted)
    return CheckResult(
        "bHype groups", False, f"no such group: {', '.join(missing)}: nobody can log in with that role", fix
    )


def run_access(settings: Any) -> list[CheckResult]:
    """The ``access`` doctor check: PAM service file and bHype groups."""
    auth = settings.auth
    return [check_pam_service(auth.pam_service), check_groups(list(auth.admin_groups), list(auth.operator_groups))]


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True



