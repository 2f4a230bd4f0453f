"""The Host update page in Chromium (Debian's, under Playwright) against the real app and an
in-process worker, as a real admin account: make a plan, start the update through the
confirmation (which shows the plan), and watch each step arrive until the run is done."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))

from browser_kit import launch_chromium, session_page  # noqa: E402
from pages_env import PagesEnv  # noqa: E402

from bhype_core.tasks.worker import start_in_process_worker  # noqa: E402
from bhype_core.testing.api_server import served_app  # noqa: E402
from bhype_hostops.update import standin  # noqa: E402

pytestmark = [pytest.mark.slow]


@pytest.fixture
def browser():
    yield from launch_chromium()


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def test_plan_confirm_and_follow_the_steps(tmp_path, bhype_roles, browser) -> None:
    env = PagesEnv(tmp_path, auth=bhype_roles.auth_section(), queue={"backend": "sqlite"},
                   hostops_update={"platform": "standin", "standin_dir": str(tmp_path / "standin")})
    state = standin.load(tmp_path / "standin")
    state["pending"]["packages"] = [{"name": "curl", "from": "8.4.0", "to": "8.6.0"}]
    standin.save(tmp_path / "standin", state)
    admin = env.client(bhype_roles.admin().name, "admin")
    worker = start_in_process_worker(env.runtime)
    try:
        with served_app(env.app) as url:
            page, errors = session_page(browser, url, admin)
            dialogs: list[str] = []

            def accept(dialog) -> None:
                dialogs.append(dialog.message)
                dialog.accept()

            page.on("dialog", accept)
            page.goto(url + "/ui/host/update")
            assert page.locator("#plan-text").inner_text() == "No plan yet."
            assert page.locator("#start-update").is_disabled()
            page.locator("#make-plan").click()
            expect(page.locator("#plan-text")).to_contain_text("boot environment", timeout=120_000)
            assert "VMs to stop, in this order: none running" in page.locator("#plan-text").inner_text()
            page.locator("#start-update").click()
            expect(page.locator("#run-state")).to_contain_text(": done", timeout=180_000)
            assert len(dialogs) == 1 and dialogs[0].startswith("Update the host now?")
            assert "boot environment to create: bhype-update-" in dialogs[0]
            steps = page.locator("#run-steps li").all_inner_texts()
            assert [re.split(r": ", step)[0] for step in steps] == [
                "boot_environment", "stop_vms", "stop_services", "install", "reboot", "verify_boot_environment",
                "start_vms", "start_services", "check"]
            assert "install: done: installed: packages; no reboot needed" in steps
            assert page.locator("#resume-run").is_hidden() and page.locator("#abort-run").is_hidden()

            # A run that stops: its error and both ways on; bring the VMs back from the page.
            state = standin.load(tmp_path / "standin")
            state["fail"]["pkg"] = "pkg: repository unreachable"
            standin.save(tmp_path / "standin", state)
            page.locator("#start-update").click()
            expect(page.locator("#run-state")).to_contain_text(": failed (step install)", timeout=180_000)
            assert "pkg: repository unreachable" in page.locator("#run-error").inner_text()
            assert page.locator("#resume-run").is_visible() and page.locator("#abort-run").is_visible()
            page.locator("#abort-run").click()
            expect(page.locator("#run-state")).to_contain_text(": brought_back", timeout=180_000)
            assert dialogs[-1] == "Stop updating and bring the VMs and services back?"
            assert page.locator("#abort-run").is_hidden()
            assert errors == []
            page.context.close()
    finally:
        worker.stop(timeout=60)
        env.close()
