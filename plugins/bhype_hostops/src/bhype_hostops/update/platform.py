"""Where the update workflow's installer, boot environments and reboot come from.

One seam, chosen by name from ``[hostops_update] platform`` (never by testing the OS at import
time): ``freebsd`` runs the real tools, ``standin`` runs :mod:`bhype_hostops.update.standin`
(the same argv after a ``python -m … --state DIR`` prefix), and a host with neither has no
installer (the plan says so, the run refuses before changing anything).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bhype_core.plugin_api import BhypeError, CommandError, ConfigError, detect_platform
from bhype_hostops.update import argv
from bhype_hostops.update.parse import (
    BootEnvironment,
    nothing_to_install,
    parse_bectl_list,
    parse_boottime,
)
from bhype_hostops.update.settings import UpdateSettings

QUERY_TIMEOUT = 30.0  # seconds for bectl list, sysctl, pkg which, bhyve -h


class NoInstaller(BhypeError):
    """This host has no update installer configured (not FreeBSD, no stand-in)."""

    code = "no_installer"
    http_status = 409


class ToolFailed(BhypeError):
    """A host tool of the workflow failed; the message names it and ends with what it said."""

    code = "tool_failed"
    http_status = 409


class InstallFailed(BhypeError):
    """An installer failed; the message ends with the last lines it printed."""

    code = "install_failed"
    http_status = 409


@dataclass(frozen=True)
class Install:
    """One installer command's outcome: every line it printed, and whether it changed anything."""

    name: str
    argv: list[str]
    lines: list[str]
    installed: bool


class UpdatePlatform:
    """Runs the workflow's host commands through ``runner`` (audited, argv lists, timeouts)."""

    def __init__(self, name: str, runner: Any, settings: UpdateSettings, prefix: list[str] | None = None) -> None:
        self.name = name
        self.runner = runner
        self.settings = settings
        self.prefix = prefix or []

    def command(self, tool_argv: list[str]) -> list[str]:
        """The argv the runner runs for ``tool_argv`` on this platform."""
        return [*self.prefix, *tool_argv]

    def _run(self, tool_argv: list[str], *, timeout: float = QUERY_TIMEOUT, check: bool = True,
             env: dict[str, str] | None = None, on_line: Callable[[str, str], object] | None = None) -> Any:
        try:
            return self.runner.run(self.command(tool_argv), timeout=timeout, check=check, env=env, on_line=on_line)
        except CommandError as exc:
            # Name the tool, not the stand-in's interpreter; say why in its own words.
            what = exc.reason or f"exited with status {exc.returncode}"
            tail = (exc.stderr_tail or exc.stdout or "").strip().replace("\n", " | ")[-500:]
            raise ToolFailed(f"{' '.join(tool_argv)} {what}" + (f": {tail}" if tail else "")) from exc

    def boot_environments(self) -> list[BootEnvironment]:
        """``bectl list -H``, parsed."""
        return parse_bectl_list(self._run(argv.bectl_list()).stdout)

    def create_boot_environment(self, name: str) -> None:
        """``bectl create -r NAME``."""
        self._run(argv.bectl_create(name), timeout=300.0)

    def boot_id(self) -> str:
        """An identity of the running boot (``kern.boottime``)."""
        return parse_boottime(self._run(argv.boot_time()).stdout)

    def base_mode(self) -> str:
        """``freebsd-update``, ``pkgbase`` or ``none`` (``[hostops_update] base``; ``auto``:
        pkgbase when ``pkg which /usr/bin/uname`` succeeds, as freebsd-update.sh decides)."""
        if self.settings.base != "auto":
            return self.settings.base
        return "pkgbase" if self._run(argv.pkg_which_uname(), check=False).returncode == 0 else "freebsd-update"

    def installers(self, base_mode: str) -> list[tuple[str, list[str], dict[str, str] | None]]:
        """The install commands in order: the base system first, then the packages."""
        steps: list[tuple[str, list[str], dict[str, str] | None]] = []
        if base_mode == "freebsd-update":
            steps.append(("base", argv.freebsd_update_install(), argv.FREEBSD_UPDATE_ENV))
        elif base_mode == "pkgbase":
            steps.append(("base", argv.pkg_upgrade(argv.PKGBASE_REPOSITORY), None))
        steps.append(("packages", argv.pkg_upgrade(), None))
        return steps

    def install(self, name: str, tool_argv: list[str], env: dict[str, str] | None,
                on_line: Callable[[str], object] | None = None) -> Install:
        """Run one installer; a failure raises :class:`InstallFailed` (its last lines in the
        message: freebsd-update says why on stdout). freebsd-update's exit 2 with "No updates
        are available to install." is "nothing to install", not a failure.

        :param on_line: called with each non-blank line the installer prints (stdout or
            stderr) while it runs (the runner's streaming mode), e.g. to write the task log.
        """
        def stream(_stream: str, line: str) -> None:
            if on_line is not None and line.strip():
                on_line(line)

        result = self._run(tool_argv, timeout=self.settings.install_timeout, check=False, env=env,
                           on_line=stream if on_line is not None else None)
        output = result.stdout + ("\n" + result.stderr if result.stderr else "")
        lines = [line for line in output.splitlines() if line.strip()]
        nothing = nothing_to_install(output)
        if result.returncode != 0 and not (result.returncode == 2 and nothing):
            tail = " | ".join(lines[-5:]) or "no output"
            raise InstallFailed(f"{' '.join(tool_argv)} exited with status {result.returncode}: {tail}")
        return Install(name, self.command(tool_argv), lines, installed=not nothing)

    def reboot(self) -> None:
        """``shutdown -r now``."""
        self._run(argv.reboot(), check=False)


def select_platform(runtime: Any, settings: UpdateSettings) -> UpdatePlatform:
    """The configured platform for ``runtime``'s runner.

    :raises NoInstaller: ``auto`` on a host that is not FreeBSD.
    :raises ConfigError: ``standin`` without ``standin_dir``.
    """
    name = settings.platform
    if name == "auto":
        core = runtime.settings.core
        if detect_platform(getattr(core, "platform", None)) != "freebsd":
            raise NoInstaller("no update installer on this host: it is not FreeBSD "
                              "(set [hostops_update] platform = \"standin\" on a development host)")
        name = "freebsd"
    if name == "standin":
        if not settings.standin_dir:
            raise ConfigError("[hostops_update] platform = \"standin\" needs standin_dir")
        prefix = [sys.executable, "-m", "bhype_hostops.update.standin", "--state", settings.standin_dir]
        return UpdatePlatform("standin", runtime.runner, settings, prefix)
    return UpdatePlatform("freebsd", runtime.runner, settings)
