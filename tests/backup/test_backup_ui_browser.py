"""The Backups page and a VM's Backups tab in a real browser: Playwright driving Debian's
chromium against a real ``bhype serve`` (every installed plugin, in-process worker, QEMU under
TCG), real PAM accounts, a local backup target and real backups.

Covered: the page lists the target, the job and the point (size, duration, mode, verify and
drill state); a backup waiting for its VM's lock shows in "Running" and its progress bar
follows the task's live stream to the end; Verify from the page turns the point's state to
``ok``; the VM's owner restores a point as a new VM from the tab; an operator cannot open the
admin page. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bhype_core.testing.users import LocalUsers, require_user_tools

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "webui"))  # the web UI test helpers
from browser_kit import ARTIFACTS, launch_chromium  # noqa: E402
from ui_server import BhypeServer  # noqa: E402

pytestmark = [pytest.mark.guest, pytest.mark.slow]

WAIT = 120_000  # ms; a loaded 2-core machine (a bound, not a timing assertion)
TASK_WAIT = 240.0  # s

API = """async ([method, url, body]) => {
  const name = document.body.dataset.csrfCookie + '=';
  const cookie = document.cookie.split('; ').find((c) => c.startsWith(name));
  const headers = {'Content-Type': 'application/json', 'Accept': 'application/json',
                   'X-CSRF-Token': cookie ? decodeURIComponent(cookie.slice(name.length)) : ''};
  const response = await fetch(url, {method, headers, body: body === null ? undefined : JSON.stringify(body)});
  return {status: response.status, body: await response.json().catch(() => null)};
}"""


def call(page: Any, method: str, url: str, body: Any = None) -> dict[str, Any]:
    return page.evaluate(API, [method, url, body])


def wait_task(page: Any, task_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TASK_WAIT
    while True:
        task = call(page, "GET", f"/api/v1/tasks/{task_id}")["body"]
        if task["state"] in ("succeeded", "failed", "cancelled", "interrupted"):
            return task
        assert time.monotonic() < deadline, f"task {task_id} still {task['state']}"
        time.sleep(0.5)


def ok(page: Any, method: str, url: str, body: Any = None) -> dict[str, Any]:
    answer = call(page, method, url, body)
    assert answer["status"] == 202, answer
    task = wait_task(page, answer["body"]["task_id"])
    assert task["state"] == "succeeded", task
    return task["result"]


def login(page: Any, server: BhypeServer, user: Any, path: str) -> None:
    page.goto(server.url + path)
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("User name").fill(user.name)
    page.get_by_label("Password").fill(user.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(re.escape(path.split("?")[0])))


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"backup-ui-{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def test_backups_page_and_vm_tab(tiny_guest, browser):
    require_user_tools()
    with LocalUsers() as users:
        admins, operators = users.group(), users.group()
        alice, admin = users(groups=[operators]), users(groups=[admins])
        server = BhypeServer(tiny_guest, pam_service=users.pam_service(), admin_group=admins.name,
                             operator_group=operators.name).start()
        target_dir = server.root / "bk"
        target_dir.mkdir()
        try:
            owner = browser.new_context()
            mine = owner.new_page()
            login(mine, server, alice, "/ui/")
            # "spec", not "overrides" (the task's name): the API ignored that key, so the VM had
            # no disk and its point showed 1.2 KiB (its configuration only).
            ok(mine, "POST", "/api/v1/vms", {"name": "web", "template": "tiny", "spec": {"disks": [{"size": "64M"}]}})
            boss = browser.new_context()
            page = boss.new_page()
            login(page, server, admin, "/ui/")
            ok(page, "POST", "/api/v1/backup/targets", {"name": "usb", "destination": str(target_dir)})
            point = ok(page, "POST", "/api/v1/backup/run", {"vm": "web", "target": "usb", "mode": "stop"})["point"]
            job = call(page, "POST", "/api/v1/backup/jobs", {"name": "nightly", "target": "usb", "vms": ["web"],
                                                              "retention": "last=3 daily=7"})
            assert job["status"] == 201, job

            # A backup waiting for the VM's lock (another task holds it), then let go.
            holder = call(page, "POST", "/api/v1/tasks", {"kind": "core.ping",
                                                          "arguments": {"sleep": 600, "locks": ["vm:web"]}})
            assert holder["status"] == 202, holder
            waiting = call(page, "POST", "/api/v1/backup/run", {"vm": "web", "target": "usb", "mode": "stop"})
            assert waiting["status"] == 202, waiting
            waiting_id = waiting["body"]["task_id"]

            page.goto(server.url + "/ui/backups")
            page.locator("h1", has_text="Backups").wait_for(timeout=WAIT)
            targets = page.locator("table.backup-targets")
            assert "usb" in targets.inner_text() and str(target_dir) in targets.inner_text()
            jobs = page.locator("table.backup-jobs tr[data-job='nightly']")
            assert "vm:web" in jobs.inner_text() and "last=3 daily=7" in jobs.inner_text()
            row = page.locator(f"table.backup-points tr[data-point='{point}']")
            cells = row.locator("td").all_inner_texts()
            assert cells[1] == "web" and cells[2] == "usb" and cells[7] == "stop"
            assert cells[4] == "64.0 MiB" and cells[5].endswith("iB") and re.fullmatch(r"\d+m \d\ds", cells[6])
            assert cells[8] == "none" and cells[9] == "none"
            running = page.locator(f".backup-task[data-task-id='{waiting_id}']")
            assert "backup.run" in running.inner_text()
            shot(page, "page-waiting")
            # The holder goes: the backup runs, and its bar follows the stream to the end.
            holder_id = holder["body"].get("task_id") or holder["body"]["id"]
            assert call(page, "POST", f"/api/v1/tasks/{holder_id}/cancel")["status"] in (200, 202)
            page.wait_for_selector(f".backup-task[data-task-id='{waiting_id}'].backup-ended", timeout=WAIT)
            assert int(running.locator("progress").get_attribute("value") or "0") > 0
            assert wait_task(page, waiting_id)["state"] == "succeeded"

            # Verify from the page.
            page.reload()
            page.locator(f"tr[data-point='{point}'] button.backup-verify").click()
            page.get_by_text(f"verify of point {point}: queued").wait_for(timeout=WAIT)
            deadline = time.monotonic() + TASK_WAIT
            while page.locator(f"tr[data-point='{point}'] td.verify-ok").count() == 0:
                assert time.monotonic() < deadline, "the point was never shown verified"
                time.sleep(1)
                page.reload()
            shot(page, "page")

            # The owner's VM tab: their points, restore as a new VM.
            mine.goto(server.url + "/ui/vms/web?tab=backups")
            tab = mine.locator("#vm-tab")
            tab.get_by_role("heading", name="Backups of web").wait_for(timeout=WAIT)
            assert tab.locator(f"tr[data-point='{point}']").count() == 1
            tab.get_by_label(f"Restore point {point} as").fill("web-copy")
            tab.locator(f"tr[data-point='{point}'] button.backup-restore-as").click()
            mine.get_by_text(f"restore of point {point}: queued").wait_for(timeout=WAIT)
            deadline = time.monotonic() + TASK_WAIT
            while call(mine, "GET", "/api/v1/vms/web-copy")["status"] != 200:
                assert time.monotonic() < deadline, "the restored VM never appeared"
                time.sleep(1)
            shot(mine, "vm-tab")
            # An operator cannot open the admin page.
            denied = mine.goto(server.url + "/ui/backups")
            assert denied is not None and denied.status in (403, 404)
        finally:
            server.stop()
            server.cleanup()
