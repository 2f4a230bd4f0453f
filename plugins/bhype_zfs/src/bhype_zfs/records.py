"""VM records for VMs that appear on ZFS without ``vm.create``: clones, and VMs found on an imported pool.

The records go into the core's ``core_vm`` table through its public models and spec
validation, so a registered VM is exactly what ``vm.create`` would have stored.
"""

from __future__ import annotations

import copy
from typing import Any

from bhype_core.errors import ValidationErrors

# cloud-init NoCloud meta-data keys that name one machine: a clone must not keep them.
IDENTITY_META_DATA = ("instance-id", "local-hostname", "hostname")


def cloned_spec_data(source: dict[str, Any], name: str) -> dict[str, Any]:
    """The source VM's spec with a new identity: name ``name``; no UUID, NIC MACs or VNC
    password (validation generates new ones); cloud-init instance id and host name reset."""
    data = copy.deepcopy(source)
    data["name"] = name
    data.pop("uuid", None)
    for nic in data.get("nics") or []:
        if isinstance(nic, dict):
            nic.pop("mac", None)
    graphics = data.get("graphics")
    if isinstance(graphics, dict):
        graphics.pop("password", None)
    cloud_init = data.get("cloud_init")
    if isinstance(cloud_init, dict) and isinstance(cloud_init.get("meta_data"), dict):
        meta = cloud_init["meta_data"]
        for key in IDENTITY_META_DATA:
            meta.pop(key, None)
        meta["local-hostname"] = name
    return data


def insert_vm(runtime: Any, store: Any, data: dict[str, Any], owner: str) -> Any:
    """Validate ``data`` against this host (names, MACs in use) and insert a ``core_vm`` row in
    ``store``'s datastore; returns the row.

    :raises ValidationErrors: invalid spec, or the name/UUID is taken.
    """
    from sqlalchemy.exc import IntegrityError

    from bhype_core.db.session import session
    from bhype_core.spec import validate_spec
    from bhype_core.vm.context import spec_context
    from bhype_core.vm.models import VM

    data = {**data, "owner": owner}
    with session(runtime) as db:
        spec = validate_spec(data, spec_context(runtime, db, store=None))
    row = VM(name=spec.name, uuid=str(spec.uuid), owner=owner, datastore=store.datastore, spec=spec.to_data())
    try:
        with session(runtime) as db:
            db.add(row)
    except IntegrityError:
        taken = f"a VM named {spec.name!r} or with UUID {spec.uuid} already exists"
        raise ValidationErrors([("name", taken)]) from None
    return row


def vm_records_available(runtime: Any) -> str | None:
    """``None`` when ``core_vm`` can be written here, else why not (no VM plugin, no table)."""
    try:
        from sqlalchemy import inspect

        from bhype_core.vm.models import VM  # noqa: F401
    except ImportError as exc:  # pragma: no cover - an older core
        return f"this bHype core has no VM records ({exc})"
    if "vm.create" not in runtime.registry.tasks:
        return "the core_vms plugin (VM records) is not loaded"
    try:
        if "core_vm" not in inspect(runtime.engine).get_table_names():
            return "the database has no core_vm table (run `bhype db upgrade`)"
    except Exception as exc:  # noqa: BLE001 - any database failure is a reason
        return f"the database cannot be read: {exc}"
    return None
