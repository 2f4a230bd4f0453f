"""Argv builders and parsers for per-VM statistics: pure functions, tested against recorded
samples (bhyve) and real processes (Linux /proc, QEMU's QMP).

* ``bhyvectl --vm=NAME --get-stats``: bhyvectl(8); format per reference freebsd-host.md 3.3 (a
  ``vcpuN stats:`` or ``vcpuN`` header, then ``description<TAB>value`` lines).
* ``rctl -u process:PID``: rctl(8); one ``resource=value`` line each (reference 4.4).
* ``/proc/PID/stat`` and ``/proc/PID/status``: proc(5) (utime/stime are fields 14 and 15 in
  clock ticks; ``VmRSS:`` in kB).
* QMP ``query-blockstats``: QEMU's ``qapi/block-core.json`` (``BlockStats`` with ``rd_bytes``,
  ``wr_bytes``, ``rd_operations``, ``wr_operations``).
"""

from __future__ import annotations

from typing import Any

from bhype_core.drivers.capabilities import DiskStats

# The bhyvectl counters bHype reads (descriptions from the kernel's VMM_STAT definitions; they
# differ between Intel/AMD and releases, so each is optional).
BHYVECTL_COUNTERS = {
    "total number of vm exits": "vm_exits",
    "number of times hlt was intercepted": "hlt_exits",
    "vcpu total runtime": "vcpu_runtime_tsc",
    "Resident memory": "resident_bytes",
    "Wired memory": "wired_bytes",
}


def bhyvectl_stats_argv(bhyvectl: str, instance: str, cpu: int = 0) -> list[str]:
    """bhyvectl(8) ``--vm=NAME --get-stats --cpu=N`` (long options, ``=`` form; reference 3.3)."""
    if not instance or instance.startswith("-") or "/" in instance:
        raise ValueError(f"invalid VM instance name {instance!r}")
    return [bhyvectl, f"--vm={instance}", "--get-stats", f"--cpu={cpu}"]


def parse_bhyvectl_stats(text: str) -> dict[str, int]:
    """Every ``description<TAB>value`` counter of ``bhyvectl --get-stats`` by description
    (split on the last TAB, description stripped); header and unparsable lines are skipped."""
    counters: dict[str, int] = {}
    for line in text.splitlines():
        description, tab, value = line.rpartition("\t")
        if not tab:
            continue
        try:
            counters[description.strip()] = int(value.strip())
        except ValueError:
            continue
    return counters


def rctl_usage_argv(rctl: str, pid: int) -> list[str]:
    """rctl(8) ``-u process:PID``: the resource usage of one process (reference 4.4)."""
    return [rctl, "-u", f"process:{int(pid)}"]


def parse_rctl_usage(text: str) -> dict[str, int]:
    """``resource=value`` lines into a dict (order not relied on; non-numbers skipped)."""
    usage: dict[str, int] = {}
    for line in text.splitlines():
        key, eq, value = line.strip().partition("=")
        if eq and value.strip().lstrip("-").isdigit():
            usage[key] = int(value)
    return usage


def proc_argv(pid: int) -> list[str]:
    """Read proc(5) ``stat`` (one line) then ``status`` of process ``pid`` in one command."""
    return ["cat", f"/proc/{int(pid)}/stat", f"/proc/{int(pid)}/status"]


def parse_proc(text: str, clock_ticks: int) -> tuple[float | None, int | None]:
    """(CPU seconds = utime + stime, resident bytes) from :func:`proc_argv`'s output.

    The command name in ``stat`` is in parentheses and may hold spaces or ``)``: fields are
    counted after the *last* ``)`` (proc(5)); utime and stime are fields 14 and 15.
    """
    lines = text.splitlines()
    cpu: float | None = None
    if lines and ")" in lines[0]:
        fields = lines[0].rsplit(")", 1)[1].split()
        # fields[0] is field 3 (state), so field N is fields[N - 3].
        if len(fields) > 12:
            cpu = (int(fields[11]) + int(fields[12])) / clock_ticks
    rss: int | None = None
    for line in lines[1:]:
        if line.startswith("VmRSS:"):
            parts = line.split()
            rss = int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else None
    return cpu, rss


def parse_blockstats(answer: list[dict[str, Any]]) -> dict[str, DiskStats]:
    """QMP ``query-blockstats`` by device id (``disk0``, ``cd0``, ``seed`` as qemu_argv names
    the drives); entries without a device name (anonymous nodes) are skipped."""
    disks: dict[str, DiskStats] = {}
    for entry in answer or []:
        device = entry.get("device") or ""
        stats = entry.get("stats") or {}
        if not device:
            continue
        disks[device] = DiskStats(
            read_bytes=stats.get("rd_bytes"),
            write_bytes=stats.get("wr_bytes"),
            read_ops=stats.get("rd_operations"),
            write_ops=stats.get("wr_operations"),
        )
    return disks
