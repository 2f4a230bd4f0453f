"""``Runtime.local_runner``: the worker's own machine, where bHype's secret files are."""

from __future__ import annotations

from bhype_core.host.dryrun import DryRunRunner
from bhype_core.host.runner import LocalRunner
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings


def test_local_runner_is_the_runner_when_it_is_local(tmp_path, plugin_manager):
    runtime = build_runtime(make_settings(tmp_path / "data"), plugin_manager)
    assert runtime.local_runner is runtime.runner
    assert runtime.local_runner.run(["true"]).ok


def test_local_runner_runs_here_when_the_runner_drives_another_host(tmp_path, plugin_manager):
    settings = make_settings(tmp_path / "data", runner={"target": "ssh://root@192.0.2.1:2222", "default_timeout": 33})
    runtime = build_runtime(settings, plugin_manager)
    assert runtime.runner.target != "local"
    local = runtime.local_runner
    assert isinstance(local, LocalRunner) and local.target == "local" and local.default_timeout == 33
    assert local.run(["echo", "here"]).stdout == "here\n"  # ran on this machine, not over SSH
    assert runtime.local_runner is local


def test_local_runner_of_a_dry_run_is_a_dry_run(tmp_path, plugin_manager):
    settings = make_settings(tmp_path / "data", runner={"target": "ssh://root@192.0.2.1", "dry_run": True})
    assert isinstance(build_runtime(settings, plugin_manager).local_runner, DryRunRunner)
