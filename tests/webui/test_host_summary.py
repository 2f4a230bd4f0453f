"""The dashboard's host summary: memory from proc(5)'s meminfo, datastore space from
statvfs(2), and what active VMs take, counted for the caller (admins: every VM)."""

from __future__ import annotations

import shutil

from pages_env import PagesEnv

from bhype_core.api.principal import Principal
from bhype_webui.host_summary import available_memory, datastore_space, host_summary

# proc(5) format: "Name:   value kB"; MemAvailable since Linux 3.14.
MEMINFO = """\
MemTotal:       24576000 kB
MemFree:         1024000 kB
MemAvailable:   20480000 kB
Buffers:          102400 kB
"""


def test_available_memory_comes_from_meminfo(tmp_path):
    path = tmp_path / "meminfo"
    path.write_text(MEMINFO)
    assert available_memory(path) == 20480000 * 1024
    # Without the file (FreeBSD): free pages from sysconf(3), a positive number here too.
    assert available_memory(tmp_path / "absent") > 0


def test_datastore_space_and_vm_usage(tmp_path):
    env = PagesEnv(tmp_path, vm={"datastores": {"default": {"path": str(tmp_path / "ds")},
                                                "tank": {"backend": "zfs", "dataset": "tank/bhype"}}})
    try:
        env.add_vms("alice", 2, state="running")  # 2 vCPUs, 2G each
        env.add_vms("alice", 1, prefix="off")  # stopped: not counted
        env.add_vms("bob", 1, state="starting")
        spaces = {space.name: space for space in datastore_space(env.runtime)}
        # The datastore directory does not exist yet: the file system it will live on is measured.
        usage = shutil.disk_usage(tmp_path)
        assert spaces["default"].total == usage.total and 0 <= spaces["default"].percent <= 100
        assert spaces["tank"].backend == "zfs" and spaces["tank"].total is None

        mine = host_summary(env.runtime, Principal("alice", "operator"))
        assert (mine.vm_cpus, mine.vm_memory) == (4, 4 << 30)
        everyone = host_summary(env.runtime, Principal("root", "admin"))
        assert (everyone.vm_cpus, everyone.vm_memory) == (6, 6 << 30)
        assert everyone.memory_total and 0 <= everyone.memory_percent <= 100
    finally:
        env.close()
