"""What the bhyve and QEMU drivers share: launching the supervisor, reading state from reality,
stopping with a timeout then force, crash reports and the list of running instances."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from abc import abstractmethod
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bhype_core.drivers import saved_state
from bhype_core.drivers.base import (
    Attachments,
    HostCommand,
    HypervisorDriver,
    HypervisorFailed,
    VMState,
    VMStatus,
)
from bhype_core.drivers.launcher_client import launcher_for
from bhype_core.drivers.ports import PortAllocator
from bhype_core.drivers.state import (
    ProcessTable,
    VMFiles,
    boot_id,
    now_iso,
    read_json,
    supervisor_markers,
    write_json,
)
from bhype_core.errors import CommandError, Conflict, NotSupported
from bhype_core.host.argv import ArgvError
from bhype_core.host.runner import LocalRunner
from bhype_core.safe_files import open_regular
from bhype_core.spec import VMSpec

log = logging.getLogger(__name__)

ACTIVE = ("starting", "running", "stopping")
POLL = 0.1  # seconds between state checks while waiting for a stop
FORCE_TIMEOUT = 15.0  # seconds a forced power-off may take before the process is killed


@dataclass
class Prepared:
    """What one start needs: the supervisor's config, host commands to run first (``setup``)
    and the files they create (removed again if the start fails), files to write, and the
    commands the supervisor will run (for :meth:`plan`)."""

    config: dict[str, Any]
    setup: list[HostCommand] = field(default_factory=list)
    creates: list[Path] = field(default_factory=list)
    files: dict[Path, str] = field(default_factory=dict)
    supervised: list[HostCommand] = field(default_factory=list)


class SupervisedDriver(HypervisorDriver):
    """A driver whose VMs run under ``python -m bhype_core.drivers.supervisor``.

    :param runner: the host runner (every host command goes through it).
    :param run_dir: host-wide directory for port claims and the instance list
        (``<data_dir>/run``).
    :param python: interpreter that runs the supervisor (this one by default).
    :param start_timeout: seconds the hypervisor (and loader) may take to get running.
    :param launcher: fork supervisors from a pre-started launcher process when the runner runs
        commands on this machine as they are (:mod:`bhype_core.drivers.launcher`; issue 15),
        instead of exec'ing a fresh interpreter for each; the exec stays the fallback.
    """

    name = ""
    # Whether VNC listens on a loopback TCP port (allocated per VM). bhyve's fbuf only speaks
    # TCP; QEMU serves VNC on a unix socket in the VM's private directory instead (issue 11).
    vnc_over_tcp = True

    def __init__(
        self,
        runner: Any,
        *,
        run_dir: Path,
        python: str = sys.executable,
        start_timeout: float = 120.0,
        launcher: bool = True,
    ) -> None:
        self.runner = runner
        self.launcher = launcher
        self.run_dir = Path(run_dir)
        self.python = python
        self.start_timeout = start_timeout
        self.procs = ProcessTable(runner)
        self.ports = PortAllocator(self.run_dir)

    # -- what subclasses provide -----------------------------------------------------------

    @abstractmethod
    def prepare(
        self, spec: VMSpec, vm_dir: Path, attachments: Attachments, vnc_port: int | None, *, dry: bool = False
    ) -> Prepared:
        """Build argv, loader and supervisor config for one start (pure apart from reads);
        ``dry`` (for :meth:`plan`) must not run even read-only probes."""

    @abstractmethod
    def hypervisor_markers(self, instance: str) -> tuple[str, ...]:
        """What the hypervisor's command line contains (pid-reuse guard)."""

    @abstractmethod
    def request_shutdown(self, instance: str, vm_dir: Path, status: VMStatus) -> None:
        """Press the ACPI power button (bhyve: SIGTERM; QEMU: QMP system_powerdown)."""

    @abstractmethod
    def power_off(self, instance: str, vm_dir: Path, status: VMStatus) -> None:
        """Power off at once (bhyvectl --force-poweroff; QMP quit)."""

    def after_stop(self, instance: str, vm_dir: Path) -> None:  # noqa: B027 (optional)
        """Clean up hypervisor state the supervisor could not (bhyvectl --destroy)."""

    def save_state(self, instance: str, vm_dir: Path, status: VMStatus, path: Path, timeout: float) -> None:
        """Save the running guest to ``path`` (and its siblings) and make the hypervisor exit
        (drivers with ``SUSPEND``). :raises SuspendFailed: the guest must still run then."""
        raise NotSupported("suspend", f"driver {self.name}")

    def restore_argv(self, argv: list[str], path: str) -> list[str]:
        """The hypervisor command line that resumes from ``path`` instead of booting."""
        raise NotSupported("resume", f"driver {self.name}")

    # -- start -------------------------------------------------------------------------------

    def supervisor_argv(self, vm_dir: Path) -> list[str]:
        """The command that launches (daemonizes) the VM's supervisor."""
        return [self.python, "-m", "bhype_core.drivers.supervisor", str(vm_dir)]

    def plan(self, spec: VMSpec, vm_dir: Path, attachments: Attachments | None = None) -> list[HostCommand]:
        vm_dir = Path(vm_dir).absolute()
        tcp = spec.graphics.vnc and self.vnc_over_tcp
        port = (self.ports.peek(vm_dir, self.instance_active) or self.ports.base) if tcp else None
        prepared = self.prepare(spec, vm_dir, attachments or Attachments(), port, dry=True)
        launch = HostCommand(self.supervisor_argv(vm_dir), "start the VM's supervisor (daemon), which runs:")
        return [*prepared.setup, launch, *prepared.supervised]

    def start(self, spec: VMSpec, vm_dir: Path, attachments: Attachments | None = None) -> VMStatus:
        vm_dir = Path(vm_dir).absolute()
        instance = spec.instance_name
        current = self.status(spec, vm_dir)
        if current.active:
            raise Conflict(f"VM {spec.name} is already {current.state.value} (pid {current.pid})")
        files = VMFiles(vm_dir)
        created: list[Path] = []
        tcp = spec.graphics.vnc and self.vnc_over_tcp
        lock = self.ports.locked() if tcp else nullcontext()
        with lock:
            try:
                port = self.ports.allocate(vm_dir, instance, self.instance_active) if tcp else None
                try:
                    prepared = self.prepare(spec, vm_dir, attachments or Attachments(), port)
                except ValueError as exc:  # resources that do not fit the spec
                    raise HypervisorFailed(f"cannot build the {self.name} command line: {exc}") from None
                saved = self._restore(vm_dir, prepared, attachments)
                created.extend(path for path in prepared.creates if not path.exists())
                for command in prepared.setup:
                    self.runner.run(command.argv, timeout=120)
                for path, text in prepared.files.items():
                    _write_private(path, text)
                files.stop_request.unlink(missing_ok=True)
                write_json(files.config, prepared.config, mode=0o600)
                os.chmod(files.config, 0o600)  # it may hold the VNC password
                self._register(instance, vm_dir, spec.name)
                result = self._launch(spec, vm_dir)
            except BaseException:
                self._undo(vm_dir, created)
                raise
            if result.returncode != 0:
                self._undo(vm_dir, created)
                raise self._start_error(spec, result)
        if saved is not None:  # the guest runs from it again: the files are spent
            saved_state.discard(vm_dir, saved)
        return self.status(spec, vm_dir)

    def _restore(self, vm_dir: Path, prepared: Prepared, attachments: Attachments | None) -> Any:
        """For a start that resumes: check the saved state fits this start and tell the
        supervisor how to resume (``restore`` in its config). :raises ResumeRefused:"""
        path = attachments.restore_from if attachments else None
        if not path:
            return None
        saved = saved_state.read(vm_dir)
        if saved is None or saved.path != str(path):
            raise saved_state.ResumeRefused(f"no saved state at {path} to resume from")
        if prepared.config.get("after_first_reboot"):
            raise saved_state.ResumeRefused("a suspended VM resumes with a normal start, not an install or rescue boot")
        saved_state.check_resumable(saved, self.name, list(prepared.config["argv"]))
        prepared.config["restore"] = {"path": saved.path, "argv": self.restore_argv(list(prepared.config["argv"]),
                                                                                       saved.path)}
        return saved

    def _launch(self, spec: VMSpec, vm_dir: Path) -> Any:
        """Run the supervisor's launcher; it returns once the hypervisor runs or failed.

        Its budget covers a loader and the hypervisor each taking ``start_timeout``. Should
        even that run out, the daemon (in its own session) may still bring the VM up later:
        power it off so a failed start leaves nothing running.
        """
        argv = self.supervisor_argv(vm_dir)
        timeout = 2 * self.start_timeout + 30
        try:
            forked = self._fork_launch(argv, vm_dir, timeout)
            return forked if forked is not None else self.runner.run(argv, timeout=timeout, check=False)
        except CommandError as exc:
            try:
                self.force_stop(spec, vm_dir)
            except Exception:  # noqa: BLE001 - the launch failure is what the caller must see
                log.exception("could not stop %s after its launch failed", spec.name)
            raise HypervisorFailed(f"VM {spec.name} did not start: {exc.reason or exc}") from None

    def uses_launcher(self, argv: list[str]) -> bool:
        """Whether starts go through the launcher: enabled, and the runner runs ``argv`` on this
        machine unchanged (not over SSH, in a network namespace, or as a dry run)."""
        if not self.launcher or not isinstance(self.runner, LocalRunner):
            return False
        try:
            return self.runner.local_argv(argv) == argv
        except ArgvError:
            return False

    def warm_up(self) -> bool:
        """Start the launcher ahead of the first VM start (the worker at start-up)."""
        argv = self.supervisor_argv(self.run_dir)
        return self.uses_launcher(argv) and launcher_for(self.python).ensure()

    def _fork_launch(self, argv: list[str], vm_dir: Path, timeout: float) -> Any:
        """The launch through the launcher (audited like a command), or None: exec it."""
        if not self.uses_launcher(argv):
            return None
        started = time.monotonic()
        try:
            result = launcher_for(self.python).launch(vm_dir, self.python, timeout)
        except CommandError as exc:
            self.runner.audit_external(argv, None, time.monotonic() - started, exc.stderr, error=exc.reason or str(exc))
            raise
        if result is not None:
            self.runner.audit_external(argv, result.returncode, result.duration, result.stderr)
        return result

    def _undo(self, vm_dir: Path, created: list[Path]) -> None:
        self.ports.release(vm_dir)
        for path in created:
            path.unlink(missing_ok=True)

    def _start_error(self, spec: VMSpec, result: Any) -> HypervisorFailed:
        verdict: dict[str, Any] = {}
        for line in result.stdout.splitlines():
            try:
                verdict = json.loads(line)
            except ValueError:
                continue
        message = verdict.get("message") or "the supervisor failed"
        tail = verdict.get("stderr_tail") or [line for line in result.stderr.splitlines() if line.strip()][-20:]
        status = verdict.get("exit_status", result.returncode)
        text = f"VM {spec.name} did not start: {message}"
        if tail:
            text += ":\n" + "\n".join(tail)
        return HypervisorFailed(text, exit_status=status, detail="\n".join(tail))

    def _register(self, instance: str, vm_dir: Path, name: str) -> None:
        entry = self.run_dir / "instances" / f"{instance}.json"
        record = {"driver": self.name, "vm_dir": str(vm_dir), "name": name}
        if read_json(entry) == record:
            return  # started before: one read instead of a directory check and a file written anew
        entry.parent.mkdir(parents=True, exist_ok=True)
        write_json(entry, record)

    # -- status ------------------------------------------------------------------------------

    def status(self, spec: VMSpec, vm_dir: Path) -> VMStatus:
        vm_dir = Path(vm_dir).absolute()
        status = self.read_status(spec.instance_name, vm_dir)
        if status.state is VMState.CRASHED and status.crash_id:
            self._report_crash(spec.name, vm_dir, status)
        return status

    def read_status(self, instance: str, vm_dir: Path) -> VMStatus:
        """The state recorded in ``state.json``, checked against the process table."""
        files = VMFiles(vm_dir)
        data = read_json(files.state)
        if data is None:
            return VMStatus(VMState.STOPPED, detail="never started")
        sup_pid, hv_pid = data.get("supervisor_pid"), data.get("hypervisor_pid")
        supervisor = self.procs.alive(sup_pid, supervisor_markers(vm_dir))
        hypervisor = self.procs.alive(hv_pid, self.hypervisor_markers(instance)) if hv_pid else False
        if not (supervisor or hypervisor) and data.get("state") in ACTIVE:
            # The supervisor writes its final state, then exits: a read that raced its exit is
            # stale. Now that both are known gone, what the file says is its last word.
            data = read_json(files.state) or data
        recorded = data.get("state", "unknown")
        detail, crash_id = str(data.get("detail", "")), data.get("crash_id")
        stopping = files.stop_request.exists()
        if supervisor or hypervisor:
            if recorded in ACTIVE:
                state = recorded
            else:  # a final state while a process lives: the supervisor is cleaning up, or
                state = "running" if hypervisor else "stopping"  # an unsupervised hypervisor
            if stopping and state == "running":
                state = "stopping"
            if not supervisor:
                detail = (
                    f"the supervisor (pid {sup_pid}) is gone but the hypervisor still runs unsupervised; "
                    "stop and start the VM to supervise it again"
                )
        elif recorded in ACTIVE:
            if stopping:
                state, detail = "stopped", "stopped (its supervisor was gone and could not record the exit)"
            elif data.get("boot_id") and data.get("boot_id") != boot_id(self.runner):
                state, detail = "stopped", "the host restarted since the VM was started"
            else:
                state = "crashed"
                detail = f"the supervisor (pid {sup_pid}) ended without recording why; see {files.supervisor_log}"
                crash_id = f"lost-{sup_pid}-{data.get('started_at', '')}"
        else:
            state = recorded
        suspended = None
        if state not in ACTIVE:
            saved = saved_state.read(vm_dir)
            if saved is not None:
                suspended = {"path": saved.path, "at": saved.at, "size": saved.size}
                detail = f"suspended to disk at {saved.at}: the next start resumes it"
        return VMStatus(
            suspended=suspended,
            state=VMState(state) if state in VMState._value2member_map_ else VMState.UNKNOWN,
            pid=hv_pid if hypervisor else None,
            exit_status=data.get("exit_status"),
            detail=detail,
            consoles=dict(data.get("consoles") or {}),
            supervisor_pid=sup_pid if supervisor else None,
            restarts=int(data.get("restarts") or 0),
            history=list(data.get("history") or []),
            crash_id=crash_id if state == "crashed" else None,
        )

    def instance_active(self, vm_dir: Path, instance: str) -> bool:
        """True while a VM's supervisor or hypervisor runs (port claims, reconciliation)."""
        return self.read_status(instance, Path(vm_dir)).active

    def _report_crash(self, vm_name: str, vm_dir: Path, status: VMStatus) -> None:
        """Call the crash listeners once per crash, across processes (an O_EXCL ack file)."""
        if not self.crash_listeners:
            return
        ack = VMFiles(vm_dir).crash_ack(str(status.crash_id).replace("/", "_"))
        try:
            os.close(os.open(ack, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            return
        for old in vm_dir.glob("crash-*.ack"):
            if old != ack:
                old.unlink(missing_ok=True)
        for listener in self.crash_listeners:
            try:
                listener(vm_name, status)
            except Exception:  # one broken listener must not hide the crash from the others
                log.exception("crash listener failed for VM %s", vm_name)

    def running_instances(self) -> list[str]:
        names = set()
        directory = self.run_dir / "instances"
        for entry in sorted(directory.glob("*.json")) if directory.is_dir() else []:
            data = read_json(entry) or {}
            if data.get("driver") != self.name:
                continue
            vm_dir = Path(str(data.get("vm_dir", "")))
            if not vm_dir.is_dir():
                entry.unlink(missing_ok=True)  # the VM was destroyed
                continue
            if self.instance_active(vm_dir, entry.stem):
                names.add(entry.stem)
        return sorted(names)

    # -- stop --------------------------------------------------------------------------------

    def _request_stop(self, vm_dir: Path, mode: str, note: str) -> None:
        write_json(VMFiles(vm_dir).stop_request, {"mode": mode, "note": note, "at": now_iso(), "by": os.getpid()})

    def wait_inactive(self, spec: VMSpec, vm_dir: Path, timeout: float) -> VMStatus | None:
        """Wait until the VM is neither starting, running nor stopping; None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(spec, vm_dir)
            if not status.active:
                return status
            if time.monotonic() >= deadline:
                return None
            time.sleep(POLL)

    def stop(self, spec: VMSpec, vm_dir: Path, timeout: float) -> VMStatus:
        vm_dir = Path(vm_dir).absolute()
        status = self.status(spec, vm_dir)
        if not status.active:
            return status
        self._request_stop(vm_dir, "graceful", "ACPI shutdown requested")
        try:
            self.request_shutdown(spec.instance_name, vm_dir, status)
        except (CommandError, OSError) as exc:
            log.warning("ACPI shutdown request for %s failed: %s", spec.name, exc)
        final = self.wait_inactive(spec, vm_dir, timeout)
        if final is not None:
            return self._settle(spec, vm_dir, final)
        note = f"the guest did not shut down within {timeout:g}s of the ACPI power button"
        return self._force(spec, vm_dir, note)

    def suspend(self, spec: VMSpec, vm_dir: Path, timeout: float) -> VMStatus:
        """Save the guest to ``<vm_dir>/saved-state`` and end the hypervisor (see
        :meth:`HypervisorDriver.suspend`). The stop request says ``suspend``, so the supervisor
        records the exit as a suspend, never as a reboot or crash; a failed save withdraws it
        and removes what was written: the guest runs on."""
        vm_dir = Path(vm_dir).absolute()
        if not self.suspend_supported():
            raise NotSupported("suspend", f"driver {self.name} on this host")
        status = self.status(spec, vm_dir)
        if status.state is not VMState.RUNNING:
            raise Conflict(f"VM {spec.name} is {status.state.value}: only a running VM can be suspended")
        files = VMFiles(vm_dir)
        argv = list((read_json(files.config) or {}).get("argv") or [])
        path = saved_state.state_path(vm_dir)
        saved_state.discard(vm_dir)  # an older record of a state that was resumed or abandoned
        saved_state.clear_files(path)
        self._request_stop(vm_dir, "suspend", f"saving the guest to {path}")
        try:
            self.save_state(spec.instance_name, vm_dir, status, path, timeout)
            written, size = saved_state.seal(path)
        except BaseException:
            files.stop_request.unlink(missing_ok=True)
            saved_state.clear_files(path)
            raise
        final = self.wait_inactive(spec, vm_dir, timeout)
        if final is None:  # the state is on disk; the guest is paused: end the process
            self._force(spec, vm_dir, "the hypervisor did not exit after saving the guest")
        saved = saved_state.SavedState(path=str(path), files=written, driver=self.name, argv=argv,
                                       at=now_iso(), size=size)
        saved_state.record(vm_dir, saved)
        return self._settle(spec, vm_dir, self.status(spec, vm_dir))

    def force_stop(self, spec: VMSpec, vm_dir: Path) -> VMStatus:
        vm_dir = Path(vm_dir).absolute()
        return self._force(spec, vm_dir, "force-stop requested")

    def _force(self, spec: VMSpec, vm_dir: Path, note: str) -> VMStatus:
        status = self.status(spec, vm_dir)
        if status.active:
            self._request_stop(vm_dir, "force", note)
            try:
                self.power_off(spec.instance_name, vm_dir, status)
            except (CommandError, OSError) as exc:
                log.warning("forced power-off of %s failed: %s", spec.name, exc)
            final = self.wait_inactive(spec, vm_dir, FORCE_TIMEOUT)
            if final is None:
                current = self.status(spec, vm_dir)
                if current.pid:
                    self.runner.run(["kill", "-s", "KILL", str(current.pid)], timeout=10, check=False)
                final = self.wait_inactive(spec, vm_dir, FORCE_TIMEOUT)
            if final is None:
                raise HypervisorFailed(f"VM {spec.name} could not be stopped (pid {status.pid} still runs)")
        return self._settle(spec, vm_dir, self.status(spec, vm_dir))

    def _settle(self, spec: VMSpec, vm_dir: Path, final: VMStatus) -> VMStatus:
        """After the hypervisor is gone: clean up what a missing supervisor left behind."""
        files = VMFiles(vm_dir)
        self.after_stop(spec.instance_name, vm_dir)
        data = read_json(files.state) or {}
        if data.get("state") in ACTIVE:  # no supervisor recorded the end: record it ourselves
            request = read_json(files.stop_request) or {}
            data.update(state="stopped", hypervisor_pid=None, detail=final.detail, updated_at=now_iso())
            if request.get("mode") == "force":
                data["detail"] = f"powered off by force ({request.get('note', '')}) without its supervisor"
            write_json(files.state, data)
        files.stop_request.unlink(missing_ok=True)
        self.ports.release(vm_dir)
        return self.status(spec, vm_dir)


def _write_private(path: Path, text: str) -> None:
    """Write a driver file (grub device map, bhyve secrets) 0600, never through a symlink."""
    fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o600)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(fd, 0o600)  # a file left by an older version may be looser
        handle.write(text)
