"""The web UI's own hooks (issue 12): how other plugins add pages, VM-page tabs, dashboard
panels, navigation entries and asset directories without editing this plugin.

Like datasette's ``register_routes``/``menu_links``/``extra_template_vars``, but in bHype's
start-up grammar: each hook is ``bhype_webui_register_<things>(register)`` and the plugin calls
``register`` with a typed record from :mod:`bhype_webui.extensions`. The web UI adds these
specs to the plugin manager itself (``bhype_add_hookspecs``). Mark implementations
``@hookimpl(optionalhook=True)`` (pluggy's own flag): a host without the web UI (not installed,
or disabled) then still loads the plugin, its web UI hooks simply never called; without the
flag the plugin manager refuses a hook nobody declared.

Records are collected once per process, when the first page is rendered
(``extensions.ui_extensions``); two plugins registering the same name, or a page on one of the
web UI's own paths, is then an error naming the plugin (every page answers it until fixed).
Templates a record names are Jinja2 templates looked up first in the web UI's own ``templates/``
and then, as ``<assets name>/<file>``, in the ``template_dir`` of an
:class:`~bhype_webui.extensions.Assets` record; they may extend ``base.html`` (pages) and use
the macros of ``macros.html``. Everything a record's ``context`` function returns is autoescaped
in the template; it runs in a worker thread with the caller's principal and must apply the same
visibility rules the API applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from bhype_webui.extensions import Assets, DashboardPanel, NavEntry, Page, VMColumn, VMTab

hookspec = pluggy.HookspecMarker("bhype")


@hookspec
def bhype_webui_register_pages(register: Callable[[Page], None]) -> None:
    """Add pages to the web UI: each :class:`~bhype_webui.extensions.Page` is a ``GET`` route
    under ``/ui/<path>`` that renders its template inside the layout (login required; admins
    only with ``admin_only``), optionally with a navigation entry.

    :param register: call with one :class:`~bhype_webui.extensions.Page` per page. A path
        whose first segment is one of the web UI's own (``vms``, ``tasks``, ``static`` …) is an
        error naming the plugin.
    """


@hookspec
def bhype_webui_register_vm_tabs(register: Callable[[VMTab], None]) -> None:
    """Add tabs to a VM's page (``/ui/vms/<name>?tab=<tab name>``): backups of this VM, its
    graphs, its SNMP index. The tab's template is rendered with ``vm`` (the VM's summary) and
    ``spec`` besides what its ``context`` returns; the VM is one the caller may see.

    :param register: call with one :class:`~bhype_webui.extensions.VMTab` per tab.
    """


@hookspec
def bhype_webui_register_vm_columns(register: Callable[[VMColumn], None]) -> None:
    """Add columns to the VM list (``/ui/vms``), after the web UI's own, in ``order``: live CPU
    and memory, the last backup. The column's ``values`` function is called once per rendered
    page with that page's VM rows (all visible to the caller) and returns each cell's text by
    VM name; the list re-renders (and so asks again) whenever its filter, page or a VM's state
    changes.

    :param register: call with one :class:`~bhype_webui.extensions.VMColumn` per column.
    """


@hookspec
def bhype_webui_register_dashboard_panels(register: Callable[[DashboardPanel], None]) -> None:
    """Add panels (cards) to the dashboard, in ``order``; the web UI's own CPU, memory and
    storage cards are registered this way too.

    :param register: call with one :class:`~bhype_webui.extensions.DashboardPanel` per panel.
    """


@hookspec
def bhype_webui_register_nav_entries(register: Callable[[NavEntry], None]) -> None:
    """Add entries to the main navigation, in ``order`` (the web UI's own entries use 10-80).
    A :class:`~bhype_webui.extensions.Page` with a ``nav_label`` gets its entry without this.

    :param register: call with one :class:`~bhype_webui.extensions.NavEntry` per entry.
    """


@hookspec
def bhype_webui_register_assets(register: Callable[[Assets], None]) -> None:
    """Add a plugin's static files (served at ``/ui/plugins/<name>/static/<path>``, confined
    to the directory) and templates (found as ``<name>/<file>``).

    :param register: call with one :class:`~bhype_webui.extensions.Assets` per directory pair.
    """
