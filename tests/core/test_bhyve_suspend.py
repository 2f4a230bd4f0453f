"""bhyve suspend to disk and resume: the usage parser and argv builders against recorded
``bhyve -h`` outputs, and the driver with the stand-in tools (``fake_bhyve/``: bhyvectl(8)
``--suspend``, bhyve(8) ``-r`` and ``-h``). Everything else is real: the supervisor daemon,
state files, the saved-state record (reference freebsd-host.md §3.4)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from test_supervisor_bhyve import FAKE, FakeHost, host, make_spec  # noqa: F401 (fixture)

from bhype_core.drivers.base import Attachments, VMState
from bhype_core.drivers.bhyve_suspend import (
    bhyve_restore_argv,
    bhyve_usage_argv,
    bhyvectl_suspend_argv,
    usage_lists_restore,
)
from bhype_core.drivers.capabilities import Capability
from bhype_core.drivers.saved_state import ResumeRefused, SuspendFailed
from bhype_core.errors import Conflict, NotSupported


def test_only_a_snapshot_build_describes_r() -> None:
    release = (FAKE / "bhyve-h-release.txt").read_text()
    snapshot = (FAKE / "bhyve-h-snapshot.txt").read_text()
    assert "[-r file]" in release  # the synopsis shows it on every build: not the test
    assert not usage_lists_restore(release)
    assert usage_lists_restore(snapshot)
    assert not usage_lists_restore("")


def test_argv_builders_follow_the_man_pages() -> None:
    assert bhyve_usage_argv("/usr/sbin/bhyve") == ["/usr/sbin/bhyve", "-h"]
    assert bhyvectl_suspend_argv("/usr/sbin/bhyvectl", "bhype-web1", "/vms/web1/saved-state") == [
        "/usr/sbin/bhyvectl", "--vm=bhype-web1", "--suspend=/vms/web1/saved-state"]
    argv = ["/usr/sbin/bhyve", "-c", "2", "-s", "0,hostbridge", "-l", "com1,/dev/nmdm-x.1A", "bhype-web1"]
    assert bhyve_restore_argv(argv, "/vms/web1/saved-state") == [
        *argv[:-1], "-r", "/vms/web1/saved-state", "bhype-web1"]
    with pytest.raises(ValueError):
        bhyve_restore_argv(["bhyve"], "x")


def test_a_release_build_cannot_suspend(host: FakeHost) -> None:
    driver, spec = host.driver(), make_spec("rel1")
    vm_dir = host.vm_dir("rel1")
    driver.start(spec, vm_dir)
    assert driver.suspend_supported() is False and Capability.SUSPEND not in driver.capabilities
    with pytest.raises(NotSupported, match="suspend"):
        driver.suspend(spec, vm_dir, timeout=30)
    assert driver.status(spec, vm_dir).state is VMState.RUNNING
    assert ["bhyve", "-h"] == [Path(host.calls("bhyve")[-1][0]).name, host.calls("bhyve")[-1][1]]
    driver.force_stop(spec, vm_dir)


def test_suspend_saves_with_bhyvectl_and_resume_runs_bhyve_r_with_the_same_devices(host: FakeHost) -> None:
    (host.fake / "snapshot-build").touch()
    driver, spec = host.driver(), make_spec("web7")
    vm_dir = host.vm_dir("web7")
    driver.start(spec, vm_dir)
    assert driver.suspend_supported() and Capability.SUSPEND in driver.capabilities
    booted = host.calls("bhyve")[0]

    status = driver.suspend(spec, vm_dir, timeout=30)

    path = str(vm_dir / "saved-state")
    assert host.calls("bhyvectl")[0][1:] == [f"--vm={spec.instance_name}", f"--suspend={path}"]
    assert status.state is VMState.STOPPED and status.suspended["path"] == path
    assert status.history[-1]["exit_status"] == 0 and status.history[-1]["outcome"] == "stopped"
    assert "suspended to disk" in status.detail and not host.instance_exists(spec)
    saved = driver.saved_state(vm_dir)
    assert saved.files == [path, path + ".kern", path + ".meta"] and saved.argv[-1] == spec.instance_name
    assert all(stat.S_IMODE(os.lstat(name).st_mode) == 0o600 for name in saved.files)

    resumed = driver.start(spec, vm_dir, Attachments(restore_from=path))

    assert resumed.state is VMState.RUNNING and resumed.suspended is None
    restored = host.calls("bhyve")[-1]
    assert restored[1:] == bhyve_restore_argv(booted, path)[1:]  # -r FILE, the identical device list
    assert driver.saved_state(vm_dir) is None and not any(Path(f).exists() for f in saved.files)
    driver.stop(spec, vm_dir, timeout=30)


def test_a_failed_suspend_leaves_the_guest_running_and_nothing_saved(host: FakeHost) -> None:
    (host.fake / "snapshot-build").touch()
    (host.fake / "suspend-fails").write_text("errno = 22\n")
    driver, spec = host.driver(), make_spec("web8")
    vm_dir = host.vm_dir("web8")
    started = driver.start(spec, vm_dir)
    with pytest.raises(SuspendFailed, match="exited 1: errno = 22"):
        driver.suspend(spec, vm_dir, timeout=30)
    status = driver.status(spec, vm_dir)
    assert status.state is VMState.RUNNING and status.pid == started.pid and status.suspended is None
    assert not (vm_dir / "stop.request").exists() and not (vm_dir / "saved-state").exists()
    stopped = driver.stop(spec, vm_dir, timeout=30)  # the ACPI fallback still works
    assert stopped.state is VMState.STOPPED and "guest powered off" in stopped.detail


def test_resume_refuses_a_changed_vm_and_a_stopped_one_cannot_be_suspended(host: FakeHost) -> None:
    (host.fake / "snapshot-build").touch()
    driver, spec = host.driver(), make_spec("web9")
    vm_dir = host.vm_dir("web9")
    with pytest.raises(Conflict, match="only a running VM"):
        driver.suspend(spec, vm_dir, timeout=30)
    driver.start(spec, vm_dir)
    driver.suspend(spec, vm_dir, timeout=30)
    path = str(vm_dir / "saved-state")
    with pytest.raises(ResumeRefused, match="devices changed"):
        driver.start(make_spec("web9", cpus=2), vm_dir, Attachments(restore_from=path))
    Path(path + ".kern").unlink()
    with pytest.raises(ResumeRefused, match=r"incomplete: .*saved-state.kern missing"):
        driver.start(spec, vm_dir, Attachments(restore_from=path))
    assert driver.status(spec, vm_dir).state is VMState.STOPPED and len(host.calls("bhyve")) == 2
