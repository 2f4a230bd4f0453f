"""Dirty-block tracking of a running QEMU VM's disks (capability ``DIRTY_TRACKING``, issue 17).

QMP and NBD facts follow QEMU 7.2: ``docs/interop/bitmaps.rst`` and ``qapi/block-core.json``
(``block-dirty-bitmap-add``/``-disable``/``-remove``, ``query-block``: a drive's ``inserted``
``node-name`` and its ``dirty-bitmaps``), ``qapi/transaction.json`` (both bitmap actions in one
``transaction``), ``qapi/block-export.json`` (``nbd-server-start``, ``block-export-add`` type
``nbd`` with ``bitmaps``, ``block-export-del``, the ``BLOCK_EXPORT_DELETED`` event),
``docs/interop/nbd.txt`` (metadata context ``qemu:dirty-bitmap:NAME``) and qemu-img(1) ``map
--output=json``: with the NBD driver's ``x-dirty-bitmap=qemu:dirty-bitmap:NAME`` option the
bitmap is reported in place of allocation, a dirty range as ``"data": false`` (checked against
QEMU 7.2 by tests/core/test_qemu_dirty.py).

**Rotation.** One enabled bitmap per disk records writes. :meth:`QemuDirtyTracker.changed`
runs one ``transaction`` per VM that adds the next generation's bitmaps and disables the
current ones: every write lands in exactly one generation (a write completing at the swap is
recorded in the new one and copied by the next pass). The disabled bitmap is exported read-only
over QEMU's NBD server on a unix socket beside the QMP socket, listed with ``qemu-img map``,
unexported and removed.

**Stop.** The guest powers off (``vm.stop``) while ``set-action shutdown=pause`` holds QEMU in
run state ``shutdown`` instead of letting it exit (the freeze of ``qemu_freeze`` does the
same); a watcher thread then reads the last generation and sends ``quit``: the supervisor has
seen the ``SHUTDOWN`` event and records a power-off, ``vm.stop`` sees the VM stopped. If the
stop is forced instead (the guest ignored ACPI), QEMU ends without the last generation read:
:class:`~bhype_core.drivers.dirty.FinalChanges` stays empty and the caller compares whole
disks.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bhype_core.drivers.dirty import DirtyTracker, Extent, FinalChanges, TrackingLost, merge_extents
from bhype_core.drivers.qmp import QMPClient, QMPClosed, QMPCommandError, QMPError
from bhype_core.errors import NotSupported

GRANULARITY = 64 * 1024  # bytes per bitmap bit (QEMU's default for a raw image)
CONNECT_TIMEOUT = 30.0  # the driver's monitor serves one client at a time
WATCH_INTERVAL = 0.2
MAP_TIMEOUT = 600.0


def drive_id(index: int) -> str:
    """``-drive id=`` of disk ``index`` (:func:`bhype_core.drivers.qemu_argv.qemu_argv`)."""
    return f"disk{index}"


def parse_dirty_map(text: str) -> list[Extent]:
    """The dirty extents in ``qemu-img map --output=json`` of an NBD export read with
    ``x-dirty-bitmap``: entries with ``"data": false`` (module docstring), merged."""
    entries = json.loads(text or "[]")
    if not isinstance(entries, list):
        raise ValueError(f"qemu-img map gave no list: {text[:200]!r}")
    return merge_extents((int(e["start"]), int(e["length"])) for e in entries
                         if isinstance(e, dict) and e.get("data") is False)


def map_argv(qemu_img: str, socket: Path, export: str, bitmap: str) -> list[str]:
    """qemu-img(1) ``map`` of ``bitmap`` through the NBD export ``export`` on ``socket``."""
    options = (f"driver=nbd,server.type=unix,server.path={socket},export={export},"
               f"x-dirty-bitmap=qemu:dirty-bitmap:{bitmap}")
    return [qemu_img, "map", "--output=json", "--image-opts", options]


def _same(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


class QemuDirtyTracker(DirtyTracker):
    """Dirty bitmaps on every disk of one VM (see the module docstring).

    :param runner: runs ``qemu-img map`` (on this host: it reaches QEMU's unix socket).
    :param ctl_socket: the driver's QMP monitor. :param nbd_socket: where QEMU's NBD server
        listens while tracking. :param disk_paths: each ``spec.disks`` entry's file, in order.
    """

    def __init__(self, runner: Any, ctl_socket: Path, nbd_socket: Path, disk_paths: Sequence[str],
                 qemu_img: str = "qemu-img") -> None:
        self.runner = runner
        self.ctl_socket = Path(ctl_socket)
        self.nbd_socket = Path(nbd_socket)
        self.disk_paths = [str(p) for p in disk_paths]
        self.qemu_img = qemu_img
        self.prefix = f"bhype-dirty-{secrets.token_hex(3)}-"
        self.generation = 0
        self.lock = threading.Lock()  # the watcher thread and the caller share the monitor
        self.nbd_started = False
        self.ended = False  # the watcher told QEMU to quit: nothing left to release

    def _client(self) -> QMPClient:
        return QMPClient(self.ctl_socket, timeout=CONNECT_TIMEOUT).connect()

    def bitmap(self, generation: int) -> str:
        return f"{self.prefix}{generation}"

    def nodes(self, client: QMPClient) -> dict[str, str]:
        """Per disk path, the block node QEMU writes it through.

        :raises NotSupported: a drive runs on another image (a backup's overlay) or is absent.
        """
        found: dict[str, str] = {}
        entries = {str(e.get("device", "")): e for e in client.execute("query-block") or []}
        for index, path in enumerate(self.disk_paths):
            inserted = (entries.get(drive_id(index)) or {}).get("inserted") or {}
            image = str((inserted.get("image") or {}).get("filename", ""))
            if not inserted.get("node-name") or not image or not _same(image, path):
                raise NotSupported(f"dirty tracking of {path} (drive {drive_id(index)} runs on {image or 'nothing'})",
                                   "driver qemu")
            found[path] = str(inserted["node-name"])
        return found

    # -- tracking ----------------------------------------------------------------------------
    def start(self) -> None:
        with self.lock, self._client() as client:
            nodes = self.nodes(client)
            self.generation = 1
            client.execute("transaction", {"actions": [
                {"type": "block-dirty-bitmap-add",
                 "data": {"node": node, "name": self.bitmap(1), "granularity": GRANULARITY}}
                for node in nodes.values()]})
            self.nbd_socket.unlink(missing_ok=True)
            client.execute("nbd-server-start", {"addr": {"type": "unix", "data": {"path": str(self.nbd_socket)}}})
            self.nbd_started = True

    def changed(self) -> dict[str, list[Extent]]:
        with self.lock:
            try:
                with self._client() as client:
                    return self._rotate(client)
            except QMPCommandError as exc:
                raise TrackingLost(f"QEMU no longer tracks the disks' writes: {exc.desc}") from None
            except QMPError as exc:
                raise TrackingLost(f"QEMU no longer answers: {exc.message}") from None

    def _rotate(self, client: QMPClient) -> dict[str, list[Extent]]:
        nodes = self.nodes(client)
        old, new = self.bitmap(self.generation), self.bitmap(self.generation + 1)
        actions: list[dict[str, Any]] = []
        for node in nodes.values():
            actions.append({"type": "block-dirty-bitmap-add",
                            "data": {"node": node, "name": new, "granularity": GRANULARITY}})
            actions.append({"type": "block-dirty-bitmap-disable", "data": {"node": node, "name": old}})
        client.execute("transaction", {"actions": actions})
        self.generation += 1
        return {path: self._read(client, node, old) for path, node in nodes.items()}

    def _read(self, client: QMPClient, node: str, bitmap: str) -> list[Extent]:
        """The extents of ``bitmap`` on ``node`` (exported, mapped, unexported, removed)."""
        export = f"{bitmap}-{node.strip('#')}"
        client.execute("block-export-add", {"type": "nbd", "id": export, "node-name": node, "name": export,
                                            "writable": False, "bitmaps": [bitmap]})
        try:
            mapped = self.runner.run(map_argv(self.qemu_img, self.nbd_socket, export, bitmap), timeout=MAP_TIMEOUT)
        finally:
            client.execute("block-export-del", {"id": export})
            try:
                client.wait_event("BLOCK_EXPORT_DELETED", 30.0,
                                  match=lambda event: (event.get("data") or {}).get("id") == export)
            except QMPError:
                pass  # the bitmap stays busy a moment longer; removing it below then fails loudly
        client.execute("block-dirty-bitmap-remove", {"node": node, "name": bitmap})
        return parse_dirty_map(mapped.stdout)

    # -- the stop ----------------------------------------------------------------------------
    @contextmanager
    def stopping(self) -> Iterator[FinalChanges]:
        final = FinalChanges()
        with self.lock, self._client() as client:
            client.execute("set-action", {"shutdown": "pause"})
        done = threading.Event()
        watcher = threading.Thread(target=self._watch, args=(final, done), name="bhype-dirty-stop", daemon=True)
        watcher.start()
        try:
            yield final
        finally:
            done.set()
            watcher.join()
            if final.extents is None:
                try:  # QEMU still runs (the stop failed): a later power-off ends it again
                    with self.lock, QMPClient(self.ctl_socket, timeout=2.0).connect() as client:
                        client.execute("set-action", {"shutdown": "poweroff"})
                except QMPError:
                    pass  # QEMU is gone

    def _watch(self, final: FinalChanges, done: threading.Event) -> None:
        """Until ``done``: when the guest powered off (run state ``shutdown``), read the last
        generation into ``final`` and end QEMU."""
        while not done.is_set():
            try:
                with self.lock, QMPClient(self.ctl_socket, timeout=2.0).connect() as client:
                    if (client.execute("query-status") or {}).get("status") == "shutdown":
                        try:
                            final.extents = self._rotate(client)
                        except QMPError as exc:
                            final.detail = f"the last changes could not be read: {exc.message}"
                        try:
                            client.execute("quit")
                        except QMPClosed:
                            pass  # QEMU closes the monitor as it exits
                        self.ended = True
                        return
            except QMPError as exc:
                final.detail = f"QEMU ended before the last changes were read ({exc.message})"
            done.wait(WATCH_INTERVAL)

    def close(self) -> None:
        if self.ended:  # no waiting for a monitor that is gone (it was in the offline window)
            self.nbd_socket.unlink(missing_ok=True)
            return
        with self.lock:
            try:
                client = QMPClient(self.ctl_socket, timeout=5.0).connect()
            except QMPError:
                return  # QEMU is gone, and its bitmaps with it
            with client:
                try:
                    for entry in client.execute("query-block") or []:
                        inserted = entry.get("inserted") or {}
                        for bitmap in inserted.get("dirty-bitmaps") or []:
                            if str(bitmap.get("name", "")).startswith(self.prefix):
                                client.execute("block-dirty-bitmap-remove",
                                               {"node": inserted["node-name"], "name": bitmap["name"]})
                    if self.nbd_started:
                        client.execute("nbd-server-stop")
                        self.nbd_started = False
                except QMPError:
                    pass  # QEMU is exiting
        self.nbd_socket.unlink(missing_ok=True)

