"""A consistent point of a running QEMU VM's disks through QMP (issue 16): freeze, copy, thaw.

The QMP commands and events follow QEMU 7.2's schema (``qapi/block-core.json``:
``blockdev-snapshot-sync``, ``block-commit``, ``block-job-complete``, ``query-block``, the
``BLOCK_JOB_READY``/``BLOCK_JOB_COMPLETED`` events; ``qapi/transaction.json``;
``qapi/run-state.json``: ``set-action``) and qemu-img(1) ``commit``.

**Freeze.** ``set-action reboot=reset shutdown=pause`` first: the VM runs with ``-no-reboot``
(a guest reboot ends QEMU and the supervisor starts a new one on the base images), which would
lose the overlay's writes; while frozen a reboot resets in place and a power-off pauses.
Then one ``transaction`` of ``blockdev-snapshot-sync`` per disk: at one instant every disk's
writes go to a new qcow2 overlay beside the VM, and the base images stop changing: they are
the consistent point, read by the caller while the guest keeps running.

**Thaw.** Per disk an active ``block-commit`` (the overlay's data back into the base), wait for
``BLOCK_JOB_READY``, ``block-job-complete`` (pivot: the base is the active image again), wait
for ``BLOCK_JOB_COMPLETED``; then the actions are set back to what ``-no-reboot`` gives, a
guest that powered off meanwhile (paused in run state ``shutdown``) is ended with ``quit`` (the
supervisor already saw its ``SHUTDOWN`` event and records a power-off), and the overlays go.
If QEMU is gone, each overlay is committed offline (``qemu-img commit``). A freeze finds the
overlay of an interrupted backup (the worker died while frozen) by ``query-block`` and commits
it first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bhype_core.drivers.capabilities import FrozenDisks
from bhype_core.drivers.qmp import QMPClient, QMPError
from bhype_core.errors import BhypeError

CONNECT_TIMEOUT = 30.0  # the monitor serves one client: a stats sample may hold it briefly
COMMIT_TIMEOUT = 6 * 3600.0  # an overlay holds what the guest wrote during the copy
FROZEN_ACTIONS = {"reboot": "reset", "shutdown": "pause"}
NORMAL_ACTIONS = {"reboot": "shutdown", "shutdown": "poweroff"}  # -no-reboot, and QEMU's default


class FreezeFailed(BhypeError):
    """A freeze or thaw did not complete; the message says what state the disks are in."""

    code = "freeze_failed"
    http_status = 500


def drive_id(index: int) -> str:
    """The ``-drive id=`` of disk ``index`` (:func:`bhype_core.drivers.qemu_argv.qemu_argv`)."""
    return f"disk{index}"


def overlay_path(vm_dir: Path, index: int) -> Path:
    """Where disk ``index``'s overlay lives while frozen (in the VM's directory)."""
    return Path(vm_dir) / f".backup-freeze-disk{index}.qcow2"


def snapshot_transaction(overlays: dict[str, Path]) -> dict[str, Any]:
    """The ``transaction`` arguments taking every drive's overlay at one instant."""
    return {"actions": [{"type": "blockdev-snapshot-sync",
                         "data": {"device": device, "snapshot-file": str(path), "format": "qcow2",
                                  "mode": "absolute-paths"}} for device, path in overlays.items()]}


def parse_block_chains(reply: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Per drive (``query-block`` ``device``), its image chain, active image first."""
    chains: dict[str, list[str]] = {}
    for entry in reply or []:
        image = (entry.get("inserted") or {}).get("image")
        chain: list[str] = []
        while image:
            chain.append(str(image.get("filename", "")))
            image = image.get("backing-image")
        chains[str(entry.get("device", ""))] = chain
    return chains


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def commit_active(client: QMPClient, device: str, timeout: float = COMMIT_TIMEOUT) -> None:
    """Commit ``device``'s active overlay into its backing image and pivot back to it.

    :raises FreezeFailed: the job failed (the drive still runs on its overlay)."""
    job = f"bhype-commit-{device}"
    client.execute("block-commit", {"job-id": job, "device": device})

    def mine(event: dict[str, Any]) -> bool:
        return (event.get("data") or {}).get("device") == job

    # READY, or COMPLETED/CANCELLED when the job ended early (an error).
    event = client.wait_event(("BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"), timeout, match=mine)
    if event["event"] != "BLOCK_JOB_READY":
        raise FreezeFailed(f"committing the backup overlay of {device} failed: "
                           f"{(event.get('data') or {}).get('error', event['event'])}")
    client.execute("block-job-complete", {"device": job})
    done = client.wait_event(("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"), timeout, match=mine)
    error = (done.get("data") or {}).get("error")
    if done["event"] != "BLOCK_JOB_COMPLETED" or error:
        raise FreezeFailed(f"committing the backup overlay of {device} failed: {error or done['event']}")


def commit_argv(qemu_img: str, overlay: Path) -> list[str]:
    """qemu-img(1) ``commit``: write a qcow2 overlay's data into its backing file (offline)."""
    return [qemu_img, "commit", "-q", "-f", "qcow2", str(overlay)]


class QemuFreezer:
    """Freeze and thaw one VM's disks over its driver monitor ``socket``; host commands (the
    offline commit, removing overlays) go through ``runner``."""

    def __init__(self, runner: Any, socket: Path, vm_dir: Path, disk_paths: Sequence[str],
                 qemu_img: str = "qemu-img") -> None:
        self.runner = runner
        self.socket = Path(socket)
        self.vm_dir = Path(vm_dir)
        self.disk_paths = [str(p) for p in disk_paths]
        self.qemu_img = qemu_img

    def _client(self) -> QMPClient:
        return QMPClient(self.socket, timeout=CONNECT_TIMEOUT).connect()

    def freeze(self) -> FrozenDisks:
        """Redirect every disk's writes to an overlay; the base images are the point."""
        devices = {drive_id(i): path for i, path in enumerate(self.disk_paths)}
        overlays = {drive_id(i): overlay_path(self.vm_dir, i) for i in range(len(self.disk_paths))}
        with self._client() as client:
            client.execute("set-action", FROZEN_ACTIONS)
            try:
                chains = parse_block_chains(client.execute("query-block"))
                for device, path in devices.items():
                    chain = chains.get(device) or []
                    if not any(_same(image, path) for image in chain):
                        raise FreezeFailed(f"drive {device} does not run on {path} (images: {chain or 'none'})")
                    if not _same(chain[0], path):  # an interrupted backup's overlay: commit it first
                        commit_active(client, device)
                        self._remove(Path(chain[0]))
                for path in overlays.values():
                    self._remove(path)  # a stale file QEMU would refuse to create over
                client.execute("transaction", snapshot_transaction(overlays))
            except BaseException:
                client.execute("set-action", NORMAL_ACTIONS)
                raise
        return FrozenDisks(disks={device: Path(p) for device, p in devices.items()}, overlays=overlays)

    def thaw(self, frozen: FrozenDisks) -> None:
        """Commit every overlay back and pivot; QEMU gone: commit them offline."""
        try:
            client = self._client()
        except QMPError:
            client = None
        if client is None:
            for overlay in frozen.overlays.values():
                if overlay.exists():
                    self.runner.run(commit_argv(self.qemu_img, overlay), timeout=COMMIT_TIMEOUT)
                    self._remove(overlay)
            return
        with client:
            chains = parse_block_chains(client.execute("query-block"))
            for device, overlay in frozen.overlays.items():
                chain = chains.get(device) or []
                if chain and _same(chain[0], str(overlay)):
                    commit_active(client, device)
                self._remove(overlay)
            client.execute("set-action", NORMAL_ACTIONS)
            status = client.execute("query-status") or {}
            if status.get("status") == "shutdown":  # powered off while frozen: end it as it asked
                try:
                    client.execute("quit")
                except QMPError:
                    pass  # QEMU closes the monitor as it exits

    def _remove(self, path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass

