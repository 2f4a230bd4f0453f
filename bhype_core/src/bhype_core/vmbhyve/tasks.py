"""Tasks ``vmbhyve.import`` and ``vmbhyve.export`` (``role="admin"``): run by the worker (root), which
can read vm-bhyve's datastore and rename/link its disks.

``vmbhyve.import`` with ``dry_run`` only returns the plan (:mod:`bhype_core.vmbhyve.plan`);
without it, it creates the missing switches, then per guest: the VM directory, each disk
adopted in place (:meth:`~bhype_core.storage.base.StorageBackend.adopt_volume`), the NVRAM
file, the record (``bhype_vm_*_register`` hooks). A failed guest is rolled back (disks
given back, never deleted) and the others go on; each step is journalled first
(``context.intent``) so recovery after a crash gives the disks back too.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from bhype_core.errors import BhypeError, Conflict, NotFound, ValidationErrors
from bhype_core.network.service import create_switch, list_switches
from bhype_core.spec import validate_spec
from bhype_core.storage.capabilities import StorageCapability
from bhype_core.vm.context import spec_context
from bhype_core.vm.create import stored_spec
from bhype_core.vm.firmware import create_nvram, nvram_name
from bhype_core.vm.intents import REMOVE_ROW
from bhype_core.vm.models import VM
from bhype_core.vm.records import existing_names
from bhype_core.vm.registration import register_vm
from bhype_core.vm.services import active_driver, open_datastore, template_catalog
from bhype_core.vm.settings import templates_dir
from bhype_core.vm.undo import Undo
from bhype_core.vmbhyve.datastore import parse_vm_dir, read_conf, read_host
from bhype_core.vmbhyve.export import export_summary
from bhype_core.vmbhyve.plan import build_plan, file_size, zfs_volsize_argv
from bhype_core.vmbhyve.templates import PREFIX, export_template_conf, write_templates

UNDO_IMPORT = "vmbhyve.undo_import"
RC_CONF = "/etc/rc.conf"


def resolve_vm_dir(context: Any, vm_dir: str | None, rc_conf: str | None) -> Any:
    """``vm_dir`` as given, else rc.conf's; a ``zfs:`` datastore's mountpoint from zfs-get(8)."""
    if not vm_dir and rc_conf and Path(rc_conf).is_file():
        vm_dir = read_conf(Path(rc_conf), []).get("vm_dir")
    if not vm_dir:
        raise ValidationErrors([("vm_dir", "give --vm-dir (rc.conf has no vm_dir)")])
    store = parse_vm_dir(vm_dir)
    if store.dataset is not None:
        result = context.runner.run(["zfs", "get", "-H", "-o", "value", "mountpoint", store.dataset], check=False)
        if result.returncode == 0 and result.stdout.strip().startswith("/"):
            store = parse_vm_dir(vm_dir, Path(result.stdout.strip()))
    if not store.path.is_dir():
        raise ValidationErrors([("vm_dir", f"{store.path} is not a directory")])
    return store


def running_check(context: Any) -> Any:
    """A guest runs when ``/dev/vmm/<name>`` exists or pgrep finds ``bhyve: <name>`` (reference 1.8)."""
    vmm_dir = Path(getattr(context.runtime.settings.section("bhyve"), "vmm_dir", "/dev/vmm"))

    def running(name: str) -> str | None:
        if (vmm_dir / name).exists():
            return f"{vmm_dir / name} exists"
        if context.runner.run(["pgrep", "-fx", f"bhyve: {name}"], check=False).returncode == 0:
            return f"a 'bhyve: {name}' process runs"
        return None

    return running


def size_of(context: Any) -> Any:
    """Disk sizes: ``lstat`` for files, zfs-get(8) ``volsize`` for zvols."""
    def size(source: Any) -> int | None:
        if source.kind == "file":
            return file_size(source)
        result = context.runner.run(zfs_volsize_argv(source.dataset), check=False)
        text = result.stdout.strip()
        return int(text) if result.returncode == 0 and text.isdigit() else None

    return size


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a new datastore's root is made on first use)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_check(store: Any) -> Any:
    """Why ``store`` cannot adopt a disk in place (``None``: it can try)."""
    if StorageCapability.ADOPT not in store.capabilities:
        reason = f"datastore {getattr(store, 'datastore', '')} ({store.name}) cannot adopt disks in place"
        return lambda source: reason
    root = getattr(store, "root", None)

    def check(source: Any) -> str | None:
        if root is not None and source.kind == "zvol":
            return f"{source.path} is a zvol: import into a zfs datastore"
        if root is not None and os.stat(source.path).st_dev != os.stat(_existing(Path(root))).st_dev:
            return (f"{source.path} is on another file system than datastore {store.datastore} ({root}): "
                    "a hard link cannot cross file systems and bHype does not copy")
        return None

    return check


def import_vms(
    context: Any,
    vm_dir: str | None = None,
    rc_conf: str | None = RC_CONF,
    dry_run: bool = False,
    vms: list[str] | None = None,
    datastore: str | None = None,
    owner: str | None = None,
) -> dict[str, Any]:
    """Task ``vmbhyve.import``: the plan, and unless ``dry_run`` the import (module docstring).

    :returns: the plan plus, after an import, ``imported`` and ``failed`` (name → error).
    """
    runtime = context.runtime
    store = open_datastore(runtime, datastore)
    source = resolve_vm_dir(context, vm_dir, rc_conf)
    host = read_host(source, Path(rc_conf) if rc_conf else None)
    with Session(runtime.engine) as db:
        known_vms = existing_names(db)
        known_switches = [s.name for s in list_switches(db)]
    admin_templates = templates_dir(runtime)
    plan = build_plan(host, size_of=size_of(context), running=running_check(context), existing_vms=known_vms,
                      existing_switches=known_switches, only=vms, disk_check=disk_check(store),
                      templates_dir=admin_templates)
    if vms is not None:  # a chosen few guests: the templates are not part of that request
        for row in plan["templates"]:
            if row["action"] == "create":
                row["action"], row["reason"] = "skip", "only the guests named (--vm) are imported"
    _check_specs(runtime, store, plan)
    plan["datastore"] = getattr(store, "datastore", datastore)
    plan["dry_run"] = dry_run
    if dry_run:
        return plan
    for switch in plan["switches"]:
        if switch["action"] == "create":
            context.log(f"creating switch {switch['name']}")
            create_switch(context, switch["name"], **switch["fields"])
    plan["imported"], plan["failed"] = [], {}
    owner = owner or context.user or "root"
    for vm in plan["vms"]:
        if vm["action"] != "import":
            continue
        try:
            _import_one(context, store, vm, owner)
            plan["imported"].append(vm["name"])
        except BhypeError as exc:
            plan["failed"][vm["name"]] = str(exc)
            context.log(f"{vm['name']}: not imported: {exc}", level="warning")
    plan["templates_imported"] = write_templates(plan["templates"], admin_templates)
    for name in plan["templates_imported"]:
        context.log(f"template {name} written to {admin_templates}")
    context.progress(100, f"imported {len(plan['imported'])} VM(s), {len(plan['templates_imported'])} template(s)")
    return plan


def _check_specs(runtime: Any, store: Any, plan: dict[str, Any]) -> None:
    """Refuse, already in the plan, a guest whose spec this host would refuse (too many vCPUs
    or RAM, a MAC in use, a rule of the driver), counting the switches the import creates."""
    creates = [s["name"] for s in plan["switches"] if s["action"] == "create"]
    with Session(runtime.engine) as db:
        context = spec_context(runtime, db, store=store)
    context = replace(context, known_switches=[*(context.known_switches or ()), *creates])
    for vm in plan["vms"]:
        if vm["action"] != "import":
            continue
        try:
            validate_spec(dict(vm["spec"], owner="root"), context)
        except ValidationErrors as exc:
            vm["action"] = "refuse"
            vm["refused"] += [f"spec.{error.path}: {error.message}" for error in exc.errors]


def _import_one(context: Any, store: Any, vm: dict[str, Any], owner: str) -> None:
    """Directory, disks adopted in place, NVRAM, then the record through
    :func:`~bhype_core.vm.registration.register_vm` (``bhype_vm_before/after_register``: an
    imported VM is registered, not created); anything failing before the record gives it all back."""
    runtime = context.runtime
    name = vm["name"]
    with Session(runtime.engine) as db:
        spec = validate_spec(dict(vm["spec"], owner=owner), spec_context(runtime, db, store=store))
    datastore = getattr(store, "datastore", "default")
    vm_dir = store.vm_dir(name)
    undo = Undo(context)
    adopted = [(disk["volume"], disk["path"]) for disk in vm["disks"]]
    try:
        # One intent for directory and disks: recovery gives every disk back first and removes
        # the directory only when none is left in it (a zvol would go with a ZFS VM dataset).
        context.intent(UNDO_IMPORT, f"VM directory {vm_dir} and the disks adopted into it",
                       datastore=datastore, name=name, disks=[list(pair) for pair in adopted])
        store.create_vm_dir(name)
        undo.push(f"VM directory {vm_dir}", lambda: remove_dir_if_given_back(store, name, adopted))
        for volume, path in adopted:
            done = store.adopt_volume(name, volume, path)
            undo.push(f"adopted disk {path}", _giver(store, name, volume, path))
            context.log(f"{name}: disk {volume} adopted in place: {path} is now {done.path}")
        driver = active_driver(runtime)
        if vm["nvram"] and spec.boot.mode == "uefi" and Path(vm["nvram"]).is_file():
            store.install_vm_file(name, Path(vm["nvram"]), nvram_name(driver))
            context.log(f"{name}: UEFI variables copied from {vm['nvram']}")
        else:
            create_nvram(spec, store, driver)
        context.intent(REMOVE_ROW, f"database row of VM {name}", uuid=str(spec.uuid), name=name)
        register_vm(context, datastore, stored_spec(spec), owner)
    except BaseException:
        failures = undo.rollback()
        if failures:
            context.log(f"{name}: rollback incomplete: {'; '.join(failures)}", level="error")
        raise
    undo.discard()
    context.log(f"{name}: imported; vm-bhyve still lists it: remove it from rc.conf vm_list and never start "
                "it from both managers (they would open the same disks)")


def _giver(store: Any, name: str, volume: str, source: str) -> Any:
    return lambda: store.release_volume(name, volume, source)


def remove_dir_if_given_back(store: Any, name: str, adopted: list[tuple[str, str]]) -> None:
    """Remove the VM's directory unless one of its adopted disks is still in it (then it stays,
    with the disk: removing it could destroy the guest's data, e.g. a zvol with its dataset).

    :raises Conflict: a disk was not given back.
    """
    for volume, source in adopted:
        try:
            store.volume(name, volume)
        except NotFound:
            continue
        raise Conflict(f"disk {volume} of {name} ({source}) was not given back: its directory stays")
    store.remove_vm_dir(name)


def undo_import(context: Any, datastore: str, name: str, disks: list[list[str]]) -> str | None:
    """Undo action: give every adopted disk back (rename/unlink, never delete), then remove the
    VM's directory; unless a VM record of that name exists (then all of it belongs to that VM)."""
    runtime = context.runtime
    with Session(runtime.engine) as db:
        if db.exec(select(VM.id).where(VM.name == name, VM.datastore == datastore)).first() is not None:
            return None
    store = open_datastore(runtime, datastore)
    adopted = [(volume, source) for volume, source in disks]
    for volume, source in adopted:
        store.release_volume(name, volume, source)
    if not store.vm_dir(name).exists():
        return None
    remove_dir_if_given_back(store, name, adopted)
    return f"disks of {name} given back ({', '.join(source for _, source in adopted) or 'none'}), its directory removed"


def export_vm(context: Any, name: str, vm_dir: str | None = None, rc_conf: str | None = RC_CONF,
              dry_run: bool = False, template: bool = False) -> dict[str, Any]:
    """Task ``vmbhyve.export``: VM ``name`` as a vm-bhyve ``<vm>.conf``; unless ``dry_run``
    written to ``<vm_dir>/<name>/<name>.conf`` (a file there is kept as ``.conf.before-bhype``).
    With ``template``, bHype template ``name`` as ``<vm_dir>/.templates/<name>.conf`` (an
    imported ``vmbhyve-x`` goes back as ``x``).

    :raises NotFound: no such VM (or template).
    """
    runtime = context.runtime
    if template:
        return _export_template(context, name, vm_dir, rc_conf, dry_run)
    with Session(runtime.engine) as db:
        row = db.exec(select(VM).where(VM.name == name)).first()
    if row is None:
        raise NotFound(f"no VM named {name!r}")
    spec = row.spec_model()
    store = open_datastore(runtime, row.datastore)
    paths = [str(store.volume_path(name, disk.volume or "")) for disk in spec.disks]
    summary = export_summary(spec, paths)
    summary["dry_run"] = dry_run
    if dry_run:
        return summary
    target_dir = resolve_vm_dir(context, vm_dir, rc_conf).path / name
    return _write_conf(context, summary, target_dir, f"{name}.conf")


def _export_template(context: Any, name: str, vm_dir: str | None, rc_conf: str | None,
                     dry_run: bool) -> dict[str, Any]:
    found = template_catalog(context.runtime).get(name)  # NotFound names the known templates
    text, notes = export_template_conf(found)
    target_name = name.removeprefix(PREFIX)
    summary = {"name": target_name, "file": f".templates/{target_name}.conf", "config": text, "notes": notes,
               "dry_run": dry_run}
    if dry_run:
        return summary
    return _write_conf(context, summary, resolve_vm_dir(context, vm_dir, rc_conf).path / ".templates",
                       f"{target_name}.conf")


def _write_conf(context: Any, summary: dict[str, Any], target_dir: Path, filename: str) -> dict[str, Any]:
    """Write ``summary['config']`` as ``target_dir/filename``, keeping a file there as
    ``.before-bhype``; a symlink is refused, never followed."""
    name = filename.removesuffix(".conf")
    if target_dir.is_symlink():
        raise Conflict(f"{target_dir} is a symlink: refused")
    target_dir.mkdir(mode=0o755, exist_ok=True)
    target = target_dir / filename
    if target.is_symlink():
        raise Conflict(f"{target} is a symlink: refused")
    if target.exists():
        os.replace(target, target.with_name(f"{name}.conf.before-bhype"))
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as handle:
        handle.write(summary["config"])
    summary["written"] = str(target)
    context.log(f"wrote {target}")
    return summary
