"""The pages without a browser: the real app (every installed plugin, SQLite), real sessions.

Login redirects, what each user may see (the core's visibility rules), the VM list's server-side
filter and pages, htmx fragments, security headers, and CSRF on the API the pages call.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from html.parser import HTMLParser

import pytest
from pages_env import HTML, PagesEnv

from bhype_core.auth.principal import Principal
from bhype_core.tasks import service

PAGES = ["/ui/", "/ui/vms", "/ui/vms/new", "/ui/isos", "/ui/templates", "/ui/switches", "/ui/tasks",
         "/ui/tokens", "/ui/notifications"]


@pytest.fixture
def env(tmp_path) -> Iterator[PagesEnv]:
    made = PagesEnv(tmp_path, webui={"vm_page_size": 50})
    yield made
    made.close()


def rows(html: str) -> list[str]:
    """The VM names in a VM list page, in order."""
    return re.findall(r'<tr data-vm-id="\d+" data-vm-name="([^"]+)"', html)


def test_a_browser_without_a_login_goes_to_the_login_page_and_back(env):
    anonymous = env.client()
    page = anonymous.get("/ui/vms?q=web&page=2", headers=HTML, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=/ui/vms%3Fq%3Dweb%26page%3D2"
    login = anonymous.get(page.headers["location"], headers=HTML)
    assert login.status_code == 200 and 'name="password"' in login.text
    assert 'action="/ui/login?next=%2Fui%2Fvms%3Fq%3Dweb%26page%3D2"' in login.text

    # htmx swapping a fragment is told where to go instead of getting a login page to swap in.
    fragment = anonymous.get("/ui/vms", headers={"HX-Request": "true", "HX-Current-URL": "http://h/ui/vms?q=a"})
    assert fragment.status_code == 401 and fragment.headers["HX-Redirect"] == "/ui/login?next=/ui/vms%3Fq%3Da"
    # Scripts and API clients keep the API's answer.
    api = anonymous.get("/ui/vms")
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"


def test_an_ended_session_says_so_and_drops_the_cookie(env):
    client = env.client("alice")
    client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": client.csrf})
    client.cookies.set("bhype_session", "ended-or-forged")
    page = client.get("/ui/", headers=HTML, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].endswith("&expired=1")
    assert any(h.startswith("bhype_session=") and "Max-Age=0" in h for h in page.headers.get_list("set-cookie"))
    assert "Your session has ended" in client.get(page.headers["location"], headers=HTML).text


@pytest.mark.parametrize("role", ["operator", "admin"])
def test_every_page_renders_with_strict_headers_and_no_inline_script(env, role):
    env.add_vms("alice", 3)
    client = env.client("alice", role)
    for path in PAGES + ["/ui/vms/alice-0001"]:
        page = client.get(path, headers=HTML)
        assert page.status_code == 200, (path, page.text[:500])
        assert "script-src" not in page.headers["content-security-policy"]  # default-src 'self' only
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None, path
        assert 'data-csrf-cookie="bhype_session_csrf"' in page.text
        assert f'<span>alice <span class="role">{role}</span>' in page.text


def test_the_vm_list_is_paged_filtered_and_sorted_by_the_server(env):
    env.add_vms("alice", 120, prefix="web")
    env.add_vms("alice", 3, prefix="db", state="running")
    env.add_vms("bob", 5)
    alice = env.client("alice")

    first = alice.get("/ui/vms", headers=HTML).text
    assert len(rows(first)) == 50 and rows(first)[0] == "db-0000" and "1–50 of 123 VMs" in first
    last = alice.get("/ui/vms?page=3", headers=HTML).text
    assert rows(last) == [f"web-{i:04d}" for i in range(97, 120)] and "101–123 of 123" in last
    assert rows(alice.get("/ui/vms?page=99", headers=HTML).text) == rows(last)  # past the end: the last page

    found = alice.get("/ui/vms?q=web-011", headers=HTML).text
    assert rows(found) == [f"web-{i:04d}" for i in range(110, 120)]
    assert rows(alice.get("/ui/vms?state=running", headers=HTML).text) == ["db-0000", "db-0001", "db-0002"]
    assert rows(alice.get("/ui/vms?q=100%25_", headers=HTML).text) == []  # LIKE wildcards are literal
    by_state = rows(alice.get("/ui/vms?sort=state", headers=HTML).text)
    assert by_state[:3] == ["db-0000", "db-0001", "db-0002"]  # "running" sorts before "stopped"
    assert not any(name.startswith("bob-") for name in rows(first))
    assert rows(alice.get("/ui/vms?owner=bob", headers=HTML).text) == rows(first)  # owner filter: admins only

    admin = env.client("root", "admin")
    assert rows(admin.get("/ui/vms?owner=bob", headers=HTML).text) == [f"bob-{i:04d}" for i in range(5)]
    assert "1–50 of 128 VMs" in admin.get("/ui/vms", headers=HTML).text


def test_htmx_gets_the_table_alone(env):
    env.add_vms("alice", 2)
    fragment = env.client("alice").get("/ui/vms?q=0001", headers={"HX-Request": "true", "HX-Target": "vm-table"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<div id="vm-table"') and "<html" not in fragment.text
    assert rows(fragment.text) == ["alice-0001"]


def test_another_users_vm_and_task_are_not_found(env):
    (vm,) = env.add_vms("alice", 1)
    task = service.submit(env.runtime, Principal("alice", "operator"), "core.ping", {})
    bob = env.client("bob")
    for path, message in ((f"/ui/vms/{vm}", f"no VM named '{vm}'"), (f"/ui/tasks/{task.id}", f"no task {task.id}")):
        page = bob.get(path, headers=HTML)
        assert page.status_code == 404 and message in html.unescape(page.text)
    assert task.id not in bob.get("/ui/tasks", headers=HTML).text
    assert vm not in bob.get("/ui/", headers=HTML).text
    # The owner and an admin see both.
    assert env.client("alice").get(f"/ui/tasks/{task.id}", headers=HTML).status_code == 200
    admin = env.client("root", "admin")
    assert admin.get(f"/ui/vms/{vm}", headers=HTML).status_code == 200
    assert task.id not in admin.get("/ui/tasks", headers=HTML).text  # "mine" by default
    assert task.id in admin.get("/ui/tasks?scope=all", headers=HTML).text
    assert task.id in admin.get("/ui/tasks?scope=all&user=alice", headers=HTML).text
    assert task.id not in bob.get("/ui/tasks?scope=all&user=alice", headers=HTML).text  # operators: own only


def test_state_changes_through_the_api_need_the_csrf_token(env):
    (vm,) = env.add_vms("alice", 1)
    alice = env.client("alice")
    refused = alice.post(f"/api/v1/vms/{vm}/start")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    wrong = alice.post(f"/api/v1/vms/{vm}/start", headers={"X-CSRF-Token": "not-the-token"})
    assert wrong.status_code == 403
    refused_read = alice.post("/api/v1/webui/notifications/read", json={})
    assert refused_read.status_code == 403
    accepted = alice.post(f"/api/v1/vms/{vm}/start", headers={"X-CSRF-Token": alice.csrf})
    assert accepted.status_code == 202 and accepted.json()["kind"] == "vm.start"
    assert service.visible_task(env.runtime, _principal("alice"), accepted.json()["task_id"]).state == "queued"


def test_the_wizard_offers_templates_isos_and_switches(env):
    client = env.client("alice")
    page = client.get("/ui/vms/new?template=alpine", headers=HTML)
    assert page.status_code == 200
    assert '<option value="alpine" selected>' in page.text
    assert 'name="spec.memory"' in page.text and 'name="spec.nics.0.switch"' in page.text
    assert 'name="owner"' not in page.text  # creating for someone else is for admins
    assert 'name="owner"' in env.client("root", "admin").get("/ui/vms/new", headers=HTML).text
    missing = client.get("/ui/vms/new?template=nope", headers=HTML)
    assert missing.status_code == 404 and "no template named 'nope'" in html.unescape(missing.text)


def _principal(name: str, role: str = "operator"):
    from bhype_core.api.principal import Principal

    return Principal(name, role)  # type: ignore[arg-type]


class _ConfirmTexts(HTMLParser):
    """Every ``data-confirm`` attribute of a page, as the browser reads it."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.texts.extend(value or "" for name, value in attrs if name == "data-confirm")


def test_every_confirmation_is_a_whole_sentence(env):
    # A macro once passed ' data-confirm="…"' as pre-built markup; autoescaping turned it into an
    # unquoted attribute, and the Force stop dialog read only '"Power'.
    env.add_vms("alice", 1)
    client = env.client("alice", "admin")
    texts = []
    for path in PAGES + ["/ui/vms/alice-0000"]:
        parser = _ConfirmTexts()
        parser.feed(client.get(path, headers=HTML).text)
        texts += parser.texts
    assert "Power alice-0000 off at once, without a guest shutdown?" in texts
    assert "Destroy VM alice-0000? This cannot be undone." in texts
    for text in texts:
        assert re.fullmatch(r"[A-Z][^\"<>]*[?.]", text), text


def test_a_running_vm_offers_suspend_and_a_suspended_one_a_fresh_start(env):
    from sqlmodel import Session, select

    from bhype_core.tasks import store
    from bhype_core.vm.models import VM

    (running,) = env.add_vms("alice", 1, prefix="run", state="running")
    (saved,) = env.add_vms("alice", 1, prefix="saved")
    with Session(env.runtime.engine) as db:
        row = db.exec(select(VM).where(VM.name == saved)).one()
        row.status = {"state": "stopped", "suspended": {"at": "2026-12-08T00:10:00Z", "size": 2**26}}
        db.add(row)
        db.commit()
    client = env.client("alice")

    page = client.get(f"/ui/vms/{running}", headers=HTML).text
    suspend = re.search(r'<button[^>]*data-api="POST /api/v1/vms/run-0000/suspend"[^>]*>', page)
    assert suspend and " disabled" not in suspend.group(0)
    assert "Suspended to disk" not in page

    page = client.get(f"/ui/vms/{saved}", headers=HTML).text
    assert re.search(r'<button[^>]*data-api="POST /api/v1/vms/saved-0000/suspend"[^>]*disabled', page)
    assert "Suspended to disk at 2026-12-08T00:10:00Z: Start resumes it where it was." in page
    fresh = re.search(r'<button[^>]*data-api="POST /api/v1/vms/saved-0000/start\?discard_saved_state=true"[^>]*>', page)
    assert fresh and " disabled" not in fresh.group(0)
    assert "Throw away the saved memory of saved-0000 and boot it from its disk?" in html.unescape(fresh.group(0))

    # The button's request is what the API takes: the fresh start is queued with the flag.
    accepted = client.post(f"/api/v1/vms/{saved}/start?discard_saved_state=true", headers={"X-CSRF-Token": client.csrf})
    assert accepted.status_code == 202, accepted.text
    task = store.get_task(env.runtime.engine, accepted.json()["task_id"])
    assert (task.kind, task.arguments["discard_saved_state"]) == ("vm.start", True)
