"""Test outcomes do not depend on the host's own accounts (issue 13).

The machine under test gets real accounts named like the fixed names tests once used (``alice``,
``bob`` …), all in ``bhype-admin`` (what the README's walkthrough invites) — but only inside a
private mount namespace whose ``/etc`` is a copy (unshare(1), mount(8) ``--bind``), so no other
process on the machine ever sees them. The tests that used to flip then run there unchanged.
"""

from __future__ import annotations

import grp
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bhype_core.testing.parts import missing

ROOT = Path(__file__).resolve().parents[2]
FIXED_NAMES = ("alice", "bob", "carol", "tester", "mallory", "eve")
# Inside the namespace: /etc becomes the copy, the trap is shown armed, then pytest runs.
INNER = """
import os, subprocess, sys
subprocess.run(["mount", "--bind", sys.argv[1], "/etc"], check=True)
from bhype_core.auth.identity import identify
from bhype_core.auth.settings import AuthSettings
print("ARMED:", ",".join(name for name in sys.argv[2].split(",") if identify(name, AuthSettings()).role == "admin"))
sys.stdout.flush()
os.execv(sys.executable, [sys.executable, "-m", "pytest", *sys.argv[3:]])
"""


def run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True, timeout=120)


def copy_etc(target: Path) -> None:
    """Copy /etc (symlinks as symlinks). Other test sessions add and remove users meanwhile:
    their lock and temporary files (``group.lock``, ``group+``) are left out, and a file that
    vanishes mid-copy is not an error."""
    try:
        shutil.copytree("/etc", target, symlinks=True, ignore=shutil.ignore_patterns("*.lock", "*+"))
    except shutil.Error as exc:
        if not all("No such file or directory" in str(entry[2]) for entry in exc.args[0]):
            raise


@pytest.fixture
def planted_etc() -> Iterator[Path]:
    """A copy of /etc where every fixed name is a real account in ``bhype-admin`` (and ``bhype``)."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        missing("users", "planting host accounts in a private mount namespace needs root and unshare(1)")
    work = Path(tempfile.mkdtemp(prefix="bht-etc-"))
    try:
        copy_etc(work / "etc")
        # shadow-utils' --prefix edits the files under work/etc and leaves the real ones alone.
        for group in ("bhype-admin", "bhype"):
            if f"\n{group}:" not in "\n" + (work / "etc" / "group").read_text():
                run(["groupadd", "--prefix", str(work), group])
        passwd = "\n" + (work / "etc" / "passwd").read_text()
        for name in FIXED_NAMES:
            if f"\n{name}:" in passwd:
                run(["usermod", "--prefix", str(work), "-a", "-G", "bhype-admin,bhype", name])
            else:
                run(["useradd", "--prefix", str(work), "-M", "-N", "-g", "bhype-admin", "-G", "bhype", name])
        yield work / "etc"
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.slow
def test_real_accounts_with_the_old_fixed_names_do_not_change_outcomes(planted_etc: Path) -> None:
    tests = [
        "tests/vm/test_vm_api.py::test_generic_task_route_cannot_reach_another_users_vm",
        "tests/vm/test_vm_reconcile.py::test_an_operator_reconciles_only_their_own_vms",
        "tests/vm/test_vm_reconcile.py::test_a_crash_the_driver_reports_becomes_an_event_for_the_owner",
        "tests/vm/test_vm_destroy_edit.py",
    ]
    argv = ["unshare", "--mount", "--propagation", "private", sys.executable, "-c", INNER,
            str(planted_etc), ",".join(FIXED_NAMES), "-q", "-p", "no:cacheprovider", *tests]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=ROOT)
    output = result.stdout + result.stderr
    assert f"ARMED: {','.join(FIXED_NAMES)}" in output, output  # every fixed name is an admin there
    assert result.returncode == 0, output
    assert " passed" in output and "failed" not in output
    # ... and nowhere else: the machine's own /etc never saw them.
    assert "bhype-admin" not in {group.gr_name for group in grp.getgrall()} or not (
        set(FIXED_NAMES) & set(grp.getgrnam("bhype-admin").gr_mem)
    )
