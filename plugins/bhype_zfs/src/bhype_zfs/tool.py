"""Running zfs/zpool argv through the host runner, with their failures turned into bHype errors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import BhypeError, CommandError, Conflict, NotFound
from bhype_zfs.argv import Tools
from bhype_zfs.settings import ZfsSettings

# zfs(8)/zpool(8) print these on stderr (libzfs_util.c messages); bHype answers them with a
# 404 or 409 that carries the tool's own words, instead of a generic command failure.
_NOT_FOUND = ("does not exist", "no such pool", "could not find any snapshots", "no such device")
_CONFLICT = (
    "already exists",
    "dataset is busy",
    "it's being held",
    "has dependent clones",
    "has children",
    "more recent snapshots",
    "pool is busy",
    "is part of active pool",
    "is part of exported pool",
    "contains a filesystem",
    "is in use",
)


def classify(error: CommandError) -> BhypeError:
    """A :class:`NotFound` or :class:`Conflict` for the well-known zfs/zpool failures (the
    message is the tool's last stderr lines), else ``error`` itself."""
    text = error.stderr_tail or error.reason or ""
    lowered = text.lower()
    if error.returncode is not None:
        if any(marker in lowered for marker in _CONFLICT):
            return Conflict(text.strip())
        if any(marker in lowered for marker in _NOT_FOUND):
            return NotFound(text.strip())
    return error


@dataclass
class ZfsHost:
    """The ZFS tools on the host the runner reaches: ``run`` an argv, translated errors."""

    runner: Any
    tools: Tools
    timeout: float = 120.0

    def run(self, argv: Sequence[str], *, input: bytes | str | None = None, timeout: float | None = None) -> Any:
        """Run ``argv`` and return its result.

        :raises NotFound: the dataset, snapshot or pool does not exist.
        :raises Conflict: it already exists, is busy, held, has dependents.
        :raises CommandError: any other failure (argv, status and stderr tail included).
        """
        try:
            return self.runner.run(list(argv), timeout=timeout or self.timeout, input=input)
        except CommandError as exc:
            raise classify(exc) from exc

    def pipe(
        self,
        producer: Sequence[str],
        consumer: Sequence[str],
        *,
        timeout: float | None = None,
        on_producer_line: Any = None,
    ) -> Any:
        """Run ``producer | consumer`` on the host (the stream never passes through bHype);
        errors translated as in :meth:`run` (the consumer's first: ``zfs receive`` explains
        more than a ``zfs send`` killed by the broken pipe)."""
        try:
            return self.runner.pipe(list(producer), list(consumer), timeout=timeout or self.timeout,
                                    on_producer_line=on_producer_line)
        except CommandError as exc:
            raise classify(exc) from exc

    def probe(self, argv: Sequence[str], *, timeout: float | None = None) -> Any:
        """Run a read-only ``argv`` whose non-zero exit is an answer, not a failure
        (``zdb -l`` exits 2 on a blank disk); returns the result whatever its status."""
        return self.runner.run(list(argv), timeout=timeout or self.timeout, check=False)

    def text(self, argv: Sequence[str], *, timeout: float | None = None) -> str:
        """Run ``argv`` (errors translated) and return its stdout."""
        return self.run(argv, timeout=timeout).stdout

    def has_path(self, path: str | Path, *, regular_file: bool = False) -> bool:
        """Whether ``path`` exists on the host (test(1) ``-e``; ``-f`` with ``regular_file``)."""
        return self.probe(["test", "-f" if regular_file else "-e", str(path)]).returncode == 0

    def exists(self, dataset: str) -> bool:
        """Whether ``dataset`` (filesystem, volume or snapshot) exists (zfs-list(8))."""
        result = self.probe([self.tools.zfs, "list", "-H", "-o", "name", "-t", "all", dataset])
        if result.returncode == 0:
            return True
        if "does not exist" in result.stderr:
            return False
        raise classify(result.error())


def resolve_platform(runtime: Any, settings: ZfsSettings) -> str:
    """``zfs.platform``, or when ``auto`` the host's platform (``core.platform``/detection)."""
    if settings.platform != "auto":
        return settings.platform
    from bhype_core.plugin_api import detect_platform

    return detect_platform(runtime.settings.core.platform)


def zfs_settings(runtime: Any) -> ZfsSettings:
    """The runtime's ``[zfs]`` section."""
    return runtime.settings.section("zfs")


def zfs_host(runtime: Any, timeout: float | None = None) -> ZfsHost:
    """A :class:`ZfsHost` over the runtime's runner, per ``[zfs]``; ``timeout`` defaults to
    ``zfs.task_timeout`` (long enough for ``zpool create`` and sends)."""
    settings = zfs_settings(runtime)
    tools = Tools(settings.zfs_command, settings.zpool_command, resolve_platform(runtime, settings))
    return ZfsHost(runtime.runner, tools, timeout or settings.task_timeout)
