"""The VM supervisor is a fresh interpreter on every VM start (issue 15): what it imports is
start-up time before the hypervisor is spawned. A real interpreter checks what it loads."""

from __future__ import annotations

import json
import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; import json; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return set(json.loads(result.stdout))


def test_the_supervisor_loads_neither_the_runner_nor_argparse_nor_ldconfig():
    modules = loaded_after("import bhype_core.drivers.supervisor")
    # The runner (pipelines, streaming, audit) loads on the first host command, argparse only
    # for options; ctypes.util would run ``ldconfig -p`` in a subprocess.
    heavy = {"bhype_core.host.runner", "bhype_core.host.pipeline", "bhype_core.host.streaming", "argparse",
             "ctypes.util", "uuid", "tempfile"}
    assert heavy.isdisjoint(modules), sorted(heavy & modules)
    assert {"bhype_core.drivers.supervisor_kinds", "bhype_core.host.argv"} <= modules


def test_the_runner_finds_libc_without_ldconfig():
    modules = loaded_after("import bhype_core.host.runner")
    assert "ctypes.util" not in modules


def test_the_runner_still_exports_the_argv_checks():
    from bhype_core.host import argv, runner

    assert runner.validate_argv is argv.validate_argv and runner.ArgvError is argv.ArgvError
