"""The web UI pages: Services, and Host → Updates (findings until resolved; new ones pop live
as the web UI's own notification popups, this page refreshes its list when they arrive)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import Assets, Page, UiRequest, hookimpl

HERE = Path(__file__).resolve().parent


def services_context(ui: UiRequest) -> dict[str, Any]:
    """The Services page: the allow-listed services as last probed."""
    from bhype_hostops.service_tasks import service_list

    return {"services": service_list(ui.runtime)}


def updates_context(ui: UiRequest) -> dict[str, Any]:
    """The Updates page: open findings and the last check run."""
    from bhype_hostops.findings_store import last_run, list_findings

    return {"findings": list_findings(ui.runtime, "open"), "last_run": last_run(ui.runtime)}


@hookimpl(optionalhook=True)
def bhype_webui_register_assets(register: Callable[[Assets], None]) -> None:
    """Templates under ``hostops/…`` and the updates page's script."""
    register(Assets("hostops", static_dir=HERE / "static", template_dir=HERE / "templates"))


@hookimpl(optionalhook=True)
def bhype_webui_register_pages(register: Callable[[Page], None]) -> None:
    """``/ui/services`` and ``/ui/host/updates`` (admins)."""
    register(Page("hostops-services", "services", "Services", "hostops/services.html", services_context,
                  nav_label="Services", nav_order=70, admin_only=True))
    register(Page("hostops-updates", "host/updates", "Host → Updates", "hostops/updates.html", updates_context,
                  nav_label="Updates", nav_order=72, admin_only=True))
