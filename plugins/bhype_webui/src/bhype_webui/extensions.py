"""The catalog of what other plugins register through the web UI's hooks
(:mod:`bhype_webui.hookspecs`; the records themselves are the core's :mod:`bhype_core.plugin_api`
ones), collected once per process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bhype_core.plugin_api import (
    Assets,
    Catalog,
    ContextFunction,
    DashboardPanel,
    NavEntry,
    Page,
    PluginError,
    UiRequest,
    VMColumn,
    VMTab,
    collect,
)

# The records are the core's (plugins build them through plugin_api); kept importable from here.
__all__ = ["Assets", "ContextFunction", "DashboardPanel", "NavEntry", "Page", "UiExtensions", "UiRequest", "VMColumn",
           "VMTab", "collect_extensions", "ui_extensions", "visible"]

# First path segments the web UI's own routes use: a plugin page may not take them.
RESERVED = frozenset({
    "", "vms", "tasks", "isos", "templates", "switches", "tokens", "notifications", "login", "logout",
    "static", "console", "plugins", "account",
})  # fmt: skip
CACHE_KEY = "webui.extensions"


@dataclass(frozen=True)
class UiExtensions:
    """Everything plugins registered through the web UI's hooks."""

    pages: Catalog[Page]
    vm_tabs: Catalog[VMTab]
    panels: Catalog[DashboardPanel]
    nav: Catalog[NavEntry]
    assets: Catalog[Assets]
    vm_columns: Catalog[VMColumn]

    def nav_entries(self, principal: Any) -> list[NavEntry]:
        """The navigation for ``principal``: registered entries plus pages with a label, in order."""
        entries = list(self.nav) + [
            NavEntry(page.name, page.nav_label, f"/ui/{page.path}", page.nav_order, page.admin_only)
            for page in self.pages if page.nav_label
        ]
        return sorted((e for e in entries if visible(e, principal)), key=lambda e: (e.order, e.label))

    def ordered_panels(self, principal: Any) -> list[DashboardPanel]:
        return sorted((p for p in self.panels if visible(p, principal)), key=lambda p: (p.order, p.name))

    def ordered_tabs(self, principal: Any) -> list[VMTab]:
        return sorted((t for t in self.vm_tabs if visible(t, principal)), key=lambda t: (t.order, t.name))

    def ordered_columns(self, principal: Any) -> list[VMColumn]:
        return sorted((c for c in self.vm_columns if visible(c, principal)), key=lambda c: (c.order, c.name))


def visible(record: Any, principal: Any) -> bool:
    """Admin-only records are shown to admins only."""
    return not record.admin_only or bool(getattr(principal, "is_admin", False))


def collect_extensions(pm: Any) -> UiExtensions:
    """Call every ``bhype_webui_register_*`` hook once.

    :raises PluginError: a name registered twice (naming both plugins), a page path the web UI
        uses itself, or a page name that clashes with a navigation key.
    """
    extensions = UiExtensions(
        pages=collect(pm, "bhype_webui_register_pages", "web UI page"),
        vm_tabs=collect(pm, "bhype_webui_register_vm_tabs", "VM tab"),
        panels=collect(pm, "bhype_webui_register_dashboard_panels", "dashboard panel"),
        nav=collect(pm, "bhype_webui_register_nav_entries", "navigation entry"),
        assets=collect(pm, "bhype_webui_register_assets", "web UI assets"),
        vm_columns=collect(pm, "bhype_webui_register_vm_columns", "VM list column"),
    )
    for page in extensions.pages:
        first = page.path.strip("/").split("/", 1)[0]
        if page.path != page.path.strip("/") or first in RESERVED or ".." in page.path.split("/"):
            own = ", ".join(sorted(RESERVED - {""}))
            raise PluginError(
                f"web UI page {page.name!r} of plugin {extensions.pages.plugin_of(page.name)!r}: path "
                f"{page.path!r} must be relative and not start with one of the web UI's own ({own})"
            )
        if page.nav_label and page.name in extensions.nav:
            raise PluginError(f"web UI page {page.name!r} and a navigation entry share the key {page.name!r}")
    return extensions


def ui_extensions(runtime: Any) -> UiExtensions:
    """The extensions of ``runtime``'s plugin manager (collected on first use, then kept)."""
    cached = runtime.extras.get(CACHE_KEY)
    if cached is None:
        cached = runtime.extras[CACHE_KEY] = collect_extensions(runtime.pm)
    return cached  # type: ignore[no-any-return]
