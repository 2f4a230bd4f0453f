"""The Services page follows an action's task in Chromium: clicking Start (then Stop, through the
confirmation) shows the task as under way, and when the worker has run it the row shows the
state the task stored, without a page reload. A real sshd as a Debian init.d service, the real
app (every installed plugin), a real admin account (the worker checks the owner's groups)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bhype_core.testing.api_server import served_app
from bhype_core.testing.tasks import run_queued
from bhype_core.testing.waiting import wait_for

from .initd import sshd_service

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))  # the web UI tests' browser kit
from browser_kit import ARTIFACTS, launch_chromium, session_page  # noqa: E402
from pages_env import PagesEnv  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.sshd]
WAIT = 60_000  # ms: a bound for a loaded machine, not a timing assertion
STATE_IS = """(state) => document.querySelector('#services tr[data-service="sshd"] .state')?.textContent === state"""


@pytest.fixture
def browser():
    yield from launch_chromium()


@pytest.fixture
def test_sshd(tmp_path):
    service = sshd_service(tmp_path / "sshd")
    yield service
    service.remove()


def queued(env) -> int:
    """Run what the clicks queued, once the API has stored it (the click's request is async)."""
    from sqlmodel import Session, select

    from bhype_core.db.task_models import Task

    def waiting() -> int:
        with Session(env.runtime.engine) as db:
            return len([t for t in db.exec(select(Task)).all() if t.state == "queued"])

    wait_for(waiting, "the action's task to be queued")
    return len(run_queued(env.runtime))


def test_the_services_page_follows_the_action_and_shows_the_new_state(tmp_path, browser, test_sshd, bhype_roles):
    env = PagesEnv(tmp_path, auth=bhype_roles.auth_section(),
                   hostops={"services": ["sshd"], "service_platform": "sysv",
                            "script_names": {"sshd": test_sshd.script}})
    try:
        admin = bhype_roles.admin()
        client = env.client(admin.name, "admin")
        with served_app(env.app) as url:
            page, errors = session_page(browser, url, client)
            page.goto(url + "/ui/services")
            row = page.locator('#services tr[data-service="sshd"]')
            assert row.locator(".state").inner_text() == "unknown"  # never probed yet
            page.evaluate("() => { window.bhypeSamePage = 'yes'; }")

            row.get_by_role("button", name="Start", exact=True).click()
            page.locator(".toast", has_text="Start sshd queued").first.wait_for(timeout=WAIT)
            page.locator('#services tr[data-service="sshd"][aria-busy="true"]').wait_for(timeout=WAIT)
            assert row.locator(".state").inner_text() == "Start sshd…"  # following the task
            assert test_sshd.pid() is None  # nothing ran yet: the worker has not taken it
            assert queued(env) == 1
            page.wait_for_function(STATE_IS, arg="running", timeout=WAIT)
            assert test_sshd.pid() is not None  # the daemon the row now says runs
            assert "never" not in row.inner_text()  # "Seen" is the task's time now
            assert page.locator('#services tr[data-service="sshd"][aria-busy]').count() == 0

            row.get_by_role("button", name="Stop", exact=True).click()
            page.locator("#confirm-check").check()  # "even if my own session depends on it"
            page.locator("#confirm-ok").click()
            page.locator(".toast", has_text="Stop sshd queued").first.wait_for(timeout=WAIT)
            assert queued(env) == 1
            page.wait_for_function(STATE_IS, arg="stopped", timeout=WAIT)
            assert test_sshd.pid() is None
            assert page.evaluate("() => window.bhypeSamePage") == "yes"  # no reload happened
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "hostops-services-followed.png"), full_page=True)
            page.context.close()
        assert errors == []
    finally:
        env.close()
