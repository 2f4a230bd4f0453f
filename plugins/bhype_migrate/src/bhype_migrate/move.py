"""``vm.move``: move (or copy) a VM to a peer, cold or warm, with rollback and crash recovery.

Steps, each recorded with ``context.checkpoint`` (the kind is resumable) and in the journal:
plan (refuse early) → [warm: copy while running, until the delta is small] → stop → final copy
→ checksums → ``migrate.receive`` on the peer (verifies them, registers the VM) → start there
(if asked) → remove the source, or keep it stopped and marked moved.

Safety: the source is never touched before the peer has the VM registered, verified and (if
asked) running; any failure before that removes what the peer got (``migrate.discard``) and
starts the source again if it ran. A move whose worker died is resumed at the next start of
this worker: finished from ``registered`` on, rolled back before.
"""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from typing import Any

from bhype_core.plugin_api import (
    BhypeError,
    Cancelled,
    Event,
    TaskContext,
    UndoAction,
    ValidationErrors,
    VMSpec,
    ZfsEnd,
    active_driver,
    find_vm,
    hook_errors,
    is_running,
    open_datastore,
    task_progress,
    unregister_vm,
    vm_after,
    vm_before,
    vm_ref,
)
from bhype_migrate import journal
from bhype_migrate.checksums import checksum_tree, regular_files
from bhype_migrate.destination import open_destination
from bhype_migrate.dirty_move import dirty_path
from bhype_migrate.facts import INCOMING_PREFIX
from bhype_migrate.plan import NOT_MOVED, make_plan, move_options, transfer_spec
from bhype_migrate.settings import migrate_settings
from bhype_migrate.transfer import send_files
from bhype_migrate.zfs_transfer import ZfsPasses, converge, guid, peer_end

FINISHING = ("registered", "started")
SOURCE_REMOVAL = "migrate.remove_source"


class Move:
    """One move's state (what a checkpoint stores) and its steps."""

    def __init__(self, context: TaskContext, data: dict[str, Any]) -> None:
        self.context = context
        self.runtime = context.runtime
        self.data = data
        self.peer = open_destination(context, data["to"])  # a group host or a paired peer
        self.settings = migrate_settings(self.runtime)

    # -- bookkeeping ---------------------------------------------------------------------
    def step(self, name: str, percent: float, message: str) -> None:
        self.data["step"] = name
        self.context.checkpoint(name, self.data)
        self.context.progress(percent, message)
        self.context.log(message)

    def timed(self, what: str, since: float) -> None:
        """Record how long a step of the offline window took (``offline_steps`` in the result:
        where a long window goes)."""
        self.data.setdefault("offline_steps", {})[what] = round(time.monotonic() - since, 3)

    def target_name(self) -> str:
        return self.data["as"] or self.data["vm"]

    # -- steps ---------------------------------------------------------------------------
    def copy(self, label: str, low: float, high: float, delta: bool) -> int:
        """One rsync pass of the VM's directory to the peer's incoming directory; returns the
        bytes of changed data it sent (what a warm move converges on)."""
        self.context.check_cancelled()
        destination = f"{self.data['target_root']}/{self.data['incoming']}"
        started = time.monotonic()
        stats = send_files(self.context, self.peer, self.data["source_dir"], destination, delta=delta,
                           on_progress=task_progress(self.context, label, start=low, span=high - low))
        self.data["bytes_sent"] = self.data.get("bytes_sent", 0) + stats.bytes_sent
        journal.set_state(self.runtime, self.context.task_id, "transferring", bytes_sent=self.data["bytes_sent"])
        seconds = time.monotonic() - started
        self.context.log(f"{label}: {stats.literal_bytes} bytes of changed data, {stats.bytes_sent} bytes sent "
                         f"in {seconds:.1f} s")
        self.data.setdefault("passes", []).append({"label": label, "changed": stats.literal_bytes,
                                                   "sent": stats.bytes_sent, "seconds": round(seconds, 3)})
        return stats.literal_bytes

    def stop_source(self) -> None:
        """Stop the source VM (a graceful stop as a sub-task); the offline window starts."""
        name = self.data["vm"]
        if not is_running(self.runtime, name):
            return
        self.data["offline_start"] = time.time()
        arguments: dict[str, Any] = {"name": name}
        if self.settings.stop_timeout:
            arguments["timeout"] = self.settings.stop_timeout
        outcome = self.context.wait(self.context.submit("vm.stop", arguments))[0]
        if not outcome.ok or is_running(self.runtime, name):
            raise BhypeError(f"could not stop VM {name} here: {(outcome.error or {}).get('message', outcome.state)}")

    def receive(self, sums: dict[str, str] | None = None) -> dict[str, Any]:
        """Checksums here (unless given: the dirty-block path kept its disks'), then
        ``migrate.receive`` on the peer (it verifies and registers)."""
        self.context.progress(80, "checksumming the VM's files")
        from pathlib import Path

        root = Path(self.data["source_dir"])
        if sums is None:
            sums = checksum_tree(root, regular_files(root))  # as the final copy left them (VM stopped)
        body = {"incoming": self.data["incoming"], "datastore": self.data["target_datastore"],
                "spec": self.data["spec"], "owner": self.data["owner"], "checksums": sums}
        if self.adopts():  # inside a group the VM keeps its one record: the target takes it over
            body["give_back"] = self.give_back()
        self.context.log(f"checksums of {len(sums)} file(s) taken; the peer verifies them and registers the VM")
        return self.peer.receive(body, self.settings.peer_task_timeout)

    def adopts(self) -> bool:
        """A move (not a copy) to another host of this group: the VM's record changes host."""
        return self.peer.within_group and not self.data["as"]

    def source_running(self) -> bool:
        """Whether the hypervisor here runs the source. Inside a group the record may already
        be the target's (its datastore named as there): ask about the source's own directory."""
        if not self.adopts():
            return is_running(self.runtime, self.data["vm"])
        from pathlib import Path

        vm_dir = Path(open_datastore(self.runtime, self.data["source_datastore"]).vm_dir(self.data["vm"]))
        return bool(active_driver(self.runtime).status(VMSpec.model_validate(self.data["spec"]), vm_dir).active)

    def give_back(self) -> dict[str, str]:
        """Where the record goes back to when the receiving side undoes its part."""
        return {"host": self.data["source_host"], "datastore": self.data["source_datastore"]}

    def start_target(self) -> None:
        """Start the VM on the peer (the source is stopped and stays locked)."""
        if self.source_running():
            raise BhypeError("the source VM runs again; not starting it on the peer as well")
        self.peer.start_vm(self.target_name(), self.settings.peer_task_timeout)

    def finish_source(self) -> list[Any]:
        """Remove the source (or keep it stopped and marked moved) and fire the move hooks."""
        name = self.data["vm"]
        self.context.intent(SOURCE_REMOVAL, f"source of VM {name} (moved to {self.data['to']})", vm=name)
        row = find_vm(self.runtime, name)
        if row is None:  # already removed before a crash
            return []
        ref = vm_ref(self.runtime, row)
        if self.data["keep_source"]:
            journal.set_state(self.runtime, self.context.task_id, "kept", offline_seconds=self.data.get("offline"))
            self.context.log(f"source VM {name} kept here, stopped and marked moved to {self.data['to']}")
        elif self.adopts():  # the record is the target's now: only this host's files go
            open_datastore(self.runtime, self.data["source_datastore"]).remove_vm_dir(name)
            journal.set_state(self.runtime, self.context.task_id, "done", offline_seconds=self.data.get("offline"))
            self.context.log(f"source files of VM {name} removed here; the VM lives on {self.data['to']}")
        else:
            unregister_vm(self.context, name)
            open_datastore(self.runtime, row.datastore).remove_vm_dir(name)
            journal.set_state(self.runtime, self.context.task_id, "done", offline_seconds=self.data.get("offline"))
            self.context.log(f"source VM {name} removed here")
        return vm_after(self.runtime.pm, "move", ref, self.context, destination=self.data["to"])

    # -- whole flows ---------------------------------------------------------------------
    def forward(self) -> dict[str, Any]:
        """Run from wherever the move is (a fresh one starts at ``planned``)."""
        step = self.data.get("step", "planned")
        if step not in FINISHING:
            self.transfer_and_register()
        if self.data["start"] and self.data.get("step") == "registered":
            try:
                self.start_target()
            except BaseException as exc:
                self.rollback(f"the VM did not start on {self.data['to']}: {exc}")
                raise
            self.data["offline"] = round(time.time() - self.data.get("offline_start", time.time()), 3)
            journal.set_state(self.runtime, self.context.task_id, "started", offline_seconds=self.data["offline"])
            self.step("started", 97, f"VM {self.target_name()} started on {self.data['to']}")
        failures = self.finish_source()
        self.context.progress(100, "moved")
        return {
            "vm": self.data["vm"], "to": self.data["to"], "as": self.data["as"], "mode": self.data["mode"],
            "transport": self.data["transport"], "bytes_sent": self.data.get("bytes_sent", 0),
            "offline_seconds": self.data.get("offline"), "started": bool(self.data["start"]),
            "passes": self.data.get("passes", []), "offline_steps": self.data.get("offline_steps", {}),
            "source": "kept, stopped, marked moved" if self.data["keep_source"] else "removed",
            "not_moved": NOT_MOVED, **hook_errors(failures),
        }

    def zfs(self) -> ZfsPasses:
        """The ZFS data path: the VM's dataset tree here → the peer's dataset, through ssh."""
        source = ZfsEnd(self.context.runner, self.data["zfs_source"])
        target = peer_end(self.runtime.local_runner, self.peer, self.data["zfs_target"])  # ssh runs where the key is
        return ZfsPasses(self.context, source, target, self.data, self.data["incoming"].removeprefix(INCOMING_PREFIX),
                         on_pass=lambda: self.context.checkpoint(self.data.get("step", "planned"), self.data))

    def transfer_zfs(self) -> dict[str, Any]:
        """Passes of ``zfs send | receive`` (warm: while the VM runs), stop, the last one, the
        GUID check, then ``migrate.receive`` on the peer (it mounts and registers the dataset)."""
        passes = self.zfs()
        warm = self.data["mode"] == "warm"
        converge(passes, running=warm and is_running(self.runtime, self.data["vm"]),
                 max_passes=self.settings.warm_passes, small=self.settings.warm_delta)
        mark = time.monotonic()
        self.stop_source()
        self.timed("stop", mark)
        self.step("stopped", 60, f"VM {self.data['vm']} is stopped here")
        mark = time.monotonic()
        passes.send("final copy (VM stopped)" if warm else "copy", 60 if warm else 0, 80)
        self.timed("final copy", mark)
        last = passes.verify()
        self.step("transferred", 80, f"dataset sent (@{last} on the peer, same GUID)")
        self.context.check_cancelled()
        mark = time.monotonic()
        body = {"incoming": self.data["incoming"], "datastore": self.data["target_datastore"],
                "spec": self.data["spec"], "owner": self.data["owner"], "checksums": {},
                "snapshot": last, "guid": guid(passes.source, last) or ""}
        received = self.peer.receive(body, self.settings.peer_task_timeout)
        self.timed("register on the peer", mark)
        passes.finish()
        return received

    def transfer_and_register(self) -> None:
        try:
            if self.data["transport"] == "zfs":
                received = self.transfer_zfs()
                self.data["target_uuid"] = received.get("uuid") or self.data.get("target_uuid", "")
            else:
                self.transfer_rsync()
        except BaseException as exc:
            reason = "cancelled" if isinstance(exc, Cancelled) else str(getattr(exc, "message", exc))
            self.rollback(reason)
            raise
        if self.data.get("offline_start") is not None and not self.data["start"]:
            self.data["offline"] = round(time.time() - self.data["offline_start"], 3)
        journal.set_state(self.runtime, self.context.task_id, "registered")
        self.step("registered", 90, f"VM {self.target_name()} registered on {self.data['to']} (checksums verified)")

    def transfer_rsync(self) -> None:
        """The rsync data path: passes of the VM's directory (warm: while it runs), stop, the
        final pass, checksums, then ``migrate.receive`` on the peer (it verifies and registers)."""
        dirty = dirty_path(self)  # QEMU tracks the dirty blocks: copy only those (dirty_move.py)
        if dirty is not None:
            self.data["target_uuid"] = dirty.run().get("uuid") or self.data.get("target_uuid", "")
            return
        if self.data["mode"] == "warm" and is_running(self.runtime, self.data["vm"]):
            for attempt in range(1, self.settings.warm_passes + 1):
                changed = self.copy(f"warm pass {attempt} (VM running)", 0, 60, delta=attempt > 1)
                if attempt > 1 and changed < self.settings.warm_delta:
                    break
        mark = time.monotonic()
        self.stop_source()
        self.timed("stop", mark)
        self.step("stopped", 60, f"VM {self.data['vm']} is stopped here")
        warm = self.data["mode"] == "warm"
        self.copy("final copy (VM stopped)" if warm else "copy", 60 if warm else 0, 80, delta=warm)
        self.step("transferred", 80, "files copied")
        self.context.check_cancelled()
        mark = time.monotonic()
        received = self.receive()
        self.timed("checksums and register on the peer", mark)
        self.data["target_uuid"] = received.get("uuid") or self.data.get("target_uuid", "")

    def rollback(self, reason: str) -> None:
        """Undo the move: the peer discards what it got, the source runs again if it ran."""
        self.context.log(f"rolling back the move: {reason}", "warning")
        detail = f"rolled back: {reason}"
        body = {"datastore": self.data.get("target_datastore"), "incoming": self.data["incoming"]}
        # The peer may have registered the VM even when its answer never came back (the link
        # broke while we waited): name it whenever its UUID is known; the peer removes a VM
        # only when name and UUID both match, so a VM that was there before stays.
        if self.data.get("target_uuid"):
            body.update({"name": self.target_name(), "uuid": self.data["target_uuid"]})
        if self.adopts():  # the target gives the one record back instead of removing it
            body["give_back"] = self.give_back()
        try:
            self.peer.discard(body, self.settings.peer_task_timeout)
            if self.data.get("transport") == "zfs":  # after the peer let go of a VM it registered
                for line in self.zfs().rollback():
                    self.context.log(f"removed {line}")
            self.context.log(f"the peer {self.data['to']} removed what the move left there")
        except BaseException as exc:  # noqa: BLE001 - the source must come back whatever the peer says
            detail += f"; the peer could not be cleaned ({getattr(exc, 'message', exc)}): retried later"
            self.context.log(f"could not clean up on {self.data['to']}: {exc}; retried by migrate.cleanup", "error")
            journal.set_state(self.runtime, self.context.task_id, "rolled_back", detail=detail,
                              cleanup=json.dumps(body))
        else:
            journal.set_state(self.runtime, self.context.task_id, "rolled_back", detail=detail)
        self.runtime.notify(Event(kind="migrate.rolled_back", severity="error", subject=f"vm:{self.data['vm']}",
                                  message=f"move of VM {self.data['vm']} to {self.data['to']} {detail}",
                                  user=self.context.user,
                                  data={"vm": self.data["vm"], "peer": self.data["to"], "reason": reason}))
        if self.data.get("was_running") and not is_running(self.runtime, self.data["vm"]):
            outcome = self.context.wait(self.context.submit("vm.start", {"name": self.data["vm"]}))[0]
            said = "started again" if outcome.ok else f"did NOT start again: {outcome.error}"
            self.context.log(f"source VM {self.data['vm']} {said}", "info" if outcome.ok else "error")


def move_vm(context: TaskContext, vm: str, to: str, mode: str = "cold", transport: str = "auto",
            keep_source: bool = False, start: bool = False, **options: Any) -> dict[str, Any]:
    """Move VM ``vm`` to peer ``to`` (``as``: a copy under a new name, with ``keep_source``)."""
    new_name = move_options(vm, to, mode, transport, keep_source, start, options)
    if context.resume_state is not None:
        return resume(context, context.resume_state.get("data") or {})
    plan = make_plan(context, vm, to, mode, transport, keep_source, start, new_name)
    if plan["problems"]:
        raise ValidationErrors([(path, reason) for path, reason in plan["problems"]])
    row = find_vm(context.runtime, vm)
    assert row is not None
    vm_before(context.runtime.pm, "move", vm_ref(context.runtime, row), context, destination=to)
    data = {
        "vm": vm, "to": to, "mode": mode, "transport": plan["transport"], "keep_source": keep_source, "start": start,
        "as": new_name, "owner": row.owner, "spec": transfer_spec(row.spec, new_name),
        "target_uuid": "" if new_name else str(row.uuid),
        "incoming": f"{INCOMING_PREFIX}{uuidlib.uuid4()}", "source_dir": plan["source_dir"],
        "files": plan["files"], "target_datastore": plan["target"]["datastore"],
        "target_root": plan["target"]["root"], "was_running": plan["running"], "step": "planned",
        "source_host": row.host, "source_datastore": row.datastore,
        "dirty_tracking": bool(options.get("dirty_tracking", True)),
    }
    if plan["transport"] == "zfs":
        data.update({"zfs_source": plan["zfs"]["source"], "zfs_target": plan["zfs"]["target"]})
    transport = plan["transport"]
    context.log(f"moving VM {vm} to {to} ({mode}, {transport}): {len(plan['files'])} file(s), "
                f"{plan['bytes_allocated']} bytes allocated")
    journal.begin(context.runtime, context.task_id, vm, str(row.uuid), to, mode, transport)
    move = Move(context, data)
    move.context.checkpoint("planned", data)
    return move.forward()


def resume(context: TaskContext, data: dict[str, Any]) -> dict[str, Any]:
    """A move whose worker died: finish it from ``registered`` on, else roll it back."""
    if not data:
        raise BhypeError("the move was interrupted before it changed anything")
    move = Move(context, data)
    step = data.get("step", "planned")
    context.log(f"the worker stopped during this move at step {step!r}; resuming", "warning")
    if step in FINISHING:
        return move.forward()
    move.rollback(f"the worker stopped at step {step!r}")
    raise BhypeError(f"the move was interrupted at step {step!r} by a worker stop and rolled back: "
                     f"VM {data['vm']} is here, nothing is left on {data['to']}")


def _source_marker(context: TaskContext, vm: str) -> str:
    """The intent before the source is removed is a marker only: ``vm.move`` is resumable, so
    recovery resumes it (finishing the removal) instead of replaying intents."""
    return f"source of VM {vm}: the move is resumed, not undone"


UNDO_ACTIONS = [UndoAction(name=SOURCE_REMOVAL, run=_source_marker,
                           description="marker before a moved VM's source is removed (the move resumes)")]
