"""Built-in plugin ``core_network``: virtual switches and the ISO library (issue 5): their task
kinds, the ``[isos]`` section, ``/api/v1/switches`` and ``/api/v1/isos``, and the ``bhype
switch`` / ``bhype iso`` commands; templates' cloud images (issue 14): ``image.fetch``, the
``[images]`` section, ``/api/v1/templates/{name}/image`` and ``bhype image``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.cloud_images import SECTION as IMAGES_SECTION
from bhype_core.cloud_images import ImageSettings, fetch_image, image_lock
from bhype_core.hookspecs import hookimpl
from bhype_core.iso_fetch import fetch_iso
from bhype_core.isos import SECTION, IsoSettings, delete_iso_task, import_upload, iso_lock
from bhype_core.network.service import (
    add_uplink,
    apply_switches,
    create_switch,
    destroy_switch,
    remove_uplink,
    switch_lock,
)
from bhype_core.registry import CliCommand, RouterEntry, SettingsSection, TaskKind

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
    """The ``[isos]`` section: size limit and fetch retries; ``[images]``: mirrors."""
    register(SettingsSection(name=SECTION, model=IsoSettings))
    register(SettingsSection(name=IMAGES_SECTION, model=ImageSettings))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``switch.*`` (lock ``switch:<name>``), ``switch.apply`` and ``iso.*`` (lock ``iso:<name>``)."""
    for name, (run, description) in SWITCH_KINDS.items():
        register(TaskKind(name=name, run=run, description=description, locks=switch_lock))
    register(TaskKind(name="switch.apply", run=apply_switches,
                      description="(re)create every stored switch on the host, e.g. after a reboot"))
    for name, (run, description) in ISO_KINDS.items():
        register(TaskKind(name=name, run=run, description=description, locks=iso_lock))
    register(TaskKind(name="image.fetch", run=fetch_image, locks=image_lock,
                      description="fetch a template's cloud image into the library once (checksum file verified)"))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """``/api/v1/switches``, ``/api/v1/isos`` and ``/api/v1/templates/{name}/image``."""
    from bhype_core.api.routes import isos, switches, template_images

    register(RouterEntry(name="switches", router=switches.make_router()))
    register(RouterEntry(name="isos", router=isos.make_router()))
    register(RouterEntry(name="template-images", router=template_images.make_router(), prefix="/api/v1/templates"))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype switch …``, ``bhype iso …`` and ``bhype image …``."""
    from bhype_core.commands import image, iso, switch

    register(switch.command())
    register(iso.command())
    register(image.command())
