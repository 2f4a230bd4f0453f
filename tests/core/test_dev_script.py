"""``./dev``, the developer entry point the README names: its help and its refusals."""

from __future__ import annotations

import subprocess
from pathlib import Path

DEV = Path(__file__).resolve().parents[2] / "dev"


def dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DEV), *args], capture_output=True, text=True, timeout=30)


def test_help_prints_the_commands_and_succeeds():
    for flag in ("help", "--help", "-h"):
        shown = dev(flag)
        assert shown.returncode == 0, shown.stderr
        assert "./dev serve" in shown.stdout and "./dev test" in shown.stdout
        assert "set -euo" not in shown.stdout  # the script's own code is not help


def test_an_unknown_command_says_so_and_fails():
    refused = dev("sevre")
    assert refused.returncode == 2
    assert "unknown command 'sevre'" in refused.stderr and "./dev serve" in refused.stderr
