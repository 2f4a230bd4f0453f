"""Validating VM specs against this host: names and MACs in use, templates, ISOs, switches,
host RAM/CPUs."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from bhype_core.drivers.capabilities import Capability
from bhype_core.errors import ConfigError, ValidationErrors
from bhype_core.network.service import list_switches
from bhype_core.spec import SpecContext, VMSpec, validate_spec
from bhype_core.templates import TemplateCatalog
from bhype_core.vm.records import existing_macs, existing_names, existing_uuids
from bhype_core.vm.services import active_driver, template_catalog


def host_memory() -> int | None:
    """Physical RAM in bytes (sysconf(3) on Linux and FreeBSD), ``None`` when unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def platform_checks(runtime: Any) -> list[Any]:
    """Spec rules of this host's hypervisor driver (what it cannot do, bhyve's VNC-needs-UEFI,
    slot clashes, ...): the driver supplies them, so a third-party driver brings its own."""
    return list(active_driver(runtime).spec_checks())


def vnc_needs_password(runtime: Any) -> bool:
    """Whether this host's driver guards VNC with a password, so a new spec gets one.

    bhyve's fbuf listens on loopback TCP, which every local account can reach: it needs the
    VM's password. QEMU serves VNC on a unix socket only root can connect to and sets none, so
    a password generated for it would be a secret stored for nothing (issue 11). The driver
    says which by its capabilities: ``VNC_TCP`` (issue 12). No usable driver (a runtime
    without the driver plugin): generate one, the safe side.
    """
    try:
        driver = active_driver(runtime)
    except ConfigError:
        return True
    return Capability.VNC_TCP in driver.capabilities


def spec_context(
    runtime: Any,
    db: Session,
    *,
    store: Any = None,
    exclude_id: int | None = None,
    catalog: TemplateCatalog | None = None,
    rng: random.Random | None = None,
) -> SpecContext:
    """The :class:`SpecContext` for a VM on this host.

    :param store: the VM's datastore; its ISO folder lists the ISOs a spec may name.
    :param exclude_id: the VM being edited (its own name and MACs are not clashes).
    """
    isos = store.isos() if store is not None and hasattr(store, "isos") else None
    if isos is not None:  # in a group, a file in any host's library (placement then needs that host)
        from bhype_core.hosts.placement import group_library
        from bhype_core.isos import datastore_of

        isos = sorted(set(isos) | group_library(runtime, datastore_of(store)))
    catalog = catalog or template_catalog(runtime)
    return SpecContext(
        host_memory=host_memory(),
        host_cpus=os.cpu_count(),
        existing_names=existing_names(db, exclude_id),
        existing_macs=existing_macs(db, exclude_id),
        existing_uuids=existing_uuids(db, exclude_id),
        known_templates=catalog.names(),
        known_isos=isos,
        known_switches=[switch.name for switch in list_switches(db)],
        checks=platform_checks(runtime),
        vnc_password=vnc_needs_password(runtime),
        rng=rng,
    )


def create_spec_data(
    catalog: TemplateCatalog, template: str | None, overrides: Mapping[str, Any], owner: str
) -> dict[str, Any]:
    """Raw spec data for a new VM: template ``template`` + ``overrides`` (or the overrides alone
    when no template is named), owned by ``owner``.

    :raises ValidationErrors: unknown template (path ``template``), bad overrides.
    """
    if not isinstance(overrides, Mapping):
        raise ValidationErrors([("overrides", "must be an object")])
    if template is None:
        data = dict(overrides)
    else:
        if template not in catalog.templates:
            raise ValidationErrors([("template", f"no template named {template!r}")])
        data = catalog.get(template).spec_data(overrides)
    data["owner"] = owner
    return data


def build_create_spec(
    runtime: Any,
    db: Session,
    template: str | None,
    overrides: Mapping[str, Any],
    owner: str,
    store: Any = None,
) -> VMSpec:
    """Validate a new VM (template + overrides, owner) against this host.

    :raises ValidationErrors: every problem with its field path.
    """
    catalog = template_catalog(runtime)
    data = create_spec_data(catalog, template, overrides, owner)
    return validate_spec(data, spec_context(runtime, db, store=store, catalog=catalog))
