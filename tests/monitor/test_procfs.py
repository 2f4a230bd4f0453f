"""The Linux procfs read of a VM process (issue 15) gives what psutil gives, from proc(5)'s
``stat`` and ``io``; a process that ended, or a pid now used by another process, reads as gone."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil

from bhype_monitor import procfs
from bhype_monitor.vm_sample import GONE, Reading, Tracked, VMReader


def test_procfs_matches_psutil_for_a_real_process() -> None:
    assert procfs.available()
    child = subprocess.Popen([sys.executable, "-c", "x = bytearray(32 << 20)\nimport time\ntime.sleep(60)"],
                             stdin=subprocess.DEVNULL)
    try:
        process = psutil.Process(child.pid)
        while process.memory_info().rss < 32 << 20:  # the buffer is in
            pass
        times, memory, ticks = procfs.read_stat(child.pid)
        expected = process.cpu_times()
        assert abs(times.user - expected.user) < 0.05 and abs(times.system - expected.system) < 0.05
        assert abs(memory.rss - process.memory_info().rss) < 1 << 20 and memory.rss >= 32 << 20
        assert abs(psutil.boot_time() + ticks / procfs.CLOCK_TICKS - process.create_time()) < 0.05
        io = procfs.read_io(child.pid)
        counters = process.io_counters()
        assert io is not None and io.read_bytes == counters.read_bytes and io.write_count <= counters.write_count + 5
    finally:
        child.kill()
        child.wait()
    try:
        procfs.read_stat(child.pid)
        raise AssertionError("an ended process must not read")
    except FileNotFoundError:
        pass


def test_the_reader_calls_a_reused_pid_gone(vm_monitor_runtime) -> None:
    reader = VMReader(vm_monitor_runtime())
    me = Tracked("self", psutil.Process(os.getpid()), [], 64 << 20)
    assert isinstance(reader._read(me), Reading) and me.start_ticks is not None
    assert isinstance(reader._read(me), Reading)  # same process, same start time
    me.start_ticks += 1  # as if the pid had been handed to a new process
    assert reader._read(me) is GONE
