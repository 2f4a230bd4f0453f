"""Replicating a dataset tree to another place (another host's pool) in passes: a full
``zfs send -R`` of a first snapshot, then incremental ``-R -i`` sends of newer ones, each piped
into ``zfs receive`` on the other end; sizes estimated beforehand (``-n``), the result checked
by snapshot GUIDs, and the clean-up of both ends. Moves use it (a warm move's passes); backups
can (a replica kept up to date).

Command choices (OpenZFS zfs-send(8), zfs-receive(8); the same on FreeBSD):

- ``zfs send -R``: a replication stream of the dataset, every descendant (a VM's zvols) and
  its properties (the ``org.bhype:*`` identity) and snapshots; with ``-i @base`` it carries only
  what changed since ``base``. ``-c`` keeps compressed blocks compressed on the wire.
  ``-v -P`` print the ``size`` estimate and a progress line a second (stderr); with ``-n``
  nothing is sent and the estimate is the answer (``size<TAB>bytes``).
- ``zfs receive -u``: the received file system is not mounted, so nothing on the receiving
  host reads or changes the copy between passes (a change there would make the next
  incremental fail).
- ``-F`` only for incremental passes: it rolls the copy back to its newest snapshot (the one
  the stream starts from) and, for a replication stream, destroys snapshots the sender no
  longer has. Never on the first, full pass: there it would overwrite a dataset that happens to
  exist under that name; without it the receive refuses, which is what we want.
- No ``-s`` (resumable receive): an interrupted pass is not resumed, the move is rolled back;
  without ``-s`` zfs-receive(8) discards a partially received stream itself, so an interrupted
  or cancelled pass leaves no partial dataset (no hidden ``%recv`` state taking space).
- GUIDs: a received snapshot keeps the sender's ``guid`` property (zfsprops(7)); equal GUIDs
  of the last snapshot on both ends prove the copy is that snapshot, while the stream's own
  checksums (verified by ``zfs receive``) prove the bytes arrived intact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bhype_core.errors import BhypeError, Conflict, ValidationErrors
from bhype_core.transfer.rsync_run import CancelCheck, ProgressHandler
from bhype_core.transfer.zfs_stream import SendResult, send_receive


def _same(argv: list[str]) -> list[str]:
    return argv


@dataclass(frozen=True)
class ZfsEnd:
    """One end of a replication: ``dataset`` on the host ``runner`` reaches, where each argv
    first goes through ``wrap`` (``Peer.ssh``-style: run it on another host through ssh(1);
    the identity when the runner itself reaches that host)."""

    runner: Any
    dataset: str
    wrap: Callable[[list[str]], list[str]] = field(default=_same)
    zfs: str = "zfs"

    def __post_init__(self) -> None:
        if not self.dataset or self.dataset.startswith("-") or "@" in self.dataset or " " in self.dataset:
            raise ValidationErrors([("dataset", f"{self.dataset!r} is not a dataset name")])

    def run(self, argv: list[str], check: bool = True) -> Any:
        """Run ``argv`` on this end (through ``wrap``)."""
        return self.runner.run(self.wrap(argv), check=check)

    def snapshot(self, name: str) -> str:
        """``DATASET@name``."""
        if not name or "@" in name or "/" in name or name.startswith("-"):
            raise ValidationErrors([("snapshot", f"{name!r} is not a snapshot name")])
        return f"{self.dataset}@{name}"


def replica_send_argv(snapshot: str, base: str | None = None, *, estimate: bool = False,
                      zfs: str = "zfs") -> list[str]:
    """``zfs send -R -c -v -P [-n] [-i @BASE] DATASET@SNAP`` (zfs-send(8))."""
    if "@" not in snapshot or snapshot.startswith("-"):
        raise ValidationErrors([("snapshot", f"{snapshot!r} is not DATASET@SNAPSHOT")])
    argv = [zfs, "send", "-R", "-c", "-v", "-P"]
    if estimate:
        argv.append("-n")
    if base is not None:
        if not base.startswith("@") or len(base) < 2:
            raise ValidationErrors([("base", f"{base!r} is not @SNAPSHOT")])
        argv += ["-i", base]
    return [*argv, snapshot]


def replica_receive_argv(dataset: str, *, incremental: bool, zfs: str = "zfs") -> list[str]:
    """``zfs receive -u [-F] DATASET`` (zfs-receive(8); ``-F`` only for incremental passes)."""
    if not dataset or dataset.startswith("-") or "@" in dataset:
        raise ValidationErrors([("dataset", f"{dataset!r} is not a dataset name")])
    return [zfs, "receive", "-u", *(["-F"] if incremental else []), dataset]


def parse_send_size(text: str) -> int:
    """The total of ``zfs send -n -v -P`` output: its ``size<TAB>bytes`` line (zfs-send(8)).

    :raises BhypeError: no ``size`` line.
    """
    for line in text.splitlines():
        parts = line.strip().split("\t")
        if len(parts) == 2 and parts[0] == "size" and parts[1].isdigit():
            return int(parts[1])
    raise BhypeError(f"zfs send -nvP: no 'size' line in {text[:200]!r}")


def estimate(source: ZfsEnd, name: str, base: str | None = None) -> int:
    """Bytes a send of snapshot ``name`` (incremental from ``base``) would produce; nothing sent.
    OpenZFS prints the dry run's lines on stdout (older releases: stderr): both are read."""
    base_arg = f"@{base}" if base else None
    result = source.run(replica_send_argv(source.snapshot(name), base_arg, estimate=True, zfs=source.zfs))
    return parse_send_size(f"{result.stdout}\n{result.stderr}")


def take_snapshot(end: ZfsEnd, name: str) -> str:
    """``zfs snapshot -r DATASET@name`` (zfs-snapshot(8): every descendant at one instant)."""
    snapshot = end.snapshot(name)
    end.run([end.zfs, "snapshot", "-r", snapshot])
    return snapshot


def destroy_snapshot(end: ZfsEnd, name: str) -> bool:
    """``zfs destroy -r DATASET@name`` (zfs-destroy(8): the snapshot of every descendant);
    absent is fine. Returns whether it existed."""
    snapshot = end.snapshot(name)
    if not exists(end, snapshot):
        return False
    end.run([end.zfs, "destroy", "-r", snapshot])
    return True


def exists(end: ZfsEnd, name: str | None = None) -> bool:
    """Whether ``name`` (default the end's dataset) exists (``zfs list -H -o name``, exit 0)."""
    return end.run([end.zfs, "list", "-H", "-o", "name", name or end.dataset], check=False).returncode == 0


def guid(end: ZfsEnd, name: str) -> str | None:
    """The ``guid`` of snapshot ``name`` (``zfs get -H -p -o value guid``), ``None`` if absent."""
    result = end.run([end.zfs, "get", "-H", "-p", "-o", "value", "guid", end.snapshot(name)], check=False)
    value = result.stdout.strip()
    return value if result.returncode == 0 and value.isdigit() else None


def destroy_tree(end: ZfsEnd) -> bool:
    """``zfs destroy -r DATASET``: the copy with its descendants and snapshots (a rollback of a
    receive); absent is fine. Returns whether there was anything."""
    if not exists(end):
        return False
    end.run([end.zfs, "destroy", "-r", end.dataset])
    return True


def send_pass(source: ZfsEnd, target: ZfsEnd, name: str, base: str | None = None, *,
              on_progress: ProgressHandler | None = None, cancel: CancelCheck | None = None,
              timeout: float | None = None) -> SendResult:
    """Send snapshot ``name`` of ``source`` (incremental from ``base``) into ``target``.

    :raises Conflict: a full pass whose target dataset exists already (nothing sent).
    :raises TransferFailed: either side failed (the receiver's words first); nothing partial
        stays on ``target`` (no ``-s``).
    :raises Cancelled: ``cancel`` answered true; both sides were stopped.
    """
    if base is None and exists(target):
        # Refused before anything is sent (a full receive would refuse too, after the sender
        # started): the name is taken there, and what is there is not ours to replace.
        raise Conflict(f"{target.dataset} exists already on the receiving side; nothing was sent")
    send = replica_send_argv(source.snapshot(name), f"@{base}" if base else None, zfs=source.zfs)
    receive = target.wrap(replica_receive_argv(target.dataset, incremental=base is not None, zfs=target.zfs))
    return send_receive(source.runner, source.wrap(send), receive,
                        to=target.runner if target.runner is not source.runner else None,
                        on_progress=on_progress, cancel=cancel, timeout=timeout)


def same_snapshot(source: ZfsEnd, target: ZfsEnd, name: str) -> bool:
    """Whether ``target`` holds snapshot ``name`` of ``source`` (equal GUIDs)."""
    found = guid(source, name)
    return found is not None and found == guid(target, name)

