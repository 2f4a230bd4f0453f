"""The monitor in the web UI, through the web UI's own hooks (``optionalhook``: a host without
the web UI still loads this plugin): a host panel on the dashboard, a "Performance" tab on each
VM's page (uPlot charts, live updates, a range picker) and live CPU and memory columns in the
VM list. The charts fetch ``/api/v1/monitor`` with the page's session, so they show exactly
what the API lets the caller see."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import (
    Assets,
    DashboardPanel,
    NotFound,
    Page,
    UiRequest,
    VMColumn,
    VMTab,
    group_hosts,
    hookimpl,
    human_size,
    local_host_name,
)
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


def _host_row(state: Any) -> dict[str, Any]:
    """What the Hosts pages show of a registered host (sizes made readable)."""
    data = state.to_dict()
    capacity = data.get("capacity") or {}
    memory = capacity.get("memory_total")
    free = capacity.get("memory_free")
    data["cpus"] = capacity.get("cpus") or "-"
    data["switches"] = capacity.get("switches") or []
    data["memory"] = f"{human_size(free)} free of {human_size(memory)}" if memory and free is not None else "-"
    data["stores"] = [f"{name} ({entry.get('backend')}, {human_size(entry['free'])} free)"
                      if entry.get("free") is not None else f"{name} ({entry.get('backend')})"
                      for name, entry in sorted((capacity.get("datastores") or {}).items())]
    return data


def hosts_page(ui: UiRequest) -> dict[str, Any]:
    """The Hosts page: every host of the group from the registry (issue 22)."""
    return {"hosts": [_host_row(state) for state in group_hosts(ui.runtime)], "here": local_host_name(ui.runtime)}


def host_page(ui: UiRequest) -> dict[str, Any]:
    """One host's page (``?name=``): its registry row and its recorded monitoring series.

    :raises NotFound: no such host in the group.
    """
    name = ui.request.query_params.get("name") or local_host_name(ui.runtime)
    found = next((state for state in group_hosts(ui.runtime) if state.host.name == name), None)
    if found is None:
        raise NotFound(f"no host named {name!r} in this group")
    return {"host": _host_row(found), "ranges": RANGES,
            "interval": ui.runtime.settings.section("monitor").sample_interval_seconds}


@hookimpl(optionalhook=True)
def bhype_webui_register_pages(register: Callable[[Page], None]) -> None:
    """"Hosts" (the group's registry: state, versions, capacity) and each host's page with its
    monitoring charts (``/ui/hosts/host?name=…``)."""
    register(Page("monitor-hosts", "hosts", "Hosts", "monitor/hosts.html", hosts_page, nav_label="Hosts",
                  nav_order=15))
    register(Page("monitor-host", "hosts/host", "Host", "monitor/host.html", host_page))


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
