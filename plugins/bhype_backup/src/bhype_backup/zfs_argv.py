"""Argv builders and parsers for ZFS backup targets (pure functions, recorded samples in tests).

Each builder follows its OpenZFS man page (the same commands on FreeBSD and Linux):

* zfs-list(8): ``-H`` no header, tab-separated; ``-p`` exact numbers; ``-t snapshot`` only
  snapshots; ``-d 1`` the dataset's own snapshots (not its children's); ``-s createtxg`` oldest
  first. ``guid`` is a snapshot's identity across ``zfs send | zfs receive``: a received
  snapshot has the sender's GUID, so two sides share a snapshot exactly when a GUID matches.
* zfs-hold(8)/zfs-release(8): ``zfs hold [-r] TAG SNAPSHOT…`` — a held snapshot cannot be
  destroyed until every tag is released; ``zfs holds -H`` lists ``NAME TAG TIMESTAMP``.
* zfs-destroy(8): ``zfs destroy [-r] DATASET@SNAP`` (``-r``: that snapshot of every child too).
* zfs-receive(8): ``-u`` do not mount, ``-o PROPERTY=VALUE`` set a property on what is received
  (``volmode=dev`` for a restored zvol, as bHype creates them).
* zfs-clone(8): ``zfs clone -o PROP=VALUE SNAPSHOT CLONE`` — a writable copy of a snapshot
  sharing all its blocks (``readonly=on`` for a file system read back, ``volmode=dev`` for a
  zvol: a bare device node, no partition scanning).
* zfs-send(8) is built by the core (``zfs_send_argv``: ``-v -P -c [-i @BASE]``).
"""

from __future__ import annotations

import re

from bhype_core.plugin_api import ValidationErrors

HOLD_TAG = "bhype-backup"
SNAPSHOT_PREFIX = "bhype-backup-"
_DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*(?:/[A-Za-z0-9_.:-]+)*$")
_SNAP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def check_dataset(name: str) -> str:
    """``name`` when it is a dataset name (no snapshot part, no option), else a clear error."""
    if not isinstance(name, str) or not _DATASET.match(name):
        raise ValidationErrors([("dataset", f"{name!r} is not a ZFS dataset name")])
    return name


def check_snapshot(name: str) -> str:
    """``DATASET@SNAP`` checked."""
    dataset, at, snap = str(name).partition("@")
    if not at or not _SNAP.match(snap):
        raise ValidationErrors([("snapshot", f"{name!r} is not DATASET@SNAPSHOT")])
    check_dataset(dataset)
    return name


def list_snapshots(dataset: str) -> list[str]:
    """``zfs list -H -p -o name,guid -t snapshot -d 1 -s createtxg DATASET`` (oldest first)."""
    return ["zfs", "list", "-H", "-p", "-o", "name,guid", "-t", "snapshot", "-d", "1", "-s", "createtxg",
            check_dataset(dataset)]


def list_tree(dataset: str) -> list[str]:
    """``zfs list -H -p -o name,type -r -t filesystem,volume DATASET``: it and its children."""
    return ["zfs", "list", "-H", "-p", "-o", "name,type", "-r", "-t", "filesystem,volume", check_dataset(dataset)]


def get_values(properties: list[str], name: str) -> list[str]:
    """``zfs get -H -p -o value PROP[,PROP…] NAME`` (zfs-get(8)): one value per line, in order."""
    checked = check_snapshot(name) if "@" in name else check_dataset(name)
    return ["zfs", "get", "-H", "-p", "-o", "value", ",".join(properties), checked]


def set_property(name: str, prop: str, value: str) -> list[str]:
    """``zfs set PROP=VALUE DATASET`` (zfs-set(8))."""
    return ["zfs", "set", f"{prop}={value}", check_dataset(name)]


def inherit(name: str, prop: str) -> list[str]:
    """``zfs inherit PROP DATASET`` (zfs-inherit(8)): back to the inherited value."""
    return ["zfs", "inherit", prop, check_dataset(name)]


def hold(snapshot: str, tag: str = HOLD_TAG, recursive: bool = True) -> list[str]:
    """``zfs hold [-r] TAG DATASET@SNAP``."""
    return ["zfs", "hold", *(["-r"] if recursive else []), tag, check_snapshot(snapshot)]


def release(snapshot: str, tag: str = HOLD_TAG, recursive: bool = True) -> list[str]:
    """``zfs release [-r] TAG DATASET@SNAP``."""
    return ["zfs", "release", *(["-r"] if recursive else []), tag, check_snapshot(snapshot)]


def holds(snapshot: str, recursive: bool = True) -> list[str]:
    """``zfs holds -H [-r] DATASET@SNAP``: ``NAME<TAB>TAG<TAB>TIMESTAMP`` lines."""
    return ["zfs", "holds", "-H", *(["-r"] if recursive else []), check_snapshot(snapshot)]


def destroy_snapshot(snapshot: str, recursive: bool = True) -> list[str]:
    """``zfs destroy [-r] DATASET@SNAP``."""
    return ["zfs", "destroy", *(["-r"] if recursive else []), check_snapshot(snapshot)]


def destroy_dataset(dataset: str) -> list[str]:
    """``zfs destroy -r DATASET`` (its children and snapshots; refused while one is held)."""
    return ["zfs", "destroy", "-r", check_dataset(dataset)]


def create_parents(dataset: str) -> list[str]:
    """``zfs create -p DATASET`` (zfs-create(8)): the target's root, absent parents too."""
    return ["zfs", "create", "-p", check_dataset(dataset)]


def rename(old: str, new: str) -> list[str]:
    """``zfs rename OLD NEW`` (zfs-rename(8))."""
    return ["zfs", "rename", check_dataset(old), check_dataset(new)]


def receive(dataset: str, *, mount: bool = False, properties: dict[str, str] | None = None) -> list[str]:
    """``zfs receive [-u] [-o PROP=VALUE]… DATASET``: not resumable on purpose, so an interrupted
    receive leaves nothing behind (zfs-receive(8): without ``-s`` the partial state is discarded)."""
    argv = ["zfs", "receive", *([] if mount else ["-u"])]
    for key, value in (properties or {}).items():
        argv += ["-o", f"{key}={value}"]
    return [*argv, check_dataset(dataset)]


def clone(snapshot: str, dataset: str, properties: dict[str, str]) -> list[str]:
    """``zfs clone [-o PROP=VALUE]… DATASET@SNAP CLONE`` (zfs-clone(8))."""
    argv = ["zfs", "clone"]
    for key, value in properties.items():
        argv += ["-o", f"{key}={value}"]
    return [*argv, check_snapshot(snapshot), check_dataset(dataset)]


def sha256_argv(platform: str, path: str) -> list[str]:
    """The digest of ``path`` on a host whose ``uname -s`` is ``platform``: FreeBSD's
    ``sha256 -q FILE`` (sha256(1), i.e. md5(1): ``-q`` prints the digest only) or GNU
    coreutils' ``sha256sum -- FILE`` (sha256sum(1): ``DIGEST  FILE``); the first word either way."""
    if not path.startswith("/"):
        raise ValidationErrors([("path", f"{path!r} is not an absolute path")])
    return ["sha256", "-q", path] if platform.strip() == "FreeBSD" else ["sha256sum", "--", path]


def parse_sha256(text: str) -> str:
    """The hex digest of ``sha256_argv`` output.

    :raises ValueError: not a sha256 digest."""
    word = (text.split() or [""])[0].lower()
    if len(word) != 64 or any(c not in "0123456789abcdef" for c in word):
        raise ValueError(f"unexpected sha256 output: {text[:120]!r}")
    return word


def parse_snapshots(text: str) -> list[tuple[str, str]]:
    """``(snapshot name without the dataset, guid)`` of ``list_snapshots`` output, in order.

    :raises ValueError: a line that is not ``DATASET@SNAP<TAB>GUID``."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or "@" not in fields[0] or not fields[1].isdigit():
            raise ValueError(f"unexpected zfs list line: {line!r}")
        found.append((fields[0].split("@", 1)[1], fields[1]))
    return found


def parse_tree(text: str) -> list[tuple[str, str]]:
    """``(dataset, type)`` of ``list_tree`` output (``filesystem``/``volume``), parents first."""
    rows = []
    for line in text.splitlines():
        if line.strip():
            name, _, kind = line.partition("\t")
            if kind not in ("filesystem", "volume"):
                raise ValueError(f"unexpected zfs list line: {line!r}")
            rows.append((name, kind))
    return rows


def parse_holds(text: str) -> list[tuple[str, str]]:
    """``(snapshot, tag)`` pairs of ``zfs holds -H`` output."""
    pairs = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and "@" in fields[0]:
            pairs.append((fields[0].strip(), fields[1].strip()))
    return pairs


def newest_common(source: list[tuple[str, str]], target: list[tuple[str, str]]) -> str | None:
    """The newest snapshot of ``source`` (oldest first) whose GUID ``target`` also has, or ``None``
    (no common snapshot: the chain is broken and only a full send can follow)."""
    guids = {guid for _, guid in target}
    for name, guid in reversed(source):
        if guid in guids:
            return name
    return None
