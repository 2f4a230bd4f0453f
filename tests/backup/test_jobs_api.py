"""``bhype backup job add|list|run|remove`` against the real API (uvicorn on loopback, real API
tokens, an in-process worker): JSON out, admin-only refusals in one line, a run followed to
its end, a second run refused while one is queued, bad input refused naming the fields."""

from __future__ import annotations

import io
import json
import sys

import pytest

from bhype_core import cli
from bhype_core.testing.api_server import served_cli

from .test_jobs import jobs_runtime


@pytest.fixture
def bhype(tmp_path, plugin_manager, register_plugin, local_user, monkeypatch, capsys):
    runtime, recorder = jobs_runtime(tmp_path, plugin_manager, register_plugin, local_user,
                                     queue={"backend": "sqlite"})
    admin = recorder.admin.name
    with served_cli(runtime, tmp_path, monkeypatch, [(admin, "admin"), ("alice", "operator")],
                    as_user=admin) as server:

        def run(*args: str, user: str = admin) -> tuple[int, str, str]:
            monkeypatch.setenv("BHYPE_TOKEN", server["tokens"][user])
            monkeypatch.setattr(sys, "stdin", io.StringIO(""))
            status = cli.main(["--config", str(server["config"]), *args])
            out, err = capsys.readouterr()
            return status, out, err

        run.recorder = recorder  # type: ignore[attr-defined]
        run.runtime = runtime  # type: ignore[attr-defined]
        yield run


def test_job_commands_end_to_end(bhype):
    status, out, err = bhype("backup", "job", "add", "nightly", "--target", "nas", "--tag", "prod",
                             "--mode", "crash", "--schedule", "30 2 * * *", "--retention", "last=3 daily=7",
                             "--json")
    assert status == 0, err
    job = json.loads(out)
    assert (job["name"], job["tags"], job["retention"], job["schedule"]) == (
        "nightly", ["prod"], "last=3 daily=7", "30 2 * * *")
    status, out, err = bhype("backup", "job", "add", "bad", "--target", "nowhere", "--vm", "web",
                             "--retention", "weekly=-1", "--schedule", "99 * * * *")
    assert status != 0 and "target" in err and "retention" in err and "schedule" in err
    status, out, err = bhype("backup", "job", "list", "--json")
    assert status == 0 and [j["name"] for j in json.loads(out)] == ["nightly"]
    status, out, _ = bhype("backup", "job", "list")
    assert "nightly" in out and "tag:prod" in out and "30 2 * * *" in out
    # Operators may not manage jobs: one line, no traceback.
    status, out, err = bhype("backup", "job", "list", user="alice")
    assert status != 0 and "admin" in err and "Traceback" not in err
    status, out, err = bhype("backup", "job", "run", "nightly", "--json")
    assert status == 0, err
    result = json.loads(out)
    assert sorted(result["vms"]) == ["db", "web"] and all(v["state"] == "succeeded" for v in result["vms"].values())
    assert sorted(c["vm"] for c in bhype.recorder.calls) == ["db", "web"]
    status, out, _ = bhype("backup", "job", "list", "--json")
    assert json.loads(out)[0]["last_state"] == "succeeded"
    status, out, err = bhype("backup", "job", "remove", "nightly")
    assert status == 0 and "removed" in out
    status, out, err = bhype("backup", "job", "remove", "nightly")
    assert status != 0 and "no backup job" in err


def test_a_second_run_is_refused_while_one_is_queued(bhype):
    assert bhype("backup", "job", "add", "n", "--target", "nas", "--vm", "web")[0] == 0
    # Hold the job's lock so the first run stays queued, then ask again.
    from bhype_core.tasks import service

    runtime = bhype.runtime
    job_id = json.loads(bhype("backup", "job", "list", "--json")[1])[0]["id"]
    holder = service.submit(runtime, bhype.recorder.admin, "core.ping",
                            {"sleep": 600, "locks": [f"backup_job:{job_id}"]})
    first = service.submit(runtime, bhype.recorder.admin, "backup.job.run", {"job": job_id})
    status, out, err = bhype("backup", "job", "run", "n", "--no-follow")
    assert status != 0 and f"task {first.id}" in err and "already has a run" in err
    assert bhype("task", "cancel", holder.id)[0] == 0


def test_job_edit_enable_disable_and_drill_requests(bhype):
    assert bhype("backup", "job", "add", "nightly", "--target", "nas", "--vm", "web")[0] == 0
    status, out, err = bhype("backup", "job", "edit", "nightly", "--schedule", "0 3 * * *", "--retention",
                             "last=5", "--tag", "prod", "--drill-schedule", "@weekly", "--drill-tcp", "22", "--json")
    assert status == 0, err
    job = json.loads(out)
    assert (job["schedule"], job["retention"], job["tags"], job["vms"]) == ("0 3 * * *", "last=5", ["prod"], ["web"])
    assert job["drill_check"] == {"kind": "tcp", "port": 22} and job["drill_schedule"] == "@weekly"
    # The whole job is validated again, every bad field named; nothing changes.
    status, out, err = bhype("backup", "job", "edit", "nightly", "--retention", "weekly=-1", "--target", "nowhere",
                             "--drill-tcp", "70000")
    assert status != 0 and "retention" in err and "target" in err and "drill_check.port" in err
    status, out, err = bhype("backup", "job", "disable", str(job["id"]), "--json")  # by id too
    assert status == 0 and json.loads(out)["enabled"] is False
    status, out, _ = bhype("backup", "job", "list")
    assert "last=5" in out and out.splitlines()[-1].rstrip().endswith("no")
    status, out, err = bhype("backup", "job", "enable", "nightly")
    assert status == 0 and "(enabled)" in out
    status, out, err = bhype("backup", "job", "edit", "nightly", "--mode", "crash", user="alice")
    assert status != 0 and "admin" in err and "Traceback" not in err
    status, out, err = bhype("backup", "job", "edit", "nosuch", "--mode", "crash")
    assert status != 0 and "no backup job" in err
    # Drills: a VM without backups, an unknown point, a bad sign of life, an operator.
    status, out, err = bhype("backup", "drill", "web", "--serial", "login:")
    assert status != 0 and "no backup of web to drill" in err
    status, out, err = bhype("backup", "drill", "web", "--point", "99", "--tcp", "22")
    assert status != 0 and "no backup point 99" in err
    status, out, err = bhype("backup", "drill", "web", "--point", "1", "--tcp", "0")
    assert status != 0 and "check.port" in err
    status, out, err = bhype("backup", "drill", "web", "--point", "99", "--tcp", "22", user="alice")
    assert status != 0 and "admin" in err
