"""The /ui/snmp page in Debian's chromium (Playwright) against the real app served on loopback
with an in-process worker: an admin adds a v3 manager through the form (a short pass phrase is
refused next to its field first), tests it against a real snmptrapd (the task says the inform
was acknowledged), and removes it after confirming."""

from __future__ import annotations

import re
import shutil
import time

import pytest

from bhype_core.api.cookies import csrf_cookie_name
from bhype_core.api.session_store import SessionRecord, new_csrf_token, new_session_secret, session_key
from bhype_core.auth.principal import SYSTEM
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks.service import show
from bhype_core.testing import make_settings
from bhype_core.testing.api_server import served_api
from bhype_core.testing.parts import missing
from bhype_core.testing.roles import role_account
from bhype_core.testing.waiting import wait_for
from bhype_snmp import managers

from .kit import require_webui, snmptrapd

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
WAIT = 60_000  # ms, a bound for a loaded machine, not a timing assertion
AUTH_KEY, PRIV_KEY = "ui-auth-S3cret", "ui-priv-S3cret"


@pytest.fixture
def browser():
    if shutil.which(CHROMIUM) is None:
        missing("browser", "Debian's chromium is not installed (tools/install-test-deps)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing("browser", f"playwright is not installed: {exc}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def admin_page(browser, app, url: str, admin: str):
    """A browser context and page holding a fresh session of ``admin`` (an admin account),
    created in the served app's session store (the login itself is tested in tests/auth)."""
    auth = app.state.auth
    secret, csrf, now = new_session_secret(), new_csrf_token(), time.time()
    auth.sessions.create(SessionRecord(session_key(secret), admin, "admin", csrf, now, now, now, "127.0.0.1"))
    context = browser.new_context()
    context.add_cookies([{"name": auth.settings.cookie_name, "value": secret, "url": url},
                         {"name": csrf_cookie_name(auth.settings), "value": csrf, "url": url}])
    page = context.new_page()
    page.set_default_timeout(WAIT)
    return context, page


def test_add_test_and_remove_a_manager_in_the_browser(browser, tmp_path, local_user):
    pm = make_plugin_manager(load_entrypoints=True)
    require_webui(pm)
    runtime = build_runtime(make_settings(tmp_path / "data", queue={"backend": "sqlite"},
                                          auth={"account_recheck_interval": 3600}), pm)
    upgrade(runtime)
    admin = role_account(local_user, runtime)
    config = f"createUser nms SHA-256 {AUTH_KEY} AES {PRIV_KEY}\nauthUser log nms priv\n"
    with snmptrapd(tmp_path, config) as trapd, served_api(runtime) as (app, url):
        context, page = admin_page(browser, app, url, admin.name)
        page.goto(url + "/ui/snmp")
        assert page.locator("#snmp-no-managers").is_visible()

        page.fill("#m-name", "nms")
        page.fill("#m-host", "127.0.0.1")
        page.fill("#m-port", str(trapd.port))
        page.check("input[name=version][value='3']")
        page.fill("#m-user", "nms")
        page.fill("#m-auth-key", "short")
        page.fill("#m-priv-key", PRIV_KEY)
        page.select_option("#m-type", "inform")
        page.click("#snmp-add button[type=submit]")
        error = page.locator("#snmp-add [data-error-for=auth_key]")
        error.wait_for(state="visible")
        assert "at least 8 characters" in error.inner_text()
        assert page.locator("#snmp-managers").count() == 0 and managers.list_managers(runtime) == []

        page.fill("#m-auth-key", AUTH_KEY)
        page.click("#snmp-add button[type=submit]")
        row = page.locator("tr[data-manager=nms]")
        row.wait_for(state="visible")  # the page reloaded with the new manager
        assert "nms (SHA256/AES, keys set)" in row.inner_text() and "inform" in row.inner_text()
        assert AUTH_KEY not in page.content() and PRIV_KEY not in page.content()

        row.get_by_role("button", name="Test").click()
        page.wait_for_url(re.compile(r"/ui/tasks/[^/]+$"))
        task_id = page.url.rsplit("/", 1)[1]
        final = wait_for(lambda: (t := show(runtime, SYSTEM, task_id)[0]).state in ("succeeded", "failed") and t,
                         "the snmp.test task to end")
        assert final.state == "succeeded" and final.result["acknowledged"] is True
        lines = trapd.wait_notifications(1)
        # One test notification; an inform answered late (a loaded machine) is sent again, the
        # same notification (same event id), and snmptrapd logs each copy.
        assert all("BHYPE-MIB::bhypeTestNotification" in line for line in lines), lines
        assert len({re.search(r"bhypeEventId\.0 = STRING: (\S+)", line).group(1) for line in lines}) == 1
        assert len(lines) <= final.result["attempts"]

        page.goto(url + "/ui/snmp")
        page.locator("tr[data-manager=nms]").get_by_role("button", name="Remove").click()
        page.click("#confirm-ok")
        page.locator("#snmp-no-managers").wait_for(state="visible")
        context.close()


def test_add_and_remove_an_agent_user_in_the_browser(browser, tmp_path, local_user):
    from bhype_snmp import agent_users

    pm = make_plugin_manager(load_entrypoints=True)
    require_webui(pm)
    runtime = build_runtime(make_settings(tmp_path / "data", auth={"account_recheck_interval": 3600}), pm)
    upgrade(runtime)
    admin = role_account(local_user, runtime)
    with served_api(runtime) as (app, url):
        context, page = admin_page(browser, app, url, admin.name)
        page.goto(url + "/ui/snmp")
        assert page.locator("#snmp-no-agent-users").is_visible()

        page.fill("#a-name", "poller")
        page.select_option("#a-auth-protocol", "SHA512")
        page.fill("#a-auth-key", AUTH_KEY)
        page.fill("#a-priv-key", "short")
        page.click("#snmp-agent-user-add button[type=submit]")
        error = page.locator("#snmp-agent-user-add [data-error-for=priv_key]")
        error.wait_for(state="visible")
        assert "at least 8 characters" in error.inner_text() and agent_users.list_users(runtime) == []

        page.fill("#a-priv-key", PRIV_KEY)
        page.click("#snmp-agent-user-add button[type=submit]")
        row = page.locator("tr[data-agent-user=poller]")
        row.wait_for(state="visible")  # the page reloaded with the new user
        assert "SHA512" in row.inner_text() and "AES" in row.inner_text()
        assert AUTH_KEY not in page.content() and PRIV_KEY not in page.content()
        [stored] = agent_users.list_users(runtime)
        assert (stored.auth_key, stored.priv_key) == (AUTH_KEY, PRIV_KEY)  # the agent can use them

        row.get_by_role("button", name="Remove").click()
        page.click("#confirm-ok")
        page.locator("#snmp-no-agent-users").wait_for(state="visible")
        assert agent_users.list_users(runtime) == []
        context.close()
