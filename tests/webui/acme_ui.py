"""A third-party plugin that shows itself in the web UI only through the web UI's hooks
(issue 12), importing nothing but bhype_core.plugin_api: a page with a navigation entry, a VM
tab, a dashboard panel and its own assets. Its implementations are ``optionalhook``: without
the web UI the plugin still loads."""

from __future__ import annotations

from pathlib import Path

from bhype_core.plugin_api import Assets, DashboardPanel, NavEntry, Page, UiRequest, VMTab, hookimpl

HERE = Path(__file__).resolve().parent / "fixtures" / "acme_ui"


class AcmeUi:
    """Registers one of everything; ``seen`` records who each context function saw."""

    def __init__(self, page_path: str = "backups") -> None:
        self.page_path = page_path
        self.seen: list[tuple[str, str]] = []

    def _page(self, ui: UiRequest) -> dict:
        self.seen.append(("page", ui.principal.name))
        return {"count": 3}

    def _tab(self, ui: UiRequest) -> dict:
        self.seen.append(("tab", ui.vm.name))
        return {"last": "yesterday"}

    def _panel(self, ui: UiRequest) -> dict:
        self.seen.append(("panel", ui.principal.name))
        return {"jobs": 7}

    @hookimpl(optionalhook=True)
    def bhype_webui_register_pages(self, register):
        register(Page("acme-backups", self.page_path, "Backups", "acme_ui/backups.html", self._page,
                      nav_label="Backups", nav_order=35))
        register(Page("acme-admin", "acme-admin", "Acme admin", "acme_ui/backups.html", self._page,
                      nav_label="Acme admin", admin_only=True))

    @hookimpl(optionalhook=True)
    def bhype_webui_register_vm_tabs(self, register):
        register(VMTab("backups", "Backups", "acme_ui/vm_tab.html", self._tab))

    @hookimpl(optionalhook=True)
    def bhype_webui_register_dashboard_panels(self, register):
        register(DashboardPanel("acme-jobs", "Backup jobs", "acme_ui/panel.html", self._panel, order=15))

    @hookimpl(optionalhook=True)
    def bhype_webui_register_nav_entries(self, register):
        register(NavEntry("acme-docs", "Acme docs", "/ui/backups", order=90))

    @hookimpl(optionalhook=True)
    def bhype_webui_register_assets(self, register):
        register(Assets("acme_ui", static_dir=HERE / "static", template_dir=HERE / "templates"))
