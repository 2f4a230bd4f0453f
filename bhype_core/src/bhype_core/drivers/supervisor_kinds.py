"""What differs between supervising bhyve and QEMU: loader step, readiness, exit status, cleanup.

Both kinds report exits as bhyve(8) EXIT STATUS numbers (``exit_status.BhyveExit``); QEMU's
come from the QMP ``SHUTDOWN`` event's reason (``qemu_argv.exit_status_for_shutdown``), since
under ``-no-reboot`` QEMU exits 0 for both a reboot and a power-off.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bhype_core.drivers.qmp import QMPClient, QMPClosed, QMPError
from bhype_core.errors import CommandError

POLL = 0.25  # seconds between checks while a hypervisor runs (no busy loop)


class StartFailed(Exception):
    """The hypervisor (or its loader) did not get to running.

    ``returncode`` is the raw exit status of the program that failed (``None`` when it did not
    exit), ``tail`` the last lines of its stderr.
    """

    def __init__(self, message: str, returncode: int | None = None, tail: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.returncode = returncode
        self.tail = tail or []


@dataclass(frozen=True)
class Exit:
    """How one hypervisor process ended: bhyve-style ``status`` (or ``signal``), the raw
    ``returncode`` and a ``note`` on where the status came from."""

    status: int | None
    signal: int | None
    returncode: int | None
    note: str = ""


def exit_from_returncode(returncode: int) -> Exit:
    """A negative Popen returncode is a death by that signal."""
    if returncode < 0:
        return Exit(None, -returncode, returncode)
    return Exit(returncode, None, returncode)


class Kind(ABC):
    """The hypervisor-specific half of a supervisor. ``config`` is the kind's own table of
    ``supervisor.json``; ``run`` runs a short host command through the supervisor's runner."""

    def __init__(self, instance: str, config: dict[str, Any], runner: Any, log: Callable[[str], None]) -> None:
        self.instance = instance
        self.config = config
        self.runner = runner
        self.log = log
        # The supervisor config's ``restore`` ({"path", "argv"}) while the first start resumes
        # a suspended guest; None otherwise (set by the supervisor before each start).
        self.restore: dict[str, Any] | None = None

    def before_start(self, first: bool) -> None:  # noqa: B027 (optional step)
        """Run before each hypervisor start (the bhyve loader step). :raises StartFailed:"""

    @abstractmethod
    def wait_running(self, proc: subprocess.Popen[bytes], deadline: float) -> bool:
        """Wait until the hypervisor counts as running; False when it exited first.
        :raises StartFailed: it neither ran nor exited by ``deadline`` (it is killed)."""

    @abstractmethod
    def watch(self, proc: subprocess.Popen[bytes], stop_signalled: Callable[[], bool]) -> None:
        """Block until the hypervisor exits; forward a graceful stop once ``stop_signalled()``."""

    @abstractmethod
    def exit_of(self, proc: subprocess.Popen[bytes]) -> Exit:
        """The exit, in bhyve(8) EXIT STATUS terms, of a process that has ended."""

    def after_exit(self, exit: Exit) -> None:  # noqa: B027 (optional step)
        """Clean up after one hypervisor process (bhyvectl --destroy)."""

    def replan(self, config: dict[str, Any]) -> None:
        """Take the kind's settings for the boots after an install's first reboot."""
        self.config.update(config)

    def cleanup(self) -> None:  # noqa: B027 (optional step)
        """Clean up once supervision ends."""


class BhyveKind(Kind):
    """bhyve(8): runs the loader before each boot of a bhyveload/grub guest, counts bhyve as
    running once it survived ``start_grace`` seconds (bhyve fails device and memory setup
    within a fraction of a second), SIGTERM for ACPI shutdown, ``bhyvectl --destroy`` after."""

    @property
    def vmm_path(self) -> Path:
        return Path(self.config.get("vmm_dir", "/dev/vmm")) / self.instance

    def destroy(self) -> None:
        """``bhyvectl --vm=NAME --destroy`` when /dev/vmm/NAME exists (bhyvectl(8), reference 3.1)."""
        if not self.vmm_path.exists():
            return
        argv = [self.config["bhyvectl"], f"--vm={self.instance}", "--destroy"]
        try:
            result = self.runner.run(argv, timeout=60, check=False)
        except CommandError as exc:
            self.log(f"destroy failed: {exc}")
            return
        if result.returncode != 0:
            self.log(f"destroy exited {result.returncode}: {result.stderr.strip()}")

    def before_start(self, first: bool) -> None:
        loader = self.config.get("loader_argv")
        if self.restore:
            # bhyve(8) -r restores memory, vCPU and device state: nothing to load, but a
            # fresh VM instance to restore into (reference 3.2, 3.4).
            self.destroy()
        elif loader:
            # bhyveload(8)/grub-bhyve load into a fresh VM instance; rerun before every boot
            # (reference 2.1 and the vm-bhyve loop in 1.7).
            self.destroy()
            try:
                result = self.runner.run(loader, timeout=float(self.config.get("loader_timeout", 120)), check=False)
            except CommandError as exc:
                raise StartFailed(
                    f"{Path(loader[0]).name} failed: {exc.reason or exc}", None, exc.stderr_tail.splitlines()
                ) from None
            if result.returncode != 0:
                tail = [line for line in result.stderr.splitlines() if line.strip()][-20:]
                raise StartFailed(
                    f"{Path(loader[0]).name} exited with status {result.returncode}", result.returncode, tail
                )
        elif first:
            # A leftover instance (crashed bhyve, killed loader) would be silently reused by
            # bhyve: start from a clean one (reference 3.2).
            self.destroy()

    def wait_running(self, proc: subprocess.Popen[bytes], deadline: float) -> bool:
        try:
            proc.wait(timeout=float(self.config.get("start_grace", 1.0)))
        except subprocess.TimeoutExpired:
            return True
        return False

    def watch(self, proc: subprocess.Popen[bytes], stop_signalled: Callable[[], bool]) -> None:
        forwarded = False
        while True:
            try:
                proc.wait(timeout=POLL)
                return
            except subprocess.TimeoutExpired:
                pass
            if stop_signalled() and not forwarded:
                # bhyve(8) SIGNAL HANDLING: SIGTERM presses the ACPI power button.
                os.kill(proc.pid, signal.SIGTERM)
                forwarded = True

    def exit_of(self, proc: subprocess.Popen[bytes]) -> Exit:
        return exit_from_returncode(proc.wait())

    def replan(self, config: dict[str, Any]) -> None:
        # The device set changes (the install CD goes): boot a fresh VM instance, as a loader
        # boot does anyway (reference 1.7).
        super().replan(config)
        self.destroy()

    def after_exit(self, exit: Exit) -> None:
        # A UEFI guest keeps its instance across a reboot (reference 2.3); everything else
        # frees it: power-off and halt (no -D), crash, error (reference 1.7).
        if exit.status == 0 and not self.config.get("loader_argv"):
            return
        self.destroy()

    def cleanup(self) -> None:
        self.destroy()


class QemuKind(Kind):
    """QEMU under ``-no-reboot``: running once its QMP socket answers (then the VNC password
    is set), ``system_powerdown`` for ACPI shutdown, exit meaning from the ``SHUTDOWN`` event."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.client: QMPClient | None = None
        self.reason: str | None = None

    def wait_running(self, proc: subprocess.Popen[bytes], deadline: float) -> bool:
        self.reason = None
        while True:
            if proc.poll() is not None:
                return False
            if time.monotonic() >= deadline:
                proc.kill()
                proc.wait()
                raise StartFailed("QEMU did not answer on its QMP socket in time")
            # Short tries while the socket is not there yet, so a QEMU that exits at once is
            # noticed at once; a longer one for the greeting once it exists (a loaded host).
            client = QMPClient(self.config["qmp_socket"], timeout=10)
            try:
                client.connect(timeout=5.0 if os.path.exists(self.config["qmp_socket"]) else 0.5)
                break
            except QMPError:
                client.close()
        password = self.config.get("vnc_password")
        if password:
            try:
                # QMP set_password: the password never appears on QEMU's command line.
                client.execute("set_password", {"protocol": "vnc", "password": password})
            except QMPError as exc:
                client.close()
                proc.kill()
                proc.wait()
                raise StartFailed(f"cannot set the VNC password: {exc}") from None
        if self.restore:
            try:
                incoming(client, str(self.restore["path"]), deadline)
            except (QMPError, OSError) as exc:
                client.close()
                proc.kill()
                proc.wait()
                raise StartFailed(f"cannot resume the guest from {self.restore['path']}: {exc}") from None
        self.client = client
        return True

    def watch(self, proc: subprocess.Popen[bytes], stop_signalled: Callable[[], bool]) -> None:
        client = self.client
        forwarded = False
        while client is not None:
            if stop_signalled() and not forwarded:
                forwarded = True
                try:
                    client.execute("system_powerdown", timeout=5)
                except QMPClosed:
                    break
                except QMPError as exc:
                    self.log(f"system_powerdown failed: {exc}")
            try:
                event = client.wait_event("SHUTDOWN", timeout=POLL)
                self.reason = str(event.get("data", {}).get("reason", "")) or None
            except QMPClosed:
                break  # QEMU closes the socket when it exits
            except QMPError:
                if proc.poll() is not None:
                    break
            client.events.clear()  # other events (POWERDOWN, RTC_CHANGE) are not needed
        proc.wait()
        if client is not None:
            client.close()
        self.client = None

    def exit_of(self, proc: subprocess.Popen[bytes]) -> Exit:
        # Imported here: qemu_argv pulls in the spec models (pydantic), which would add a
        # fifth to every supervisor's start-up time for one small function.
        from bhype_core.drivers.qemu_argv import exit_status_for_shutdown

        returncode = proc.wait()
        if self.reason:
            return Exit(exit_status_for_shutdown(self.reason), None, returncode, f"QMP SHUTDOWN reason {self.reason}")
        if returncode < 0:
            return Exit(None, -returncode, returncode)
        if returncode == 0:
            return Exit(1, None, 0, "QEMU exited without a SHUTDOWN event")
        return Exit(4, None, returncode, f"QEMU exit status {returncode}")

    def after_exit(self, exit: Exit) -> None:
        self.reason = None

    def cleanup(self) -> None:
        for path in self.config.get("sockets", []):
            try:
                os.unlink(path)
            except OSError:
                pass


def incoming(client: QMPClient, path: str, deadline: float) -> None:
    """Resume a guest QEMU started with ``-incoming defer`` from the migration stream saved at
    ``path``: the file is opened here (0600, never through a symlink) and handed over with
    ``getfd``, ``migrate-incoming`` reads it (``fd:`` URI; QEMU 7.2 has no ``file:`` URI),
    ``query-migrate`` is polled until ``completed``, and ``cont`` runs the CPUs (a guest saved
    paused stays paused after the load). QMP reference: QEMU's ``qapi/migration.json``.

    :raises QMPError: QEMU refused, the load failed, or it did not finish by ``deadline``.
    """
    from bhype_core.safe_files import open_regular

    fd = open_regular(path, os.O_RDONLY, single_link=True)
    try:
        client.pass_fd("bhype-resume", fd)
    finally:
        os.close(fd)
    client.execute("migrate-incoming", {"uri": "fd:bhype-resume"})
    wait_migration(client, deadline, "loading the saved state")
    if (client.execute("query-status") or {}).get("status") != "running":
        client.execute("cont")


def wait_migration(client: QMPClient, deadline: float, what: str) -> None:
    """Poll ``query-migrate`` until ``completed``; :raises QMPError: ``failed``/``cancelled``
    (with QEMU's ``error-desc``) or still going at ``deadline``."""
    while True:
        answer = client.execute("query-migrate") or {}
        status = answer.get("status")
        if status == "completed":
            return
        if status in ("failed", "cancelled"):
            raise QMPError(f"{what} {status}: {answer.get('error-desc') or 'QEMU gave no reason'}")
        if time.monotonic() >= deadline:
            raise QMPError(f"{what}: still {status or 'not started'} when the time ran out")
        time.sleep(0.1)


KINDS: dict[str, type[Kind]] = {"bhyve": BhyveKind, "qemu": QemuKind}
