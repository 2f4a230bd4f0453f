"""The Host update page, added through the web UI's hooks: admins only, the plan first, a
stopped run's two ways on, the script that drives the API."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))

from pages_env import HTML, PagesEnv  # noqa: E402

from bhype_hostops.update import runs  # noqa: E402


@pytest.fixture
def env(tmp_path):
    made = PagesEnv(tmp_path)
    yield made
    made.close()


def test_admins_see_the_page_in_the_navigation_operators_do_not(env) -> None:
    root, alice = env.client("root", "admin"), env.client("alice")
    page = root.get("/ui/host/update", headers=HTML)
    assert page.status_code == 200
    assert '<a href="/ui/host/update" aria-current="page">Host update</a>' in page.text
    assert '<pre id="plan-text">No plan yet.</pre>' in page.text
    assert '<button type="button" id="start-update" disabled>' in page.text  # no plan: nothing to start
    assert 'src="/ui/plugins/hostops_update/static/update.js"' in page.text
    assert alice.get("/ui/host/update", headers=HTML).status_code == 404
    assert "Host update" not in alice.get("/ui/", headers=HTML).text
    script = root.get("/ui/plugins/hostops_update/static/update.js")
    assert script.status_code == 200 and 'window.confirm(`Update the host now?' in script.text


def test_a_stopped_run_shows_its_steps_and_both_ways_on(env) -> None:
    run = runs.create(env.runtime, "root", "t1", {"vms": [], "start_order": []}, "update")
    runs.report(env.runtime, run.id, "boot_environment", "done", "boot environment bhype-update-1 created")
    runs.report(env.runtime, run.id, "install", "failed", "pkg upgrade -y exited with status 1")
    runs.update(env.runtime, run.id, state="failed", error=f"host update run {run.id} stopped at step install")
    page = env.client("root", "admin").get("/ui/host/update", headers=HTML).text
    assert f"run {run.id}: failed (step install)" in page
    assert '<li class="step-failed">install: failed: pkg upgrade -y exited with status 1</li>' in page
    assert '<button type="button" id="resume-run" >' in page or '<button type="button" id="resume-run">' in page
    assert 'id="abort-run" hidden' not in page
