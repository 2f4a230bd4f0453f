"""A missing part fails the test on every machine, unless the run leaves it out by name, and
then the summary says in one line what was not tested (issue 13)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bhype_core.testing import guest_builds, parts

SAMPLE = '''
import pytest
from bhype_core.testing.parts import missing, require_program

def test_uses_the_tiny_guest(tiny_guest):
    pass

@pytest.mark.guest
def test_marked_guest():
    pass

def test_needs_a_program():
    require_program("bhype-no-such-program", "bhype-nothing")

def test_plain():
    pass
'''


def run_pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in a child process on SAMPLE, with the kit loaded from its entry point and a guest
    cache whose builds cannot reach any Debian mirror (a port nothing listens on)."""
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "BHYPE_TEST_CACHE": str(tmp_path / "cache"),
           "BHYPE_TEST_DEBIAN_MIRROR": "http://127.0.0.1:9/debian",
           "BHYPE_TEST_DEBIAN_SECURITY_MIRROR": "http://127.0.0.1:9/debian-security"}
    argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "--rootdir", str(tmp_path),
            "-o", "addopts=", "-o", "timeout=300", str(tmp_path / "test_sample.py"), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env)


@pytest.mark.slow
def test_a_guest_that_cannot_be_built_fails_without_ci(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = run_pytest(tmp_path)
    # The fixture's failure is an error at setup; the marker alone needs nothing.
    assert "1 failed, 2 passed, 1 error" in result.stdout, result.stdout + result.stderr
    assert "tiny test guest could not be built" in result.stdout
    assert "pytest --without guests" in result.stdout  # how to leave it out on purpose
    assert "bhype-no-such-program is not installed" in result.stdout
    assert "NOT TESTED" not in result.stdout
    # The build ran (from the start of the session) and left its log beside the cache.
    assert "build FAILED" in (tmp_path / "cache" / "tiny-guest" / "build.log").read_text()


@pytest.mark.slow
def test_collecting_only_builds_no_guest(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--collect-only")
    assert "4 tests collected" in result.stdout, result.stdout + result.stderr
    assert not (tmp_path / "cache" / "tiny-guest").exists()


@pytest.mark.slow
def test_leaving_parts_out_by_name_skips_them_and_says_so_in_one_line(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "--no-guests", "--without", "bhype-no-such-program,redis")
    assert "1 passed, 3 skipped" in result.stdout, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if "NOT TESTED" in line]
    assert line == ("NOT TESTED: bhype-no-such-program (1 skipped), guests (2 skipped), redis (no test needed it)")


@pytest.mark.slow
def test_deselecting_guests_by_marker_is_named_in_the_summary(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, "-m", "not guest", "--without", "guests,bhype-no-such-program")
    assert "1 passed, 2 skipped, 1 deselected" in result.stdout, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if "NOT TESTED" in line]
    assert "guests (1 skipped)" in line and "guests (1 deselected)" in line


def test_the_summary_line_counts_reasons_per_part() -> None:
    reasons = ["x (left out by --without guests)", "y (left out by --without guests)", "other skip"]
    assert parts.not_tested_line(reasons) == "NOT TESTED: guests (2 skipped)"
    line = parts.not_tested_line(reasons, {"mariadb": 3}, {"guests", "redis"})
    assert line == "NOT TESTED: guests (2 skipped), mariadb (3 deselected), redis (no test needed it)"
    assert parts.not_tested_line(["a plain skip"]) is None


def test_a_guest_build_starts_once_however_often_it_is_asked_for() -> None:
    calls: list[str] = []

    def fake_build(what: str, builder: str) -> object:
        calls.append(builder)
        return f"{what} built"

    builder = f"fake.build_{os.getpid()}_{id(calls)}"
    first = guest_builds.start("fake image", builder, run=fake_build)
    second = guest_builds.start("fake image", builder, run=fake_build)
    assert first is second and first.result(timeout=60) == "fake image built"
    assert guest_builds.result("fake image", builder) == "fake image built" and calls == [builder]


def test_a_test_hosts_leftover_processes_are_killed_by_path(tmp_path):
    # A VM started on a test host outlives its worker (as on a real host); the host's teardown
    # ends every process naming a path under the host's root, and nothing else.
    import subprocess
    import sys

    from bhype_core.testing.second_host import kill_processes_under

    root, other = tmp_path / "host", tmp_path / "hostess"
    sleeper = "import sys, time; time.sleep(300)"
    inside = subprocess.Popen([sys.executable, "-c", sleeper, str(root / "ds" / "vms" / "a")])
    outside = subprocess.Popen([sys.executable, "-c", sleeper, str(other / "ds")])
    try:
        assert kill_processes_under(root) == [inside.pid]
        assert inside.wait(10) == -9
        assert outside.poll() is None
    finally:
        inside.kill()
        outside.kill()
        outside.wait(10)
