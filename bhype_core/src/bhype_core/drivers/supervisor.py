"""The per-VM supervisor: ``python -m bhype_core.drivers.supervisor VM_DIR``.

The driver writes ``VM_DIR/supervisor.json`` and runs this module through the host runner. It
daemonizes (fork, setsid, fork), so the VM outlives the API and the worker, and the launching
command returns once the hypervisor runs (exit 0, ``{"ok": true, "pid": N}`` on stdout) or
fails with the hypervisor's exit status, the reason and the tail of its stderr on stderr.

The daemon loops on the hypervisor's exit status per bhyve(8) EXIT STATUS (reference
freebsd-host.md 1.7): reboot starts it again, power-off and halt stop, triple fault and
errors crash. Every step is recorded in ``VM_DIR/state.json``; see ``state.VMFiles``.

Every VM start pays for this interpreter's start-up before the hypervisor is spawned, so the
module imports only what the QEMU path needs (issue 15): the host runner (pipelines, streaming,
audit) loads on the first host command (:class:`LazyRunner`; bhyve's ``bhyvectl``), argparse
only for options, ``traceback`` only on a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

from bhype_core.drivers.exit_status import Decision, Outcome, decide, ran_briefly
from bhype_core.drivers.state import VMFiles, boot_id, now_iso, read_json, rotate, tail_lines, write_json, write_pid
from bhype_core.drivers.supervisor_kinds import KINDS, Exit, StartFailed
from bhype_core.host.argv import validate_argv

HISTORY = 50  # exits kept in state.json
EX_SOFTWARE = 70  # sysexits(3): the supervisor itself failed


class LazyRunner:
    """The host runner, imported and built on the first command (the QEMU path runs none), each
    command logged to supervisor.log through the runner's audit sink."""

    def __init__(self, log: Any) -> None:
        self._log = log
        self._runner: Any = None

    def run(self, argv: list[str], **kwargs: Any) -> Any:
        if self._runner is None:
            from bhype_core.host.runner import LocalRunner

            self._runner = LocalRunner(default_timeout=60)
            self._runner.add_audit_sink(lambda record: self._log(f"ran {record.argv} -> {record.returncode}"))
        return self._runner.run(argv, **kwargs)


def _format_exc() -> str:
    import traceback

    return traceback.format_exc()


class Supervisor:
    """Runs one VM's hypervisor until it stops or crashes, recording everything in state.json."""

    def __init__(self, vm_dir: Path, config: dict[str, Any], ready_fd: int | None = None) -> None:
        self.files = VMFiles(vm_dir)
        self.config = config
        self.instance = str(config["instance"])
        self.ready_fd = ready_fd
        self.runner = LazyRunner(self.log)
        self.kind = KINDS[config["kind"]](self.instance, config.get(config["kind"], {}), self.runner, self.log)
        self.stop_signalled = False
        previous = read_json(self.files.state) or {}
        self.state: dict[str, Any] = {
            "driver": config["kind"],
            "instance": self.instance,
            "history": list(previous.get("history", []))[-HISTORY:],
            "consoles": config.get("consoles", {}),
        }
        self.restart_times: deque[float] = deque()

    # -- bookkeeping ---------------------------------------------------------------------

    def log(self, message: str) -> None:
        """One line in supervisor.log (the daemon's stdout)."""
        print(f"{now_iso()} [{os.getpid()}] {message}", flush=True)

    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into the state and write state.json atomically."""
        self.state.update(fields, updated_at=now_iso())
        write_json(self.files.state, self.state)

    def stop_request(self) -> dict[str, Any] | None:
        """The driver's (or our SIGTERM handler's) stop request, if any."""
        if self.stop_signalled and not self.files.stop_request.exists():
            return {"mode": "graceful", "note": "the supervisor received SIGTERM"}
        return read_json(self.files.stop_request) if self.files.stop_request.exists() else None

    def _on_signal(self, signum: int, frame: Any) -> None:
        # Only a flag: the loop forwards the graceful stop outside the handler.
        self.stop_signalled = True

    def notify_launcher(self, payload: dict[str, Any], final: bool = True) -> None:
        """Tell the launching command (once) whether the hypervisor got to running.

        A verdict after which this supervisor ends (``final``: a failed start, a guest that
        powered off at once) leaves the pipe open until the process exits, and the launcher
        reads to its end: the driver's status read that follows must not find the supervisor
        still cleaning up. Only "running" (the supervisor stays) closes it at once.
        """
        if self.ready_fd is None:
            return
        try:
            os.write(self.ready_fd, json.dumps({**payload, "final": final}).encode() + b"\n")
        except OSError:
            pass
        if not final:
            os.close(self.ready_fd)
        self.ready_fd = None

    # -- the loop ------------------------------------------------------------------------

    def spawn(self) -> tuple[subprocess.Popen[bytes], int]:
        """Start the hypervisor; its stdout/stderr go to hypervisor.log. Returns the process
        and the log offset where its output starts. A start that resumes a suspended guest
        runs the driver's resume command line (``restore.argv``) once, the first time."""
        restore = self.kind.restore
        argv = validate_argv(restore["argv"] if restore else self.config["argv"])
        with self.files.hypervisor_log.open("ab") as log:
            log.write(f"--- {now_iso()} starting {argv[0]}\n".encode())
            log.flush()
            offset = log.tell()
            # A long-running child whose pid and exit status the supervisor owns, which the
            # runner's run-to-completion interface cannot give; argv list, no shell. Its own
            # session: a signal to the supervisor's group must not press the power button.
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True
            )
        self.log(f"spawned {argv[0]} pid {proc.pid}")
        write_pid(self.files.hypervisor_pid, proc.pid)
        return proc, offset

    def run(self) -> int:
        """Supervise until the VM stops or crashes; returns the process exit status."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        write_pid(self.files.supervisor_pid, os.getpid())
        self.update(
            state="starting", supervisor_pid=os.getpid(), hypervisor_pid=None, started_at=now_iso(),
            boot_id=boot_id(self.runner), restarts=0, exit_status=None, signal=None, detail="",
            stderr_tail=[], crash_id=None, boot="install" if self.config.get("after_first_reboot") else "",
            resumed_from=None,
        )  # fmt: skip
        try:
            return self._loop()
        except Exception as exc:  # the supervisor's own bug: record it, never leave "running"
            self.log(_format_exc())
            self.notify_launcher({"ok": False, "message": f"supervisor failed: {exc}", "exit_status": None})
            self._finish(Decision(Outcome.CRASHED, f"supervisor failed: {exc}"), None, [])
            return EX_SOFTWARE
        finally:
            self.kind.cleanup()
            self.files.supervisor_pid.unlink(missing_ok=True)
            self.files.hypervisor_pid.unlink(missing_ok=True)
            self.files.stop_request.unlink(missing_ok=True)

    def _loop(self) -> int:
        first = True
        timeout = float(self.config.get("start_timeout", 120))
        while True:
            request = self.stop_request()
            if request is not None and first:  # stopped while the loader ran
                self.notify_launcher({"ok": False, "message": "stop requested before the VM ran", "exit_status": None})
                self._finish(Decision(Outcome.STOPPED, "stopped before it ran"), None, [], request)
                return 0
            if request is not None:  # rebooted while a stop was under way: stay stopped
                self._finish(Decision(Outcome.STOPPED, "guest rebooted"), None, [], request)
                return 0
            # Resume from a saved state only on the first start: a later guest reboot boots.
            self.kind.restore = self.config.get("restore") if first else None
            try:
                self.kind.before_start(first)
                proc, offset = self.spawn()
                running = self.kind.wait_running(proc, time.monotonic() + timeout)
            except StartFailed as exc:
                return self._start_failed(first, exc)
            if running and self.kind.restore:
                self.log(f"resumed the guest from {self.kind.restore['path']}")
                self.update(resumed_from=self.kind.restore["path"])
            self.kind.restore = None
            if running:
                self.log(f"hypervisor pid {proc.pid} is running")
                # state.json first: the launcher's caller reads it as soon as it hears "ok".
                self.update(state="running", hypervisor_pid=proc.pid)
                if first:
                    self.notify_launcher({"ok": True, "pid": proc.pid, "supervisor_pid": os.getpid()}, final=False)
                    first = False
                self.kind.watch(proc, lambda: self.stop_signalled)
            exit = self.kind.exit_of(proc)
            tail = tail_lines(self.files.hypervisor_log, offset)
            self.log(f"hypervisor exited: status {exit.status} signal {exit.signal} {exit.note}".rstrip())
            self.kind.after_exit(exit)
            if not running and first:
                if not ran_briefly(exit.status, exit.signal, tail):
                    return self._start_failed(first, self._early_exit(exit, tail))
                # The guest ran, then rebooted or powered off within the start grace: the start
                # succeeded, and the exit is judged like any later one.
                self.log("the guest rebooted or powered off within the start grace")
                running = True
            request = self.stop_request()
            decision = decide(exit.status, exit.signal, stop_requested=request is not None)
            if request is not None and request.get("mode") == "suspend":
                # The driver saved the guest and ended the hypervisor (bhyve exits 0 after
                # bhyvectl --suspend, QEMU on QMP quit): a suspend, never a reboot or a crash.
                decision = Decision(Outcome.STOPPED, "suspended to disk")
            if not running and exit.status == 1 and tail:
                # bhyve(8) usage(1) also exits 1: exit 1 with an error text before the guest
                # ran is a failed start, not a power-off (reference 1.7 caveat).
                decision = Decision(Outcome.CRASHED, "hypervisor failed to start after a reboot")
            self._record(exit, decision)
            if decision.outcome is Outcome.RESTART and self._restart_allowed():
                self.update(state="starting", restarts=self.state.get("restarts", 0) + 1, hypervisor_pid=None)
                self.log("guest rebooted: starting it again")
                self._next_plan()
                continue
            if decision.outcome is Outcome.RESTART:
                limit, window = self._restart_limit()
                decision = Decision(Outcome.CRASHED, f"reboot loop: more than {limit} restarts within {window:g}s")
            self._finish(decision, exit, tail, request)
            # A guest that powered off at once still started; a no-op once the launcher heard.
            self.notify_launcher({"ok": True, "pid": proc.pid, "supervisor_pid": os.getpid()})
            return 0

    def _next_plan(self) -> None:
        """After the guest's first reboot, switch to the command lines an install start gave
        for every later boot (the ISO detached; ``drivers/boot_plan.py``), once."""
        later = self.config.pop("after_first_reboot", None)
        if not later:
            return
        self.config["argv"] = later["argv"]
        self.kind.replan(dict(later.get(self.config["kind"]) or {}))
        self.update(boot="disk")
        self.log("the install boot ended with a reboot: the ISO is detached from now on")

    def _early_exit(self, exit: Exit, tail: list[str]) -> StartFailed:
        program = Path(self.config["argv"][0]).name
        how = f"was killed by signal {exit.signal}" if exit.signal else f"exited with status {exit.returncode}"
        return StartFailed(f"{program} {how} before it was running", exit.returncode, tail)

    def _start_failed(self, first: bool, exc: StartFailed) -> int:
        detail = "\n".join([exc.message, *exc.tail])
        self.log(f"start failed: {detail}")
        if first:
            self.notify_launcher(
                {"ok": False, "message": exc.message, "exit_status": exc.returncode, "stderr_tail": exc.tail}
            )
            self.update(
                state="stopped", hypervisor_pid=None, exit_status=exc.returncode, detail=detail, stderr_tail=exc.tail
            )
            return 0
        exit = Exit(exc.returncode, None, exc.returncode)
        decision = Decision(Outcome.CRASHED, exc.message)
        self._record(exit, decision)
        self._finish(decision, exit, exc.tail)
        return 0

    def _restart_limit(self) -> tuple[int, float]:
        return int(self.config.get("restart_limit", 10)), float(self.config.get("restart_window", 60))

    def _restart_allowed(self) -> bool:
        limit, window = self._restart_limit()
        now = time.monotonic()
        self.restart_times.append(now)
        while self.restart_times and now - self.restart_times[0] > window:
            self.restart_times.popleft()
        return len(self.restart_times) <= limit

    def _record(self, exit: Exit, decision: Decision) -> None:
        entry = {
            "at": now_iso(), "exit_status": exit.status, "signal": exit.signal, "returncode": exit.returncode,
            "meaning": decision.meaning, "outcome": decision.outcome.value, "note": exit.note,
        }  # fmt: skip
        self.state["history"] = [*self.state.get("history", []), entry][-HISTORY:]

    def _finish(
        self, decision: Decision, exit: Exit | None, tail: list[str], request: dict[str, Any] | None = None
    ) -> None:
        # A stop somebody asked for reads as that, not as an exit to explain: the hypervisor's
        # own meaning (bhyve exits 1 on power-off) follows in brackets.
        detail = decision.meaning
        if request is not None and request.get("mode") == "suspend":
            detail = f"suspended to disk ({request.get('note') or 'saved state'})"
        elif request is not None and request.get("mode") == "force":
            detail = f"stopped on request, powered off by force: {request.get('note') or 'force-stop requested'}"
        elif request is not None:
            detail = f"stopped on request ({decision.meaning})"
        if decision.outcome is Outcome.CRASHED and tail:
            detail += "\n" + "\n".join(tail)
        self.update(
            state=decision.outcome.value, hypervisor_pid=None, detail=detail, stderr_tail=tail,
            exit_status=exit.status if exit else None, signal=exit.signal if exit else None,
            crash_id=os.urandom(6).hex() if decision.outcome is Outcome.CRASHED else None,
        )  # fmt: skip
        self.log(f"finished: {decision.outcome.value}: {detail}")


# -- launching ---------------------------------------------------------------------------


def _redirect(log: Path) -> None:
    """Detach stdio from the launcher's pipes (the runner waits for them to close)."""
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(null)
    os.close(out)


def _close_fds_but(keep: int) -> None:
    """Close every descriptor above stderr except ``keep``: a daemon forked by the launcher
    inherits its sockets (the launcher's end of the worker's channel, the request's
    connection), which must end with the launcher and the request, never with the VM."""
    os.closerange(3, keep)
    os.closerange(keep + 1, max(keep + 1, os.sysconf("SC_OPEN_MAX")))


def launch_verdict(vm_dir: Path, config: dict[str, Any], *, detached: bool = False) -> dict[str, Any]:
    """Daemonize a supervisor (fork, setsid, fork) and wait for its verdict on the first
    start: ``{"ok": true, "pid": N, ...}`` or ``{"ok": false, "message", "exit_status",
    "stderr_tail"}``. Runs in the exec'd launcher command and in the launcher's handler.

    ``detached``: the caller is a throw-away process that already leads its own session (the
    launcher's handler), so one fork does: the daemon is re-parented to init when it exits."""
    files = VMFiles(vm_dir)
    for log in (files.supervisor_log, files.hypervisor_log):
        rotate(log)
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the daemon
        code = EX_SOFTWARE
        try:
            os.close(read_fd)
            if not detached:
                os.setsid()  # leave the runner's session: its timeout kills must not reach the VM
                if os.fork():
                    os._exit(0)
            os.chdir("/")
            _redirect(files.supervisor_log)
            _close_fds_but(write_fd)
            code = Supervisor(vm_dir, config, ready_fd=write_fd).run()
        except BaseException:
            print(_format_exc(), file=sys.stderr, flush=True)
        finally:
            os._exit(code)
    os.close(write_fd)
    if not detached:
        os.waitpid(child, 0)
    data = b""
    with os.fdopen(read_fd, "rb") as pipe:
        while b"\n" not in data:
            chunk = pipe.read1(4096)
            if not chunk:
                break
            data += chunk
        try:
            verdict = json.loads(data.split(b"\n", 1)[0])
        except ValueError:
            verdict = {"ok": False, "message": f"the supervisor ended before reporting; see {files.supervisor_log}"}
        if verdict.get("final"):
            pipe.read()  # the daemon's last word: wait until it has exited (the pipe's end)
    return verdict if isinstance(verdict, dict) else {"ok": False, "message": "the supervisor's verdict is garbled"}


def verdict_exit(verdict: dict[str, Any]) -> tuple[int, str]:
    """The launching command's exit status and stderr for ``verdict`` (what the driver reads)."""
    if verdict.get("ok"):
        return 0, ""
    lines = [str(verdict.get("message", "start failed")), *(str(x) for x in verdict.get("stderr_tail") or [])]
    status = verdict.get("exit_status")
    code = status if isinstance(status, int) and 0 < status < 256 else EX_SOFTWARE
    return code, "".join(line + "\n" for line in lines)


def launch(vm_dir: Path, config: dict[str, Any]) -> int:
    """Daemonize a supervisor and wait for its verdict on the first start; print it (stdout)
    and, on failure, the reason and the hypervisor's stderr tail (stderr)."""
    verdict = launch_verdict(vm_dir, config)
    print(json.dumps(verdict), flush=True)
    code, text = verdict_exit(verdict)
    if text:
        print(text, file=sys.stderr, end="", flush=True)
    return code


def load_config(vm_dir: Path) -> tuple[Path, dict[str, Any] | None]:
    """The resolved VM directory and its ``supervisor.json`` (None when missing or invalid)."""
    vm_dir = vm_dir.resolve()
    config = read_json(VMFiles(vm_dir).config)
    if config is None or config.get("kind") not in KINDS:
        return vm_dir, None
    return vm_dir, config


def _parse(argv: list[str]) -> tuple[Path, bool]:
    """``(vm_dir, foreground)`` from the command line. The driver's launch (``VM_DIR`` alone)
    is read directly; anything else (options, ``--help``, mistakes) goes through argparse,
    whose import the common path does without."""
    if len(argv) == 1 and argv[0] and not argv[0].startswith("-"):
        return Path(argv[0]), False
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bhype_core.drivers.supervisor", description=__doc__.splitlines()[0]
    )
    parser.add_argument("vm_dir", type=Path)
    parser.add_argument("--foreground", action="store_true", help="supervise in this process")
    args = parser.parse_args(argv)
    return args.vm_dir, bool(args.foreground)


def main(argv: list[str] | None = None) -> int:
    """Command line entry: ``VM_DIR`` (daemonize) or ``--foreground VM_DIR`` (debugging)."""
    vm_dir, foreground = _parse(sys.argv[1:] if argv is None else list(argv))
    if foreground:
        # The runner starts host commands with a parent-death signal; a VM outlives the worker
        # by design, so a supervisor running in that process gives it up. The daemon of a
        # normal launch never has one: prctl(2) PR_SET_PDEATHSIG and procctl(2)
        # PROC_PDEATHSIG_CTL are cleared in the child of a fork (bhype_core.host.pdeathsig).
        from bhype_core.host.pdeathsig import clear_parent_death_signal

        clear_parent_death_signal()
    # Everything the supervisor and the hypervisor create (VNC and serial sockets, logs, state)
    # is private to the worker's user: a unix socket others may not write cannot be connected
    # to, so the consoles are reachable only through bHype's bridge (issue 11).
    os.umask(0o077)
    vm_dir, config = load_config(vm_dir)
    if config is None:
        print(f"no valid supervisor.json in {vm_dir}", file=sys.stderr)
        return 2
    if foreground:
        return Supervisor(vm_dir, config).run()
    return launch(vm_dir, config)


if __name__ == "__main__":
    code = main()
    # The launcher's caller (the driver's start) waits for this process to end: skip the
    # interpreter's teardown, nothing is left to clean up once the output is flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
