"""Findings pop up live in Chromium (the web UI's notification stream, no reload) and stay on the
Host → Updates page; over three check runs a known vulnerability pops once, again only when it
changed. Debian's chromium under Playwright against the real app (every installed plugin), the
check run as the daily job runs it (owner @system) with the FreeBSD stand-in tools."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from bhype_core.auth.principal import SYSTEM
from bhype_core.tasks import service
from bhype_core.testing.api_server import served_app
from bhype_core.testing.tasks import run_queued

from . import freebsd_tools as tools

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))  # the web UI tests' browser kit
from browser_kit import ARTIFACTS, launch_chromium, session_page  # noqa: E402
from pages_env import PagesEnv  # noqa: E402

pytestmark = pytest.mark.slow
WAIT = 60_000  # ms: a bound for a loaded machine, not a timing assertion


@pytest.fixture
def browser():
    yield from launch_chromium()


def check(env) -> None:
    task = service.submit(env.runtime, SYSTEM, "hostops.check", {})
    run_queued(env.runtime)
    from bhype_core.tasks.store import get_task

    assert get_task(env.runtime.engine, task.id).state == "succeeded"


def test_a_new_vulnerability_pops_up_live_once_and_stays_on_the_updates_page(tmp_path, browser):
    bin_dir = tmp_path / "freebsd-bin"
    env = PagesEnv(tmp_path, hostops={"check_platform": "freebsd", **tools.install(bin_dir)})
    try:
        admin = env.client("opsadmin", "admin")
        tools.scenario(bin_dir, tools.classic((0, "@audit_none.json", "")))
        with served_app(env.app) as url:
            page, errors = session_page(browser, url, admin)
            page.goto(url + "/ui/host/updates")
            assert page.locator("#findings tr.empty").count() == 1
            page.evaluate("() => { window.bhypeSamePage = 'yes'; }")
            page.wait_for_function("() => document.body.dataset.notifyAfter !== undefined")

            tools.scenario(bin_dir, tools.classic((1, "@audit_several.json", ""), upgrade="@pkg_upgrade_pending.txt"))
            check(env)  # first run: curl, python311 and the package updates are new
            curl_toasts = page.locator(".toast", has_text="curl 8.9.0 is vulnerable")
            curl_toasts.first.wait_for(timeout=WAIT)
            page.locator('#findings tr[data-finding="vuln:curl"]').wait_for(timeout=WAIT)
            page.locator('#findings tr[data-finding="vuln:python311"]').wait_for(timeout=WAIT)
            assert "CVE-2024-00000" in page.locator('#findings tr[data-finding="vuln:curl"]').inner_text()
            page.locator(".toast", has_text="Host updates available").first.wait_for(timeout=WAIT)
            assert page.evaluate("() => window.bhypeSamePage") == "yes"  # no reload happened
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "hostops-popup.png"), full_page=True)

            check(env)  # second run, same answers: nothing pops
            tools.scenario(bin_dir, tools.classic((1, "@audit_curl_changed.json", ""),
                                                  upgrade="@pkg_upgrade_pending.txt"))
            check(env)  # third run: curl changed (pops again), python311 resolved
            page.locator(".toast", has_text="CVE-2024-00003").wait_for(timeout=WAIT)
            assert curl_toasts.count() == 2  # the first run's and the change's; none from the second run
            assert page.locator(".toast", has_text="python311 3.11.9 is vulnerable").count() == 1
            page.locator('#findings tr[data-finding="vuln:python311"]').wait_for(state="detached", timeout=WAIT)
            page.reload()  # still there after a reload, until resolved
            assert page.locator('#findings tr[data-finding="vuln:curl"]').count() == 1
            assert page.locator('#findings tr[data-finding="vuln:python311"]').count() == 0
            page.context.close()
        assert errors == []
    finally:
        env.close()
