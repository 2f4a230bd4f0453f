"""The host's service manager behind one interface: FreeBSD rc.d or Debian's sysv scripts.

:class:`ServicePlatform` is the seam other code (the update workflow) may use; which one runs
is chosen at start-up from ``[hostops] service_platform`` (auto: the host's platform), never
by testing the platform at import time, so both are importable and testable anywhere.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import CommandError, Conflict, Runtime, detect_platform
from bhype_hostops import service_argv as argv
from bhype_hostops.service_parse import (
    ServiceState,
    parse_freebsd_status,
    parse_sysrc_change,
    parse_sysrc_value,
    parse_sysv_links,
)
from bhype_hostops.settings import HostopsSettings

Log = Callable[[str], None]
SETTLE_SECONDS = 15.0  # how long a daemon may take to write (or remove) its pidfile after start/stop
SETTLE_STEP = 0.2


def _quiet(_line: str) -> None:
    pass


class ServicePlatform(ABC):
    """Status, start/stop/restart/reload and enable-at-boot of host services.

    Every command's output goes to ``log`` (the task log). Actions confirm their effect with a
    status query afterwards: an rc script's exit status does not say whether the daemon runs.
    """

    name = ""

    def __init__(self, runner: Any, settings: HostopsSettings) -> None:
        self.runner = runner
        self.settings = settings

    def run(self, command: list[str], log: Log = _quiet) -> Any:
        """Run ``command`` (never raising on its exit status) and log it with its output."""
        log("$ " + " ".join(command))
        try:
            result = self.runner.run(command, check=False, timeout=self.settings.command_timeout)
        except CommandError as exc:  # not found, timed out
            log(f"  failed: {exc}")
            raise
        for line in (result.stdout + result.stderr).splitlines():
            log("  " + line)
        if result.returncode:
            log(f"  (exit status {result.returncode})")
        return result

    def config_check(self, name: str, log: Log = _quiet) -> None:
        """Run the configured check for ``name`` (``sshd -t``, sshd(8)) before a reload/restart.

        :raises Conflict: the check failed; nothing was reloaded.
        """
        check = self.settings.config_checks.get(name)
        if not check:
            return
        result = self.run(list(check), log)
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise Conflict(f"configuration check of {name} failed ({' '.join(check)}: "
                           f"{detail[-1] if detail else 'exit ' + str(result.returncode)}); nothing was changed")

    def act(self, name: str, action: str, log: Log = _quiet) -> ServiceState:
        """Start, stop, restart or reload ``name`` and return its state afterwards.

        :raises Conflict: the config check failed, or the service is not in the state the
            action should leave it in (with the command's output in ``log``).
        """
        if action in ("reload", "restart"):
            self.config_check(name, log)
        if action == "reload" and not self.status(name).running:
            raise Conflict(f"{name} is not running: nothing to reload (start it instead)")
        result = self.run(self.action_argv(name, action), log)
        want_running = action != "stop"
        state = self._settle(name, want_running)
        if state.running != want_running:
            output = (result.stderr or result.stdout).strip().splitlines()
            raise Conflict(f"{action} {name}: the service is {'not ' if want_running else ''}running afterwards"
                           + (f" ({output[-1]})" if output else ""))
        log(f"{name} is {'running' if state.running else 'stopped'}" + (f" (pid {' '.join(map(str, state.pids))})"
                                                                         if state.pids else ""))
        return state

    def _settle(self, name: str, want_running: bool) -> ServiceState:
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            state = self.status(name)
            if state.running == want_running or time.monotonic() > deadline:
                return state
            time.sleep(SETTLE_STEP)

    @abstractmethod
    def action_argv(self, name: str, action: str) -> list[str]:
        """The argv that performs ``action`` on ``name``."""

    @abstractmethod
    def status(self, name: str, log: Log = _quiet) -> ServiceState:
        """Whether ``name`` runs (and its pids) and whether it starts at boot."""

    @abstractmethod
    def set_enabled(self, name: str, enabled: bool, log: Log = _quiet) -> ServiceState:
        """Make ``name`` start at boot (or not); returns the state afterwards.

        :raises Conflict: the manager did not record the change.
        """


class FreeBSDServices(ServicePlatform):
    """service(8) with the ``one`` verbs, and sysrc(8) for ``NAME_enable`` in rc.conf(5)."""

    name = "freebsd"

    def action_argv(self, name: str, action: str) -> list[str]:
        return argv.freebsd_service(name, action)

    def status(self, name: str, log: Log = _quiet) -> ServiceState:
        result = self.run(argv.freebsd_service(name, "status"), log)
        running, pids = parse_freebsd_status(result.returncode, result.stdout)
        value = self.run(argv.freebsd_sysrc_get(name), log)
        enabled = parse_sysrc_value(value.returncode, value.stdout, value.stderr)
        return ServiceState(name, running, bool(enabled), pids, (result.stdout or result.stderr).strip())

    def set_enabled(self, name: str, enabled: bool, log: Log = _quiet) -> ServiceState:
        result = self.run(argv.freebsd_sysrc_set(name, enabled), log)
        change = parse_sysrc_change(result.stdout)
        if result.returncode != 0 or change is None:
            raise Conflict(f"sysrc did not set {argv.freebsd_enable_var(name)}: "
                           f"{(result.stderr or result.stdout).strip() or 'exit ' + str(result.returncode)}")
        return self.status(name)


class SysvServices(ServicePlatform):
    """Debian's service(8) over /etc/init.d scripts, update-rc.d(8) for the boot links (the
    development platform; what a Debian host without systemd as PID 1 has)."""

    name = "sysv"

    def script(self, name: str) -> str:
        """The init.d script behind allow-listed ``name`` (``[hostops] script_names``)."""
        return self.settings.script_names.get(name, name)

    def action_argv(self, name: str, action: str) -> list[str]:
        return argv.sysv_service(self.script(name), action)

    def enabled(self, name: str, log: Log = _quiet) -> bool | None:
        """Whether the script has S links in runlevels 2-5 (None: no links at all)."""
        result = self.run(argv.sysv_list_links(), log)
        return parse_sysv_links(result.stdout, self.script(name))

    def status(self, name: str, log: Log = _quiet) -> ServiceState:
        result = self.run(argv.sysv_service(self.script(name), "status"), log)
        # LSB init script actions: status exits 0 when running, 3 when not (1/2: dead, pidfile left).
        running = result.returncode == 0
        return ServiceState(name, running, bool(self.enabled(name, log)), (),
                            (result.stdout or result.stderr).strip())

    def set_enabled(self, name: str, enabled: bool, log: Log = _quiet) -> ServiceState:
        script = self.script(name)
        if self.enabled(name, log) is None:
            # update-rc.d enable/disable only edit existing links: make them from the LSB header first.
            self.run(argv.sysv_update_rc(script, "defaults"), log)
        result = self.run(argv.sysv_update_rc(script, "enable" if enabled else "disable"), log)
        now = self.enabled(name, log)
        if result.returncode != 0 or bool(now) != enabled:
            raise Conflict(f"update-rc.d did not {'enable' if enabled else 'disable'} {script}: "
                           f"{(result.stderr or result.stdout).strip() or 'exit ' + str(result.returncode)}")
        return self.status(name)


PLATFORMS: dict[str, type[ServicePlatform]] = {"freebsd": FreeBSDServices, "sysv": SysvServices}


def service_platform(runtime: Runtime, runner: Any = None) -> ServicePlatform:
    """The configured :class:`ServicePlatform` over ``runner`` (default: the runtime's runner)."""
    settings: HostopsSettings = runtime.settings.section("hostops")
    choice = settings.service_platform
    if choice == "auto":
        choice = "freebsd" if detect_platform(runtime.settings.core.platform) == "freebsd" else "sysv"
    return PLATFORMS[choice](runtime.runner if runner is None else runner, settings)
