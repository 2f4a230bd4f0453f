"""What the host's ZFS looks like: `zfs version` and the configured pool, parsed from machine output."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bhype_core.plugin_api import CommandError, ProbeState, read_probe
from bhype_zfs.settings import ZfsSettings

# zpool-list(8): -H tab-separated without header, -p exact numbers (cap without "%").
POOL_PROPERTIES = ("name", "size", "alloc", "free", "cap", "health")

# The API process runs no host commands (issue 3): the worker probes (task kind and periodic
# job ``zfs.probe``) and stores the result as the fact ``zfs.status``, which the route reads.
FACT_KEY = "zfs.status"
PROBE_KIND = "zfs.probe"
REFRESH_ROUTE = "POST /api/v1/zfs/status/refresh"


class ToolStatus(BaseModel):
    """Whether the ZFS tools run on the host, and which OpenZFS version they are."""

    found: bool
    version: str | None = None
    kernel_module_version: str | None = None
    error: str | None = None


class PoolStatus(BaseModel):
    """One pool's size and health as ``zpool list -Hp`` reports it."""

    name: str
    size_bytes: int
    allocated_bytes: int
    free_bytes: int
    capacity_percent: int
    health: str


class ZfsStatus(BaseModel):
    """``GET /api/v1/zfs/status``."""

    tools: ToolStatus
    pool: str | None
    pool_status: PoolStatus | None = None
    pool_error: str | None = None


def parse_zfs_version(text: str) -> tuple[str | None, str | None]:
    """Parse `zfs version` (zfs(8), OpenZFS 0.8+): one line for the userland tools
    (``zfs-2.2.4-FreeBSD_g256659204``) and one for the kernel module (``zfs-kmod-…``).

    Returns ``(userland, kernel module)``; either is None when its line is missing (the module
    line is absent when the module is not loaded).
    """
    userland = kmod = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("zfs-kmod-"):
            kmod = line.removeprefix("zfs-kmod-")
        elif line.startswith("zfs-"):
            userland = line.removeprefix("zfs-")
    return userland, kmod


def zpool_list_argv(settings: ZfsSettings, pool: str) -> list[str]:
    """Argv listing one pool's size and health in machine form (zpool-list(8))."""
    return [settings.zpool_command, "list", "-Hp", "-o", ",".join(POOL_PROPERTIES), pool]


def parse_zpool_list(text: str) -> list[PoolStatus]:
    """Parse ``zpool list -Hp -o name,size,alloc,free,cap,health`` output: one TAB-separated
    row per pool, exact byte counts, capacity as a bare integer (zpool-list(8), zpoolprops(7))."""
    pools = []
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(POOL_PROPERTIES):
            raise ValueError(f"zpool list: expected {len(POOL_PROPERTIES)} TAB-separated fields: {line!r}")
        name, size, alloc, free, cap, health = fields
        pools.append(PoolStatus(
            name=name,
            size_bytes=int(size),
            allocated_bytes=int(alloc),
            free_bytes=int(free),
            capacity_percent=int(cap),
            health=health,
        ))
    return pools


def _output(result: Any, stream: str) -> str:
    value = getattr(result, stream, "") or ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _failure(result: Any) -> str:
    tail = _output(result, "stderr").strip().splitlines()
    return tail[-1] if tail else f"exited with status {result.returncode}"


def tool_status(runner: Any, settings: ZfsSettings) -> ToolStatus:
    """Run ``zfs version`` on the host; any failure (missing, hung, no module) is reported, not raised."""
    try:
        result = runner.run([settings.zfs_command, "version"], timeout=settings.command_timeout, check=False)
    except CommandError as exc:  # not installed, not executable, or timed out
        return ToolStatus(found=False, error=exc.reason or exc.message)
    if result.returncode != 0:
        return ToolStatus(found=False, error=_failure(result))
    userland, kmod = parse_zfs_version(_output(result, "stdout"))
    return ToolStatus(found=True, version=userland, kernel_module_version=kmod)


def zfs_status(runner: Any, settings: ZfsSettings) -> ZfsStatus:
    """Everything ``GET /api/v1/zfs/status`` reports."""
    tools = tool_status(runner, settings)
    status = ZfsStatus(tools=tools, pool=settings.pool or None)
    if not settings.pool or not tools.found:
        return status
    argv = zpool_list_argv(settings, settings.pool)
    try:
        result = runner.run(argv, timeout=settings.command_timeout, check=False)
    except CommandError as exc:
        status.pool_error = exc.reason or exc.message
        return status
    if result.returncode != 0:
        status.pool_error = _failure(result)  # e.g. "cannot open 'tank': no such pool"
        return status
    try:
        pools = parse_zpool_list(_output(result, "stdout"))
    except ValueError as exc:
        status.pool_error = str(exc)
        return status
    status.pool_status = next((p for p in pools if p.name == settings.pool), None)
    if status.pool_status is None:
        status.pool_error = f"zpool list did not report pool {settings.pool!r}"
    return status


class ZfsStatusReport(ProbeState):
    """``GET /api/v1/zfs/status``: :class:`ZfsStatus` as the worker last probed it (empty fields
    and a ``message`` while ``probed`` is false)."""

    tools: ToolStatus | None = None
    pool: str | None = None
    pool_status: PoolStatus | None = None
    pool_error: str | None = None


def probe(context: Any) -> dict[str, Any]:
    """Task kind and periodic job ``zfs.probe`` (worker only): run :func:`zfs_status` with the
    worker's runner and store it as the fact ``zfs.status``; returns what was stored."""
    status = zfs_status(context.runner, context.settings.section("zfs"))
    value = status.model_dump(mode="json")
    context.runtime.facts.put(FACT_KEY, value)
    tools = f"OpenZFS {status.tools.version}" if status.tools.found else f"no zfs ({status.tools.error})"
    health = status.pool_status.health if status.pool_status else (status.pool_error or "not queried")
    context.log(f"probed: {tools}" + (f"; pool {status.pool}: {health}" if status.pool else ""))
    return value


def status_report(runtime: Any) -> ZfsStatusReport:
    """The status route's answer, read from the stored fact (no host command)."""
    value, state = read_probe(runtime.facts, FACT_KEY, ZfsStatus, what="the host's ZFS", refresh=REFRESH_ROUTE)
    return ZfsStatusReport(**state.model_dump(), **(value.model_dump() if value else {}))
