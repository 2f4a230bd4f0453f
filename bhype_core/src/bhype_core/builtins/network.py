"""Built-in plugin ``core_network``: virtual switches and the ISO library (issue 5): their task
kinds, the ``[isos]`` section, ``/api/v1/switches`` and ``/api/v1/isos``, and the ``bhype
switch`` / ``bhype iso`` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core import iso_staging
from bhype_core.hookspecs import hookimpl
from bhype_core.iso_fetch import fetch_iso
from bhype_core.isos import SECTION, IsoSettings, delete_iso_task, import_upload, iso_lock
from bhype_core.network import intents as switch_intents
from bhype_core.network.service import (
    add_uplink,
    apply_switches,
    create_switch,
    destroy_switch,
    remove_uplink,
    switch_lock,
)
from bhype_core.registry import CliCommand, PeriodicJob, RouterEntry, SettingsSection, TaskKind, UndoAction

SWITCH_KINDS: dict[str, tuple[Callable[..., Any], str]] = {
    "switch.create": (create_switch, "create a virtual switch (bridge, uplink, VLAN, address, NAT)"),
    "switch.destroy": (destroy_switch, "remove a switch no VM uses"),
    "switch.add_uplink": (add_uplink, "bridge a host NIC (or one of its VLANs) into a switch"),
    "switch.remove_uplink": (remove_uplink, "make a switch a private network again"),
}
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
    """``switch.*`` (lock ``switch:<name>``), ``switch.apply`` and ``iso.*`` (lock ``iso:<name>``)."""
    for name, (run, description) in SWITCH_KINDS.items():
        register(TaskKind(name=name, run=run, description=description, locks=switch_lock))
    register(TaskKind(name="switch.apply", run=apply_switches,
                      description="(re)create every stored switch on the host, e.g. after a reboot"))
    for name, (run, description) in ISO_KINDS.items():
        register(TaskKind(name=name, run=run, description=description, locks=iso_lock))
    register(TaskKind(name="iso.clean_uploads", run=iso_staging.clean_uploads_job,
                      description="remove staged ISO uploads older than isos.staged_max_age no import names"))


@hookimpl
def bhype_register_undo_actions(register: Callable[[UndoAction], None]) -> None:
    """Recovery of an interrupted ``switch.create`` (remove the half-built switch from the host)
    and ``iso.import`` (remove the ``.partial-`` file or unrecorded ISO it left)."""
    for action in (*switch_intents.UNDO_ACTIONS, *iso_staging.UNDO_ACTIONS):
        register(action)


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """``iso.clean-uploads`` hourly and at worker start: staged uploads older than
    ``isos.staged_max_age`` that no pending ``iso.import`` names (an API killed mid-upload,
    an import that never ran)."""
    register(PeriodicJob(name="iso.clean-uploads", kind="iso.clean_uploads", minute="17",
                         run_at_start=True, description="remove stale staged ISO uploads"))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """``/api/v1/switches`` and ``/api/v1/isos``."""
    from bhype_core.api.routes import isos, switches

    register(RouterEntry(name="switches", router=switches.make_router()))
    register(RouterEntry(name="isos", router=isos.make_router()))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype switch …`` and ``bhype iso …``."""
    from bhype_core.commands import iso, switch

    register(switch.command())
    register(iso.command())
