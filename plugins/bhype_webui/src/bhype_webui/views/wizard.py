"""The create-VM wizard: pick a template, then name, CPUs, memory, disk, ISO or cloud-init and
switch. The page posts to ``POST /api/v1/vms`` itself, so validation (and its field paths,
shown next to the inputs) is exactly the API's.

For a template whose cloud image is in the library the default installation is "boot the cloud
image, cloud-init with my SSH key / a password" (issue 14): the first disk is written from the
image and the VM gets a NoCloud seed; without the image the page links to the Templates page,
where one button fetches it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from bhype_core.plugin_api import NotFound, PrincipalDep, RuntimeDep, list_switches, template_catalog, vm_settings
from bhype_webui.host_summary import spec_cpus
from bhype_webui.views.kit import PageKit
from bhype_webui.views.vms import iso_names


def template_fields(defaults: dict[str, Any]) -> dict[str, Any]:
    """What the wizard pre-fills from a template's spec: scalar values, and the disk size only
    when the template has exactly one disk (a size then overrides just that disk)."""
    disks = defaults.get("disks") or []
    nics = defaults.get("nics") or []
    return {
        "cpus": spec_cpus(defaults),
        "memory": str(defaults.get("memory", "")),
        "disk_size": str(disks[0].get("size", "")) if len(disks) == 1 and isinstance(disks[0], dict) else "",
        "disk_count": len(disks),
        "nic_count": len(nics),
        "boot": (defaults.get("boot") or {}).get("mode", "uefi") if isinstance(defaults.get("boot"), dict)
        else str(defaults.get("boot") or "uefi"),
        "vnc": bool((defaults.get("graphics") or {}).get("vnc")) if isinstance(defaults.get("graphics"), dict)
        else False,
    }


# The spec's boot modes (spec_parts.BootMode) and disk buses (DiskBus), labelled for people;
# the API refuses any other value with a field error the wizard shows.
BOOT_MODES = [("uefi", "UEFI"), ("uefi-csm", "UEFI with legacy BIOS (CSM)"),
              ("bhyveload", "bhyveload (FreeBSD guests)"), ("grub", "grub-bhyve (legacy Linux)")]
DISK_BUSES = ["virtio-blk", "ahci-hd", "nvme"]


def cloud_image_status(runtime: Any, template: str, datastore: str | None = None) -> dict[str, Any] | None:
    """The template's cloud image and whether the library has it; ``None`` when it names none
    or the datastore cannot be read (the page then offers no cloud image rather than failing)."""
    from bhype_core.plugin_api import BhypeError
    from bhype_core.plugin_api import cloud_image_status as image_status

    try:
        return image_status(runtime, template, datastore)
    except BhypeError:
        return None


def add_routes(router: APIRouter, kit: PageKit) -> None:
    """``/ui/vms/new`` (registered before ``/ui/vms/{name}``)."""

    @router.get("/vms/new", response_class=HTMLResponse)
    def wizard(
        request: Request,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        template: Annotated[str | None, Query(max_length=63)] = None,
    ) -> HTMLResponse:
        """The wizard, pre-filled from ``template`` (default: the first one)."""
        catalog = template_catalog(runtime)
        templates = [t.summary() for t in catalog.list()]
        if not templates:
            raise NotFound("there are no templates to create a VM from")
        chosen = next((t for t in templates if t["name"] == template), None)
        if template and chosen is None:
            raise NotFound(f"no template named {template!r}")
        chosen = chosen or templates[0]
        settings = vm_settings(runtime)
        with Session(runtime.engine) as db:
            switches = [row.name for row in list_switches(db)]
        return kit.render(
            request, "vm_new.html", "new",
            templates=templates, template=chosen, fields=template_fields(chosen["defaults"]),
            image=cloud_image_status(runtime, chosen["name"]) if chosen.get("image") else None,
            isos=iso_names(runtime, None), switches=switches,
            datastores=sorted(settings.datastores), default_datastore=settings.default_datastore,
            boot_modes=BOOT_MODES, disk_buses=DISK_BUSES,
        )
