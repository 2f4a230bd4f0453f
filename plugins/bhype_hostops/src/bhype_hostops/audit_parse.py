"""Parsing ``pkg audit -Rjson`` (pkg-audit(8), freebsd/pkg src/audit.c) and naming the base system.

Exit status 1 means "vulnerable packages found" *or* "an error" (fetch failed, no database
access, bad option), so the JSON on stdout decides: a document with ``pkg_count`` is an answer
(0 or more packages), no document is an error whose message is on stderr.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


class CheckError(Exception):
    """A check could not give an answer (the tool failed or said something unreadable)."""


@dataclass(frozen=True)
class Issue:
    """One VuXML entry matching a package (``issues[]`` in the raw output)."""

    description: str
    cves: tuple[str, ...]
    url: str
    affected: tuple[str, ...] = ()

    @property
    def vid(self) -> str:
        """The VuXML id: the raw output has no key for it; it is the URL's file name."""
        match = re.search(r"/([0-9a-fA-F-]{8,})\.html$", self.url)
        return match.group(1) if match else self.url


@dataclass(frozen=True)
class Vulnerable:
    """A vulnerable package (the object key in ``packages``) and its issues."""

    package: str
    version: str
    issues: tuple[Issue, ...]
    reverse_dependencies: tuple[str, ...] = field(default=())

    @property
    def cves(self) -> list[str]:
        """Every CVE of every issue, sorted, once."""
        return sorted({cve for issue in self.issues for cve in issue.cves})


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise CheckError(f"pkg audit: {what} is not a list of strings")
    return tuple(value)


def parse_pkg_audit(returncode: int, stdout: str, stderr: str) -> list[Vulnerable]:
    """``pkg audit -Rjson …`` → the vulnerable packages (empty: none).

    :raises CheckError: no JSON document (with exit 1: the error pkg printed on stderr), a
        document not of the documented shape, or findings with exit status 0.
    """
    try:
        document = json.loads(stdout) if stdout.strip() else None
    except json.JSONDecodeError as exc:
        raise CheckError(f"pkg audit printed no readable JSON ({exc.msg} at line {exc.lineno}); "
                         f"exit {returncode}: {stderr.strip() or 'no message'}") from None
    if document is None:
        raise CheckError(f"pkg audit failed (exit {returncode}): {stderr.strip() or 'no output'}")
    if not isinstance(document, dict) or not isinstance(document.get("pkg_count"), int):
        raise CheckError("pkg audit: the JSON has no pkg_count (not the -Rjson shape)")
    packages = document.get("packages") or {}
    if not isinstance(packages, dict):
        raise CheckError("pkg audit: 'packages' is not an object")
    found = []
    for name, entry in packages.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("issues", []), list):
            raise CheckError(f"pkg audit: the entry of {name!r} is not of the documented shape")
        issues = []
        for item in entry.get("issues", []):
            if not isinstance(item, dict):
                raise CheckError(f"pkg audit: an issue of {name!r} is not an object")
            issues.append(Issue(str(item.get("description", "")), _strings(item.get("cve"), "cve"),
                                str(item.get("url", "")), _strings(item.get("Affected versions"), "Affected versions")))
        found.append(Vulnerable(name, str(entry.get("version", "")), tuple(issues),
                                _strings(entry.get("reverse dependencies"), "reverse dependencies")))
    if len(found) != document["pkg_count"]:
        raise CheckError(f"pkg audit: pkg_count is {document['pkg_count']} but {len(found)} packages are listed")
    if found and returncode == 0:
        raise CheckError("pkg audit listed vulnerable packages but exited 0")
    return found


# freebsd-version(1): "14.2-RELEASE-p3", "14.2-RELEASE", "15.0-STABLE" …
_VERSION = re.compile(r"^(\d+\.\d+)-([A-Z0-9]+)(?:-p(\d+))?$")


def base_package(version: str, *, kernel: bool = False) -> str:
    """``freebsd-version -u`` output → the pseudo-package ``pkg audit`` knows the base system by
    (freebsd/pkg scripts/periodic/405.pkg-base-audit.in: ``s,^,FreeBSD-,;s,-RELEASE-p,_,;s,-RELEASE$,,``):
    ``14.1-RELEASE-p3`` → ``FreeBSD-14.1_3``; with ``kernel``, ``FreeBSD-kernel-14.1_3``.

    :raises CheckError: not a version of that shape.
    """
    match = _VERSION.match(version.strip())
    if not match:
        raise CheckError(f"freebsd-version printed {version.strip()!r}, not a version like 14.2-RELEASE-p3")
    release, branch, patch = match.groups()
    name = "FreeBSD-kernel-" if kernel else "FreeBSD-"
    if branch != "RELEASE":
        return f"{name}{release}-{branch}" + (f"-p{patch}" if patch else "")
    return f"{name}{release}" + (f"_{patch}" if patch else "")
