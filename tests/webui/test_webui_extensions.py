"""The web UI's extension hooks (issue 12) in the real app: a third-party plugin (``acme_ui``)
adds a page with a navigation entry, a VM tab, a dashboard panel and its assets; the web UI's
own navigation and host cards come through the same hooks. Once in Chromium too."""

from __future__ import annotations

import importlib.util
import inspect
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from acme_ui import AcmeUi
from pages_env import HTML, PagesEnv

from bhype_core.errors import PluginError
from bhype_core.hookspecs import hookimpl
from bhype_core.testing.api_server import served_app
from bhype_webui import hookspecs as webui_hookspecs
from bhype_webui.extensions import collect_extensions

WEBUI_HOOKS = ("bhype_webui_register_pages", "bhype_webui_register_vm_tabs",
               "bhype_webui_register_dashboard_panels", "bhype_webui_register_nav_entries",
               "bhype_webui_register_assets", "bhype_webui_register_vm_columns")


@pytest.fixture
def acme() -> AcmeUi:
    return AcmeUi()


@pytest.fixture
def env(tmp_path, acme) -> Iterator[PagesEnv]:
    made = PagesEnv(tmp_path, plugins=(("acme_ui", acme),), web_ui_only=True)
    yield made
    made.close()


def nav_labels(page: str) -> list[str]:
    nav = page.split('<nav aria-label="Main">', 1)[1].split("</nav>", 1)[0]
    return re.findall(r'<a href="[^"]*"(?: aria-current="page")?>([^<\n]+)', nav)


def test_the_plugins_page_renders_in_the_layout_with_its_nav_entry(env, acme):
    alice = env.client("alice")
    page = alice.get("/ui/backups", headers=HTML)
    assert page.status_code == 200
    assert '<p id="acme-page">Backups of alice: 3</p>' in page.text
    assert '<a href="/ui/backups" aria-current="page">Backups</a>' in page.text  # its entry is current
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert ("page", "alice") in acme.seen
    # The web UI's own entries come through the same hook, in order, the plugin's between them.
    assert nav_labels(page.text) == ["Dashboard", "VMs", "Create VM", "Tasks", "Backups", "ISOs", "Templates",
                                     "Switches", "API tokens", "Acme docs", "Notifications"]


def test_admin_only_pages_are_hidden_from_operators(env):
    alice, root = env.client("alice"), env.client("root", "admin")
    assert "Acme admin" not in nav_labels(alice.get("/ui/", headers=HTML).text)
    assert alice.get("/ui/acme-admin", headers=HTML).status_code == 404
    assert "Acme admin" in nav_labels(root.get("/ui/", headers=HTML).text)
    assert root.get("/ui/acme-admin", headers=HTML).status_code == 200
    assert env.client("alice").get("/ui/no-such-page", headers=HTML).status_code == 404


def test_the_vm_tab_is_linked_and_rendered_for_a_vm_the_caller_may_see(env, acme):
    [name] = env.add_vms("alice", 1)
    alice = env.client("alice")
    overview = alice.get(f"/ui/vms/{name}", headers=HTML).text
    assert f'<a href="/ui/vms/{name}?tab=backups">Backups</a>' in overview
    assert "Task history" in overview  # the overview is the page as before
    tab = alice.get(f"/ui/vms/{name}?tab=backups", headers=HTML)
    assert tab.status_code == 200
    assert f'<p id="acme-tab">{name} has 1 disk(s); last backup yesterday</p>' in tab.text
    assert "Task history" not in tab.text and ("tab", name) in acme.seen
    assert alice.get(f"/ui/vms/{name}?tab=nope", headers=HTML).status_code == 404
    # Another operator's VM stays "not found", tab or not: the VM page's rules come first.
    assert env.client("bob").get(f"/ui/vms/{name}?tab=backups", headers=HTML).status_code == 404


def test_the_dashboard_panel_sits_between_the_host_cards_in_its_order(env, acme):
    page = env.client("alice").get("/ui/", headers=HTML).text
    host = page.split('<section aria-labelledby="host-title" class="cards">', 1)[1].split("</section>", 1)[0]
    # (Other installed plugins' panels, such as the monitor's "Host performance", may follow.)
    assert re.findall(r"<h3>([^<]+)</h3>", host)[:4] == ["CPU", "Backup jobs", "Memory", "Storage"]
    assert '<p class="big">7 <span class="unit">jobs</span></p>' in host and ("panel", "alice") in acme.seen


def test_plugin_assets_are_served_and_confined(env):
    anonymous = env.client()
    script = anonymous.get("/ui/plugins/acme_ui/static/acme.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    # A client normalises a literal "..": encoded, it reaches the route and is refused there.
    assert anonymous.get("/ui/plugins/acme_ui/static/%2e%2e/templates/panel.html").status_code == 404
    assert anonymous.get("/ui/plugins/nobody/static/acme.js").status_code == 404
    # Normalised, the path is no asset route at all, and no page for a logged-in user either.
    assert env.client("alice").get("/ui/plugins/acme_ui/static/../templates/panel.html",
                                   headers=HTML).status_code == 404


def test_a_page_on_the_web_uis_own_paths_is_refused_naming_the_plugin(tmp_path):
    env = PagesEnv(tmp_path, plugins=(("acme_ui", AcmeUi(page_path="vms/backups")),), web_ui_only=True)
    try:
        with pytest.raises(PluginError, match="'acme-backups' of plugin 'acme_ui': path 'vms/backups'"):
            collect_extensions(env.runtime.pm)
        # No page renders half a UI: each answers the error (the layout itself needs the catalog).
        page = env.client("alice").get("/ui/vms", headers=HTML)
        assert page.status_code == 500 and "plugin 'acme_ui'" in page.json()["error"]["message"]
    finally:
        env.close()


def test_a_plugin_with_web_ui_hooks_loads_without_the_web_ui():
    """``optionalhook`` implementations: a host without the web UI (disabled here) still loads
    the plugin; the web UI's hooks are simply never called."""
    from bhype_core.plugins import make_plugin_manager

    pm = make_plugin_manager(load_entrypoints=True, disabled=["webui"], plugins=(("acme_ui", AcmeUi()),))
    assert pm.has_plugin("acme_ui") and not pm.has_plugin("webui")
    assert not hasattr(pm.hook, "bhype_webui_register_pages") or not pm.hook.bhype_webui_register_pages.has_spec()


def test_the_web_ui_hooks_are_documented_where_declared():
    """The web UI's hookspecs follow the core's rules (the core's meta-test covers only
    ``bhype_core.hookspecs``): documented, every parameter described, named by this test."""
    meta_path = Path(__file__).resolve().parents[1] / "core" / "test_hookspecs_meta.py"
    spec = importlib.util.spec_from_file_location("hookspecs_meta", meta_path)
    meta = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(meta)
    specs = meta.hook_specs(webui_hookspecs)
    assert sorted(specs) == sorted(WEBUI_HOOKS)
    assert [p for name, fn in specs.items() for p in meta.documentation_problems(name, fn)] == []
    assert all(inspect.getdoc(fn) for fn in specs.values())


@pytest.mark.slow
def test_the_plugins_page_tab_and_panel_in_chromium(env, browser):
    """The same three additions in a real browser: the panel on the dashboard, the nav entry to
    the page (whose own script, served from the plugin's static directory, runs under the CSP),
    and the VM tab."""
    from browser_kit import ARTIFACTS, session_page

    [name] = env.add_vms("alice", 1)
    alice = env.client("alice")
    with served_app(env.app) as url:
        page, errors = session_page(browser, url, alice, height=800)
        page.goto(url + "/ui/")
        assert page.locator("#acme-panel h3").inner_text() == "Backup jobs"
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Backups").click()
        page.wait_for_url(re.compile(r"/ui/backups$"))
        assert page.locator("#acme-page").inner_text() == "Backups of alice: 3"
        page.locator("#acme-script").wait_for(state="visible")  # the plugin's script ran
        page.goto(f"{url}/ui/vms/{name}")
        page.get_by_role("navigation", name="VM sections").get_by_role("link", name="Backups").click()
        page.wait_for_url(re.compile(r"\?tab=backups$"))
        assert "last backup yesterday" in page.locator("#acme-tab").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "webui-plugin-tab.png"), full_page=True)
        page.context.close()
    assert errors == []


class Columns:
    """Two VM-list columns: one answers from the rows it is given, one always fails."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def _owner_upper(self, ui, rows):
        self.asked.append([row.name for row in rows])
        return {row.name: row.owner.upper() for row in rows}

    @staticmethod
    def _broken(ui, rows):
        raise RuntimeError("column bug")

    @hookimpl(optionalhook=True)
    def bhype_webui_register_vm_columns(self, register):
        from bhype_core.plugin_api import VMColumn

        register(VMColumn("shout", "Shout", self._owner_upper, order=1, numeric=False))
        register(VMColumn("broken", "Broken", self._broken, order=2))
        register(VMColumn("secret", "Secret", self._owner_upper, order=3, admin_only=True))


def test_vm_list_columns_from_a_plugin(tmp_path):
    columns = Columns()
    env = PagesEnv(tmp_path, plugins=(("columns", columns),))
    try:
        [name] = env.add_vms("alice", 1)
        env.add_vms("bob", 1)
        page = env.client("alice").get("/ui/vms", headers=HTML).text
        assert '<th scope="col" data-column="shout">Shout</th>' in page
        assert 'data-column="shout">ALICE</td>' in page and "BOB" not in page
        assert '<td class="num" data-column="broken"></td>' in page  # a failing column: empty cells
        assert "Secret" not in page  # admin-only
        assert columns.asked[-1] == [name]  # asked once per page, with the caller's rows only
        assert "Secret" in env.client("root", "admin").get("/ui/vms", headers=HTML).text
    finally:
        env.close()
