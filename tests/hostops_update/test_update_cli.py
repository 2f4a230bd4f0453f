"""``bhype host update …`` against the real API (uvicorn on loopback, real API tokens, an
in-process worker) with the stand-in tools: the plan first, nothing without ``--yes``, a run
followed live, a failure, bringing back, status as JSON, operators refused."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest

from bhype_core import cli
from bhype_core.builtins import models
from bhype_core.db.migrate import upgrade
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_core.testing.api_server import served_cli
from bhype_core.testing.roles import role_account
from bhype_hostops.update import standin

pytestmark = [pytest.mark.slow]


@pytest.fixture
def server(tmp_path, plugin_manager, register_plugin, monkeypatch, local_user) -> Iterator[dict]:
    import bhype_hostops.update.plugin

    register_plugin(models, "core_models")
    register_plugin(bhype_hostops.update.plugin, "hostops_update")
    settings = make_settings(tmp_path / "data", queue={"backend": "sqlite"},
                             hostops_update={"platform": "standin", "standin_dir": str(tmp_path / "standin")})
    runtime = build_runtime(settings, plugin_manager)
    upgrade(runtime)
    admin = role_account(local_user, runtime).name
    with served_cli(runtime, tmp_path, monkeypatch, ((admin, "admin"), ("alice", "operator")), as_user=admin) as made:
        made["tokens"]["root"] = made["tokens"][admin]
        made["standin"] = tmp_path / "standin"
        yield made
    runtime.engine.dispose()


@pytest.fixture
def bhype(server, capsys, monkeypatch):
    def run(*args: str, user: str = "root") -> tuple[int, str, str]:
        monkeypatch.setenv("BHYPE_TOKEN", server["tokens"][user])
        monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        status = cli.main(["--config", str(server["config"]), *args])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def change(server, function) -> None:
    state = standin.load(server["standin"])
    function(state)
    standin.save(server["standin"], state)


def test_plan_first_then_run_follow_status(server, bhype) -> None:
    change(server, lambda s: s["pending"]["packages"].append({"name": "curl", "from": "8.4.0", "to": "8.6.0"}))
    status, out, err = bhype("host", "update", "plan")
    assert status == 0, err
    assert "VMs to stop, in this order: none running" in out
    assert "boot environment to create: bhype-update-" in out and "(booted now: default" in out
    assert "updates: unknown" in out

    status, out, err = bhype("host", "update", "run")
    assert status == 0, err
    assert out.rstrip().endswith("nothing changed: run again with --yes to update the host as planned")
    assert bhype("host", "update", "status", "--json")[1].strip() == "[]"

    status, out, err = bhype("host", "update", "run", "--yes", "--follow")
    assert status == 0, err + out
    assert "packages: \tcurl: 8.4.0 -> 8.6.0" in out  # the task's log, live
    assert "as planned:\nplatform: standin" in out  # the plan the run made, in its log
    assert "step reboot: no reboot needed" in out
    status, out, _ = bhype("host", "update", "status", "--json")
    run = json.loads(out)
    assert (status, run["state"], run["data"]["installed"]) == (0, "done", {"base": False, "packages": True})
    status, _, err = bhype("host", "update", "resume")
    assert status == 1 and "no host update run is stopped or running" in err


def test_a_problem_refuses_then_a_failure_is_brought_back(server, bhype) -> None:
    change(server, lambda s: s["fail"].update(bectl="bectl: not a ZFS boot environment"))
    status, out, _ = bhype("host", "update", "run", "--yes")
    assert status == 1
    assert ("PROBLEM: boot environments are not available: bectl list -H exited with status 1: "
            "bectl: not a ZFS boot environment") in out
    assert bhype("host", "update", "status")[1] == "no host update run yet\n"

    change(server, lambda s: (s["fail"].clear(), s["fail"].update(pkg="pkg: repository unreachable")))
    status, out, _ = bhype("host", "update", "run", "--yes", "--follow")
    assert status == 1
    assert "stopped at step install: pkg upgrade -y exited with status 1: pkg: repository unreachable" in out
    status, out, _ = bhype("host", "update", "status")
    assert status == 1 and "install: failed: pkg upgrade -y exited with status 1" in out
    status, out, err = bhype("host", "update", "abort", "--follow")
    assert status == 0, err + out
    status, out, _ = bhype("host", "update", "status", "--json")
    assert (status, json.loads(out)["state"]) == (0, "brought_back")


def test_operators_are_refused(bhype) -> None:
    status, _, err = bhype("host", "update", "plan", user="alice")
    assert status == 1 and "admins" in err
