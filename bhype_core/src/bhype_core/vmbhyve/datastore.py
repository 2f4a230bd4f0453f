"""Reading a vm-bhyve datastore: ``.config/system.conf`` (switches, extra datastores), each
``<vm>/<vm>.conf``, ``.templates/*.conf`` and the rc.conf knobs (``vm_dir``, ``vm_list``,
``vm_delay``). Pure file reading through :mod:`bhype_core.vmbhyve.shconf`; nothing is run.

Layout (vm-bhyve ``lib/vm-datastore``, ``lib/vm-switch``, reference freebsd-host.md 5.2 and
10): ``vm_dir`` is a directory or ``zfs:<dataset>`` (then the dataset's mountpoint holds the
files and zvol disks are ``<dataset>/<vm>/<disk>``); extra datastores are listed in
``datastore_list`` with ``path_<name>`` in system.conf.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from bhype_core.vmbhyve.shconf import ShConf, parse_shconf

MAX_CONF_BYTES = 256 * 1024  # a vm-bhyve config is a few KiB; refuse anything absurd


@dataclass(frozen=True)
class Datastore:
    """One vm-bhyve datastore: its directory and, for ``zfs:`` datastores, its dataset."""

    name: str
    path: Path
    dataset: str | None = None


@dataclass(frozen=True)
class SwitchDef:
    """A switch from system.conf (``type_``, ``ports_``, ``vlan_``, ``mtu_``, ``addr_``, ``private_``)."""

    name: str
    type: str
    ports: list[str]
    vlan: str
    mtu: str
    address: str
    private: str


@dataclass
class GuestConf:
    """One ``<vm>/<vm>.conf`` (or a template's ``.conf``) with where it was read from."""

    name: str
    directory: Path
    datastore: Datastore
    conf: ShConf


@dataclass
class VmBhyveHost:
    """Everything read: datastores, switches, guests, templates, start list."""

    datastores: list[Datastore] = field(default_factory=list)
    switches: list[SwitchDef] = field(default_factory=list)
    guests: list[GuestConf] = field(default_factory=list)
    templates: list[GuestConf] = field(default_factory=list)
    vm_list: list[str] = field(default_factory=list)
    vm_delay: int = 0
    warnings: list[str] = field(default_factory=list)


def read_text(path: Path) -> str:
    """A config file's text: opened without following a symlink, regular files only, bounded."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if info.st_size > MAX_CONF_BYTES:
            raise ValueError(f"{path} is larger than {MAX_CONF_BYTES} bytes")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read(MAX_CONF_BYTES).decode("utf-8", "replace")
    finally:
        os.close(fd)


def read_conf(path: Path, warnings: list[str]) -> ShConf:
    """Parse one file; its warnings are prefixed with the path and added to ``warnings``."""
    conf = parse_shconf(read_text(path))
    warnings.extend(f"{path}: {w}" for w in conf.warnings)
    return conf


def parse_vm_dir(value: str, mountpoint: Path | None = None) -> Datastore:
    """``vm_dir`` (rc.conf or ``--vm-dir``): a path, or ``zfs:<dataset>`` mounted at ``mountpoint``
    (default ``/<dataset>``, zfs(8)'s default mountpoint)."""
    if value.startswith("zfs:"):
        dataset = value[4:].strip("/")
        return Datastore("default", mountpoint or Path("/" + dataset), dataset)
    return Datastore("default", Path(value))


def switches_of(conf: ShConf) -> list[SwitchDef]:
    """The switches system.conf declares (``switch_list``; type defaults to standard)."""
    return [
        SwitchDef(name, conf.get(f"type_{name}", "standard") or "standard", conf.get(f"ports_{name}").split(),
                  conf.get(f"vlan_{name}"), conf.get(f"mtu_{name}"), conf.get(f"addr_{name}"),
                  conf.get(f"private_{name}"))
        for name in conf.get("switch_list").split()
    ]


def _guests(store: Datastore, warnings: list[str]) -> list[GuestConf]:
    guests = []
    if not store.path.is_dir():
        warnings.append(f"datastore {store.name}: {store.path} is not a directory")
        return guests
    for entry in sorted(os.scandir(store.path), key=lambda e: e.name):
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        conf_path = Path(entry.path) / f"{entry.name}.conf"
        if not conf_path.is_file():
            continue
        guests.append(GuestConf(entry.name, Path(entry.path), store, read_conf(conf_path, warnings)))
    return guests


def read_host(vm_dir: Datastore, rc_conf: Path | None = None) -> VmBhyveHost:
    """Read the datastore ``vm_dir`` (plus those system.conf lists) and ``rc_conf`` if it exists."""
    host = VmBhyveHost(datastores=[vm_dir])
    system = vm_dir.path / ".config" / "system.conf"
    conf = read_conf(system, host.warnings) if system.is_file() else ShConf()
    host.switches = switches_of(conf)
    for name in conf.get("datastore_list").split():
        path = conf.get(f"path_{name}")
        if name == "default" or not path:
            continue
        extra = parse_vm_dir(path)
        host.datastores.append(Datastore(name, extra.path, extra.dataset))
    for store in host.datastores:
        host.guests.extend(_guests(store, host.warnings))
    templates = vm_dir.path / ".templates"
    if templates.is_dir():
        for path in sorted(templates.glob("*.conf")):
            host.templates.append(GuestConf(path.stem, templates, vm_dir, read_conf(path, host.warnings)))
    if rc_conf is not None and rc_conf.is_file():
        rc = read_conf(rc_conf, host.warnings)
        host.vm_list = rc.get("vm_list").split()
        delay = rc.get("vm_delay")
        host.vm_delay = int(delay) if delay.isdigit() else 0
    return host
