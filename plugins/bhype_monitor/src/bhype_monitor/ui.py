"""The monitor in the web UI, through the web UI's own hooks (``optionalhook``: a host without
the web UI still loads this plugin): a host panel on the dashboard, a "Performance" tab on each
VM's page (uPlot charts, live updates, a range picker) and live CPU and memory columns in the
VM list. The charts fetch ``/api/v1/monitor`` with the page's session, so they show exactly
what the API lets the caller see."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import Assets, DashboardPanel, UiRequest, VMColumn, VMTab, hookimpl, human_size
from bhype_monitor import live

WEB = Path(__file__).resolve().parent / "web"
RANGES = (("1h", 3600), ("6h", 6 * 3600), ("1d", 86400), ("7d", 7 * 86400), ("30d", 30 * 86400),
          ("1y", 365 * 86400))


def _vm_metrics(ui: UiRequest) -> dict[str, dict[str, Any]]:
    """The live metrics by VM name (the caller's rows are filtered by the web UI already)."""
    snapshot = live.get(ui.runtime) or {}
    return {vm["name"]: vm.get("metrics", {}) for vm in snapshot.get("vms", {}).values()}


def cpu_cells(ui: UiRequest, rows: Sequence[Any]) -> dict[str, str]:
    """CPU % of each listed VM (of one CPU, like top(1)); empty for a VM not running."""
    found = _vm_metrics(ui)
    return {row.name: f"{found[row.name]['cpu_percent']:.1f}" for row in rows
            if found.get(row.name, {}).get("cpu_percent") is not None}


def memory_cells(ui: UiRequest, rows: Sequence[Any]) -> dict[str, str]:
    """Resident memory of each listed VM's hypervisor process."""
    found = _vm_metrics(ui)
    return {row.name: human_size(int(found[row.name]["mem_rss"])) for row in rows
            if found.get(row.name, {}).get("mem_rss") is not None}


def host_panel(ui: UiRequest) -> dict[str, Any]:
    """What the dashboard's host panel starts with (the script then keeps it live)."""
    snapshot = live.get(ui.runtime) or {}
    return {"host": (snapshot.get("host") or {}).get("metrics", {}), "ranges": RANGES,
            "interval": snapshot.get("interval") or ui.runtime.settings.section("monitor").sample_interval_seconds}


def performance_tab(ui: UiRequest) -> dict[str, Any]:
    """The VM tab's range choices and refresh interval."""
    return {"ranges": RANGES, "interval": ui.runtime.settings.section("monitor").sample_interval_seconds}


@hookimpl(optionalhook=True)
def bhype_webui_register_assets(register: Callable[[Assets], None]) -> None:
    """``/ui/plugins/monitor/static/`` (the chart script) and the ``monitor/`` templates."""
    register(Assets("monitor", static_dir=WEB / "static", template_dir=WEB / "templates"))


@hookimpl(optionalhook=True)
def bhype_webui_register_dashboard_panels(register: Callable[[DashboardPanel], None]) -> None:
    """The host's CPU, memory, load and network, charted and live."""
    register(DashboardPanel("monitor-host", "Host performance", "monitor/host_panel.html", host_panel, order=50))


@hookimpl(optionalhook=True)
def bhype_webui_register_vm_tabs(register: Callable[[VMTab], None]) -> None:
    """A VM's CPU, memory, disk and network over a chosen range, live."""
    register(VMTab("performance", "Performance", "monitor/performance.html", performance_tab, order=20))


@hookimpl(optionalhook=True)
def bhype_webui_register_vm_columns(register: Callable[[VMColumn], None]) -> None:
    """Live CPU % and resident memory in the VM list."""
    register(VMColumn("monitor-cpu", "CPU %", cpu_cells, order=10))
    register(VMColumn("monitor-memory", "RSS", memory_cells, order=20))
