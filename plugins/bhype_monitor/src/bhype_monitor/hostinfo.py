"""Current host load and memory, read through the runner so a remote (SSH) host works too.

Linux: ``/proc/loadavg`` and ``/proc/meminfo`` (proc(5)). FreeBSD: ``sysctl -n`` (sysctl(8)) of
``vm.loadavg``, ``hw.physmem``, ``hw.pagesize`` and the VM page counters
``vm.stats.vm.v_free_count`` / ``v_inactive_count`` (pages; free + inactive is what psutil
also counts as available, less the always-zero cache queue).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, computed_field

FREEBSD_SYSCTLS = (
    "vm.loadavg",
    "hw.physmem",
    "hw.pagesize",
    "vm.stats.vm.v_free_count",
    "vm.stats.vm.v_inactive_count",
)


class LoadAverage(BaseModel):
    """Run-queue load averaged over 1, 5 and 15 minutes."""

    one: float
    five: float
    fifteen: float


class Memory(BaseModel):
    """Physical memory, and how much of it can be given out without swapping."""

    total_bytes: int
    available_bytes: int

    @computed_field  # type: ignore[prop-decorator]
    @property
    def used_percent(self) -> float:
        return round(100.0 * (self.total_bytes - self.available_bytes) / self.total_bytes, 1)


class HostSample(BaseModel):
    """One reading of the host."""

    platform: str
    load_average: LoadAverage
    memory: Memory


def parse_proc_loadavg(text: str) -> LoadAverage:
    """``/proc/loadavg``: ``0.52 0.48 0.45 1/234 5678`` (proc(5)); the first three fields."""
    fields = text.split()
    if len(fields) < 3:
        raise ValueError(f"unrecognised /proc/loadavg: {text!r}")
    return LoadAverage(one=float(fields[0]), five=float(fields[1]), fifteen=float(fields[2]))


def parse_proc_meminfo(text: str) -> Memory:
    """``/proc/meminfo``: ``MemTotal:  16303108 kB`` lines (proc(5)); MemAvailable (Linux 3.14+)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[key.strip()] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
    try:
        return Memory(total_bytes=values["MemTotal"], available_bytes=values["MemAvailable"])
    except KeyError as exc:
        raise ValueError(f"/proc/meminfo lacks {exc.args[0]}") from None


def parse_freebsd_sysctls(text: str) -> tuple[LoadAverage, Memory]:
    """``sysctl -n`` of :data:`FREEBSD_SYSCTLS`: one value per line in the order asked, the load
    average printed as ``{ 0.52 0.48 0.45 }`` (sysctl(8))."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) != len(FREEBSD_SYSCTLS):
        raise ValueError(f"expected {len(FREEBSD_SYSCTLS)} sysctl values, got {len(lines)}")
    loadavg = lines[0].strip("{} ").split()
    if len(loadavg) != 3:
        raise ValueError(f"unrecognised vm.loadavg: {lines[0]!r}")
    physmem, pagesize, free, inactive = (int(value) for value in lines[1:])
    return (
        LoadAverage(one=float(loadavg[0]), five=float(loadavg[1]), fifteen=float(loadavg[2])),
        Memory(total_bytes=physmem, available_bytes=(free + inactive) * pagesize),
    )


def _stdout(runner: Any, argv: list[str], timeout: float) -> str:
    result = runner.run(argv, timeout=timeout, check=True)
    value = result.stdout or ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def read_host(runner: Any, timeout: float) -> HostSample:
    """Read the host's platform, load and memory. Raises CommandError or ValueError."""
    system = _stdout(runner, ["uname", "-s"], timeout).strip()
    if system == "Linux":
        load = parse_proc_loadavg(_stdout(runner, ["cat", "/proc/loadavg"], timeout))
        memory = parse_proc_meminfo(_stdout(runner, ["cat", "/proc/meminfo"], timeout))
        return HostSample(platform="linux", load_average=load, memory=memory)
    if system == "FreeBSD":
        load, memory = parse_freebsd_sysctls(_stdout(runner, ["sysctl", "-n", *FREEBSD_SYSCTLS], timeout))
        return HostSample(platform="freebsd", load_average=load, memory=memory)
    raise ValueError(f"unsupported host platform {system!r} (bHype runs on FreeBSD and Linux)")
