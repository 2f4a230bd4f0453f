"""Missing parts fail, never skip: a run leaves something out only when told to by name.

A test that needs a part this machine lacks (a guest image that cannot be built, MariaDB,
Redis, sshd, chromium, root to create users, a program such as ``nft``) calls :func:`missing`.
That fails the test, on a developer's machine as on CI (issue 13: skips had hidden every real
ZFS test), unless the run was started without the part by name::

    pytest --without guests --without mariadb      # or: pytest --no-guests

The left-out tests are then skipped with a reason naming the option, tests carrying the
part's marker (``guest``, ``mariadb``, ``redis``, ``sshd``) are skipped before they start, and
the terminal summary ends with one line saying what was not tested. Deselecting by marker
(``-m "not guest"``) is named in that line as well.
"""

from __future__ import annotations

import re
import shutil
from collections import Counter
from collections.abc import Mapping, Set
from typing import NoReturn

import pytest

# Parts the kit knows (any other name, e.g. a program like ``nft``, is accepted too).
PARTS = {
    "guests": "QEMU test guests (tiny guest, ZFS test host) and their image builds",
    "mariadb": "the MariaDB server on 127.0.0.1:3306",
    "redis": "the Redis server on 127.0.0.1:6379",
    "sshd": "a real OpenSSH server on loopback",
    "browser": "Debian's chromium driven by playwright",
    "users": "real local users and groups (root and shadow-utils)",
    "netns": "network namespaces (root and iproute2)",
}
# Markers that mean "this test needs the part": such tests are skipped before they start.
MARKER_PARTS = {"guest": "guests", "mariadb": "mariadb", "redis": "redis", "sshd": "sshd"}
_REASON = re.compile(r"left out by --without ([^\s)]+)")
_excluded: set[str] = set()
_deselected: Counter[str] = Counter()


def excluded_parts() -> frozenset[str]:
    """The parts this run was told to do without."""
    return frozenset(_excluded)


def missing(part: str, reason: str) -> NoReturn:
    """The current test cannot have ``part``: skip it if the run said ``--without part``,
    fail it otherwise (with the option that would leave it out on purpose)."""
    if part in _excluded:
        pytest.skip(f"{reason} (left out by --without {part})")
    pytest.fail(f"{reason}\n(to leave such tests out on purpose: pytest --without {part})", pytrace=False)


def require_program(program: str, package: str, part: str | None = None) -> str:
    """The path of ``program``; a missing one is :func:`missing` (part: the program's name)."""
    path = shutil.which(program)
    if path is None:
        missing(part or program, f"{program} is not installed (Debian package {package})")
    return path


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--without PART`` (repeatable, or comma-separated) and ``--no-guests``."""
    group = parser.getgroup("bhype", "bHype test kit")
    known = ", ".join(sorted(PARTS))
    group.addoption(
        "--without", action="append", default=[], metavar="PART",
        help=f"leave out the tests that need PART (skipped and counted, not failed): {known}, or a program name",
    )  # fmt: skip
    group.addoption("--no-guests", action="store_true", help="same as --without guests")


def configure(config: pytest.Config) -> None:
    """Read the options (called from the kit's ``pytest_configure``)."""
    _excluded.clear()
    _deselected.clear()
    for value in config.getoption("--without", default=[]) or []:
        _excluded.update(part.strip() for part in value.split(",") if part.strip())
    if config.getoption("--no-guests", default=False):
        _excluded.add("guests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip, before they start, the tests whose marker names a part the run does without."""
    for item in items:
        for marker, part in MARKER_PARTS.items():
            if part in _excluded and item.get_closest_marker(marker) is not None:
                item.add_marker(pytest.mark.skip(reason=f"needs {PARTS[part]} (left out by --without {part})"))
                break


def pytest_deselected(items: list[pytest.Item]) -> None:
    """Count deselected tests per part (``-m "not guest"``, ``-k``) for the summary line."""
    for item in items:
        for marker, part in MARKER_PARTS.items():
            if item.get_closest_marker(marker) is not None:
                _deselected[part] += 1
                break


def not_tested_line(
    skipped_reasons: list[str], deselected: Mapping[str, int] | None = None, excluded: Set[str] = frozenset()
) -> str | None:
    """The summary's one line: what a run left out, by part, with test counts (``None``: nothing).

    ``skipped_reasons`` are the run's skip reasons, ``deselected`` counts deselected tests per
    part, ``excluded`` the parts named with ``--without``."""
    left_out = Counter(match.group(1) for reason in skipped_reasons for match in [_REASON.search(reason)] if match)
    parts = [f"{part} ({count} skipped)" for part, count in sorted(left_out.items())]
    parts += [f"{part} ({count} deselected)" for part, count in sorted((deselected or {}).items())]
    parts += [f"{part} (no test needed it)" for part in sorted(set(excluded) - set(left_out))]
    return "NOT TESTED: " + ", ".join(parts) if parts else None


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """End the run with one line naming every part left out (nothing when nothing was)."""
    reasons = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = getattr(report, "longrepr", None)
        if isinstance(longrepr, tuple) and len(longrepr) == 3:
            reasons.append(str(longrepr[2]))
    line = not_tested_line(reasons, _deselected, _excluded)
    if line:
        terminalreporter.write_line(line, yellow=True, bold=True)
