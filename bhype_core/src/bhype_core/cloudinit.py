"""cloud-init NoCloud seeds: ``meta-data``, ``user-data`` and ``network-config`` on a ``cidata`` ISO.

cloud-init's NoCloud datasource looks for a filesystem labelled ``cidata`` (or ``CIDATA``)
holding those three files. Generated parts are written as JSON, which is valid YAML, so no
YAML library is needed; the user's own user-data is kept byte for byte, and when bHype must
add SSH keys to it both go into one ``multipart/mixed`` document whose bHype part asks
cloud-init to append lists (``Merge-Type``) instead of replacing the user's.
"""

from __future__ import annotations

import json
import os
import pwd
import re
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from bhype_core.iso9660 import build_iso
from bhype_core.safe_files import UnsafeFile, open_dir, read_bytes
from bhype_core.spec import VMSpec

SEED_FILE = "cidata.iso"
LABEL = "cidata"
MERGE_TYPE = "list(append)+dict(recurse_array)+str()"
AUTHORIZED_KEYS_LIMIT = 1 << 20
_HOST_BAD = re.compile(r"[^a-z0-9-]+")


def hostname_for(spec: VMSpec) -> str:
    """The guest's hostname: ``meta_data["local-hostname"]`` if given, else the VM name made
    into an RFC 1123 label (lower case, ``_``/``.`` become ``-``, at most 63 characters)."""
    given = spec.cloud_init.meta_data.get("local-hostname") if spec.cloud_init else None
    if given:
        return given
    label = _HOST_BAD.sub("-", spec.name.lower()).strip("-")[:63].strip("-")
    return label or "vm"


def meta_data(spec: VMSpec) -> dict[str, str]:
    """``instance-id`` (the VM's UUID: cloud-init re-runs per-instance modules when it changes)
    and ``local-hostname``, plus the spec's own ``meta_data`` keys (they win)."""
    data = {"instance-id": str(spec.uuid), "local-hostname": hostname_for(spec)}
    if spec.cloud_init:
        data.update(spec.cloud_init.meta_data)
    return data


def network_config(spec: VMSpec) -> str:
    """The spec's ``network_config`` as given, else network config version 2 with DHCPv4 on
    every NIC, matched by its MAC (interface names differ between guests)."""
    if spec.cloud_init and spec.cloud_init.network_config is not None:
        return spec.cloud_init.network_config
    ethernets = {
        f"nic{index}": {"match": {"macaddress": nic.mac}, "dhcp4": True}
        for index, nic in enumerate(spec.nics)
        if nic.mac
    }
    return json.dumps({"version": 2, "ethernets": ethernets}, indent=2) + "\n"


def user_data(spec: VMSpec, ssh_keys: list[str]) -> str:
    """The user-data document: the spec's own, with ``ssh_keys`` and the hostname added.

    Without user-data of its own the VM gets a ``#cloud-config`` that sets the hostname and
    authorises the keys for the image's default user. With user-data and keys, a multipart
    document carries both (the user's part first, unchanged).
    """
    own = spec.cloud_init.user_data if spec.cloud_init else ""
    generated: dict[str, Any] = {"hostname": hostname_for(spec)}
    if ssh_keys:
        generated["ssh_authorized_keys"] = list(ssh_keys)
    config = "#cloud-config\n" + json.dumps(generated, indent=2) + "\n"
    if not own:
        return config
    if not ssh_keys:
        return own
    document = MIMEMultipart(boundary="==BHYPE-SEED==")
    user_part_type = "cloud-config" if own.startswith("#cloud-config") else "x-shellscript"
    if own.startswith("#include"):
        user_part_type = "x-include-url"
    if own.startswith("Content-Type:"):
        # Already MIME: cloud-init accepts nested multipart documents as a part.
        document.attach(_part(own.split("\n\n", 1)[-1], "mixed", "user-data"))
    else:
        document.attach(_part(own, user_part_type, "user-data"))
    ours = _part(config, "cloud-config", "bhype-keys")
    ours["Merge-Type"] = MERGE_TYPE
    document.attach(ours)
    return document.as_string()


def _part(text: str, subtype: str, filename: str) -> MIMEText:
    part = MIMEText(text, subtype, "utf-8")
    part.add_header("Content-Disposition", "attachment", filename=filename)
    return part


def account_keys(user: str | None, home: Path | None = None) -> list[str]:
    """The key lines of ``user``'s ``~/.ssh/authorized_keys`` (bHype users are local accounts),
    skipping comments, blank lines and lines with options (``from=…``): those restrict the
    host login and mean nothing in a guest. Empty when the account or file does not exist.

    The worker (root) reads a file the user controls: ``~/.ssh`` and the file are opened
    without following symlinks, must belong to the user or root (sshd's StrictModes rule) and
    the file must be a regular one of at most 1 MiB, so a planted link to a root-only file or
    a FIFO fails the task with :class:`~bhype_core.safe_files.UnsafeFile` instead.
    """
    if not user:
        return []
    try:
        if home is None:
            entry = pwd.getpwnam(user)
            base, uid = Path(entry.pw_dir), entry.pw_uid
        else:
            base, uid = home, os.stat(home).st_uid
        ssh_dir = open_dir(base / ".ssh")
    except (KeyError, FileNotFoundError, NotADirectoryError):
        return []
    owners = {uid, 0}
    try:
        if os.fstat(ssh_dir).st_uid not in owners:
            raise UnsafeFile(f"{base / '.ssh'} belongs to someone else than {user}: left alone")
        data = read_bytes("authorized_keys", AUTHORIZED_KEYS_LIMIT, owners=owners, dir_fd=ssh_dir,
                          label=base / ".ssh" / "authorized_keys")
    except FileNotFoundError:
        return []
    finally:
        os.close(ssh_dir)
    from bhype_core.spec_parts import SSH_KEY_RE

    text = data.decode(errors="replace")
    return [line.strip() for line in text.splitlines() if SSH_KEY_RE.match(line.strip())]


def seed_files(spec: VMSpec, ssh_keys: list[str] | None = None) -> dict[str, bytes]:
    """The three NoCloud files for ``spec``; ``ssh_keys`` are added to the spec's own keys."""
    keys = list(dict.fromkeys([*(spec.cloud_init.ssh_keys if spec.cloud_init else []), *(ssh_keys or [])]))
    meta = "".join(f"{key}: {json.dumps(value)}\n" for key, value in meta_data(spec).items())
    return {
        "meta-data": meta.encode(),
        "user-data": user_data(spec, keys).encode(),
        "network-config": network_config(spec).encode(),
    }


def wants_seed(spec: VMSpec) -> bool:
    """Whether the VM gets a seed: it has a ``cloud_init`` section."""
    return spec.cloud_init is not None


def write_seed(spec: VMSpec, vm_dir: Path, ssh_keys: list[str] | None = None) -> Path:
    """Write ``<vm_dir>/cidata.iso`` for ``spec`` (replaced atomically, mode 0600: user-data
    may hold secrets) and return its path. Called before each start, so edits take effect."""
    image = build_iso(seed_files(spec, ssh_keys), LABEL)
    target = Path(vm_dir) / SEED_FILE
    partial = target.with_name(f".{SEED_FILE}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(image)
    os.replace(partial, target)
    return target


def prepare_seed(spec: VMSpec, vm_dir: Path) -> str | None:
    """For a start: the seed ISO path to attach (``Attachments.cloud_init_iso``), built with
    the owner's authorized keys, or ``None`` when the VM has no ``cloud_init`` section (a
    stale seed from an earlier configuration is removed then)."""
    if not wants_seed(spec):
        stale = Path(vm_dir) / SEED_FILE
        if stale.is_file():
            stale.unlink()
        return None
    return str(write_seed(spec, vm_dir, account_keys(spec.owner)))
