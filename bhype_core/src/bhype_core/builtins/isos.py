"""Built-in plugin ``core_isos``: the ISO library (issue 5): its task kinds (``iso.fetch``,
``iso.import``, ``iso.delete``), the ``[isos]`` section, ``/api/v1/isos`` and ``bhype iso``.

Registered under its own name (issue 12) so ``bhype plugins`` shows the library apart from the
virtual switches (``core_network``) and a deployment can disable one without the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.hookspecs import hookimpl
from bhype_core.iso_fetch import fetch_iso
from bhype_core.isos import SECTION, IsoSettings, delete_iso_task, import_upload, iso_lock
from bhype_core.registry import CliCommand, RouterEntry, SettingsSection, TaskKind

ISO_KINDS: dict[str, tuple[Callable[..., Any], str]] = {
    "iso.fetch": (fetch_iso, "download an ISO from a URL (resumable, checksum verified)"),
    "iso.import": (import_upload, "move an uploaded ISO into the library"),
    "iso.delete": (delete_iso_task, "delete an ISO no VM attaches"),
}


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """The ``[isos]`` section: size limit and fetch retries."""
    register(SettingsSection(name=SECTION, model=IsoSettings))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``iso.*`` (lock ``iso:<name>``)."""
    for name, (run, description) in ISO_KINDS.items():
        register(TaskKind(name=name, run=run, description=description, locks=iso_lock))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """``/api/v1/isos``."""
    from bhype_core.api.routes import isos

    register(RouterEntry(name="isos", router=isos.make_router()))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype iso …``."""
    from bhype_core.commands import iso

    register(iso.command())
