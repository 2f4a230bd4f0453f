"""The create-VM wizard: pick a template, then name, CPUs, memory, disk, ISO or cloud-init and
switch. The page posts to ``POST /api/v1/vms`` itself, so validation (and its field paths,
shown next to the inputs) is exactly the API's."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session

from bhype_core.api.deps import RuntimeDep
from bhype_core.api.principal import PrincipalDep
from bhype_core.errors import NotFound
from bhype_core.network.service import list_switches
from bhype_core.spec import DiskBus
from bhype_core.vm.services import template_catalog
from bhype_core.vm.settings import vm_settings
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


# The spec's boot modes (spec_parts.BootMode) and disk buses (DiskBus), labelled for people.
BOOT_MODES = [("uefi", "UEFI"), ("uefi-csm", "UEFI with legacy BIOS (CSM)"),
              ("bhyveload", "bhyveload (FreeBSD guests)"), ("grub", "grub-bhyve (legacy Linux)")]
DISK_BUSES = list(get_args(DiskBus))


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
            isos=iso_names(runtime, None), switches=switches,
            datastores=sorted(settings.datastores), default_datastore=settings.default_datastore,
            boot_modes=BOOT_MODES, disk_buses=DISK_BUSES,
        )
