"""The records a plugin registers to show itself in a web front end: pages, VM tabs, dashboard
panels, navigation entries and asset directories (issue 12).

Plain data, declared in the core so that any plugin can build them through
:mod:`bhype_core.plugin_api` without importing the web UI plugin, which owns the hooks that
receive them (``bhype_webui.hookspecs``: ``bhype_webui_register_pages`` …) and renders them. A
plugin implements those hooks with ``@hookimpl(optionalhook=True)``, so it still loads on a host
without the web UI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class UiRequest:
    """What a ``context`` function gets: the request, the runtime, the caller, and for a VM tab
    the VM's row (``vm``, one the caller may see)."""

    request: Any
    runtime: Any
    principal: Any
    vm: Any = None


ContextFunction = Callable[[UiRequest], Mapping[str, Any]]


@dataclass(frozen=True)
class NavEntry:
    """One link of the main navigation; ``key`` marks it current on pages of that ``nav``."""

    key: str
    label: str
    href: str
    order: int = 100
    admin_only: bool = False

    @property
    def name(self) -> str:
        return self.key


@dataclass(frozen=True)
class Page:
    """A page at ``/ui/<path>`` rendering ``template`` (which extends ``base.html``).

    :param context: values for the template (called per request, in a thread).
    :param nav_label: also show a navigation entry (at ``nav_order``).
    """

    name: str
    path: str
    title: str
    template: str
    context: ContextFunction | None = None
    nav_label: str | None = None
    nav_order: int = 100
    admin_only: bool = False


@dataclass(frozen=True)
class VMTab:
    """A tab on the VM page; ``template`` is a fragment (no layout)."""

    name: str
    label: str
    template: str
    context: ContextFunction | None = None
    order: int = 100
    admin_only: bool = False


@dataclass(frozen=True)
class VMColumn:
    """An extra column of the VM list (live CPU, last backup …).

    :param values: called once per rendered page (in a thread) with the request and the page's
        VM rows (each one the caller may see); returns the cell text by VM name (a VM missing
        from the answer gets an empty cell). Text only: it is autoescaped.
    :param numeric: right-aligned like the list's own number columns.
    """

    name: str
    label: str
    values: Callable[[UiRequest, Sequence[Any]], Mapping[str, str]]
    order: int = 100
    admin_only: bool = False
    numeric: bool = True


@dataclass(frozen=True)
class DashboardPanel:
    """A card on the dashboard; ``template`` is a fragment (an ``<article class="card">``)."""

    name: str
    title: str
    template: str
    context: ContextFunction | None = None
    order: int = 100
    admin_only: bool = False


@dataclass(frozen=True)
class Assets:
    """A plugin's directories: ``static_dir`` served at ``/ui/plugins/<name>/static/``,
    ``template_dir`` searched for ``<name>/<file>`` templates."""

    name: str
    static_dir: Path | None = None
    template_dir: Path | None = None
