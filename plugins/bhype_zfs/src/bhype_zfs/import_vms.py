"""``bhype zfs import-vms``: find VMs on a pool by their user properties and register them again.

``vm.create`` on a ZFS datastore records ``org.bhype:name``, ``uuid``, ``owner`` and (when it
fits in 8192 bytes) the whole ``spec`` on the VM's dataset (zfsprops(7) user properties survive
``zpool export``/``import`` and travel in ``zfs send -R`` streams, reference 6.4). On a fresh
host with an imported pool, these are enough to recreate the ``core_vm`` rows.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from bhype_core.plugin_api import BhypeError, TaskContext, register_vm, vm_records_available
from bhype_zfs import argv
from bhype_zfs.parse import parse_zfs_get
from bhype_zfs.storage import NAME_PROPERTY, OWNER_PROPERTY, SPEC_PROPERTY, UUID_PROPERTY, VM_PROPERTIES, ZfsStorage
from bhype_zfs.tool import ZfsHost


@dataclass
class FoundVM:
    """A VM dataset and what its user properties say; ``status`` after registration."""

    dataset: str
    name: str | None
    uuid: str | None
    owner: str | None
    spec: dict[str, Any] | None
    volumes: list[str] = field(default_factory=list)
    status: str = "found"
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_found(props_text: str, volumes_text: str, vms_dataset: str) -> list[FoundVM]:
    """VMs from ``zfs get -d 1 -s local org.bhype:name,uuid,owner,spec <root>/vms`` and
    ``zfs list -t volume -o name -r <root>/vms`` output (pure)."""
    props = parse_zfs_get(props_text)
    volumes = [line for line in volumes_text.split() if line]
    found = []
    for dataset in sorted(props):
        if dataset == vms_dataset or "/" in dataset[len(vms_dataset) + 1:]:
            continue
        values = {name: (value.value if value.local else None) for name, value in props[dataset].items()}
        spec, detail = None, ""
        raw = values.get(SPEC_PROPERTY)
        if raw:
            try:
                spec = json.loads(raw)
            except ValueError as exc:
                detail = f"{SPEC_PROPERTY} is not JSON: {exc}"
        found.append(FoundVM(
            dataset=dataset,
            name=values.get(NAME_PROPERTY),
            uuid=values.get(UUID_PROPERTY),
            owner=values.get(OWNER_PROPERTY),
            spec=spec if isinstance(spec, dict) else None,
            volumes=[v.rsplit("/", 1)[1] for v in volumes if v.rsplit("/", 1)[0] == dataset],
            detail=detail,
        ))
    return found


def discover(host: ZfsHost, store: ZfsStorage) -> list[FoundVM]:
    """The VM datasets under ``<root>/vms`` with their bHype properties (read-only)."""
    vms = store.vms_dataset
    props = host.text(argv.get_properties(host.tools, list(VM_PROPERTIES), [vms], depth=1,
                                          sources=("local", "received")))
    volumes = host.text(argv.list_datasets(host.tools, ["name"], [vms], types=("volume",), recursive=True))
    return parse_found(props, volumes, vms)


def register(context: TaskContext, store: ZfsStorage, found: list[FoundVM]) -> list[FoundVM]:
    """Register (:func:`bhype_core.plugin_api.register_vm`, which fires the
    ``bhype_vm_*_register`` hooks) each found VM that has a name, UUID, owner and spec and is
    not registered yet; each entry's ``status`` says what happened (``registered``,
    ``already registered``, ``skipped``, ``failed``, or ``not registered`` when VM records
    are unavailable here)."""
    runtime = context.runtime
    reason = vm_records_available(runtime)
    for vm in found:
        if reason is not None:
            vm.status, vm.detail = "not registered", reason
            continue
        if not (vm.name and vm.uuid and vm.owner and vm.spec):
            missing = [p for p, v in ((NAME_PROPERTY, vm.name), (UUID_PROPERTY, vm.uuid), (OWNER_PROPERTY, vm.owner),
                                      (SPEC_PROPERTY, vm.spec)) if not v]
            vm.status, vm.detail = "skipped", vm.detail or f"missing {', '.join(missing)}"
            continue
        if _registered(runtime, vm):
            vm.status = "already registered"
            continue
        disks = [d.get("volume") for d in vm.spec.get("disks", []) if isinstance(d, dict)]
        absent = [d for d in disks if d and store.options.disk_type == "zvol" and d not in vm.volumes]
        if absent:
            vm.status, vm.detail = "skipped", f"disk volume(s) {', '.join(absent)} are missing from {vm.dataset}"
            continue
        try:
            register_vm(context, store.datastore, {**vm.spec, "name": vm.name, "uuid": vm.uuid}, vm.owner)
            vm.status = "registered"
        except BhypeError as exc:
            vm.status, vm.detail = "failed", exc.message
    return found


def _registered(runtime: Any, vm: FoundVM) -> bool:
    from sqlmodel import or_, select

    from bhype_core.plugin_api import VM, session

    with session(runtime) as db:
        row = db.exec(select(VM).where(or_(VM.name == vm.name, VM.uuid == vm.uuid))).first()
    return row is not None and row.uuid == vm.uuid
