"""The supervisor launcher (issue 15): VM supervisors forked from a pre-started interpreter.

Real processes throughout (the launcher, its handlers, the daemonized supervisors, a worker
process killed with SIGKILL), with the stand-in bhyve tools of ``fake_bhyve/`` as the only
doubles. A supervisor forked by the launcher must be indistinguishable from an exec'd one: its
command line (the pid-reuse guard of every status read), its own session, no descriptor of the
launcher's, and a life of its own when the launcher and the worker are gone.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_supervisor_bhyve import FAKE, FakeHost, host, make_spec, wait_for  # noqa: F401 (fixture)

from bhype_core.drivers.base import VMState
from bhype_core.drivers.launcher_client import Launcher, launcher_for
from bhype_core.drivers.proctitle import ROOM
from bhype_core.drivers.state import SUPERVISOR_MODULE, ProcessTable, supervisor_markers
from bhype_core.host.runner import LocalRunner


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def stat_fields(pid: int) -> list[str]:
    """Fields 3.. of /proc/PID/stat (proc(5)): state, ppid, pgrp, session, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def session_of(pid: int) -> int:
    return int(stat_fields(pid)[3])


def parent_of(pid: int) -> int:
    return int(stat_fields(pid)[1])


def socket_paths(pid: int) -> dict[int, str]:
    """The unix sockets open in ``pid``: descriptor -> bound path ('' for an unnamed one)."""
    inodes = {}
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(entry)
        if target.startswith("socket:["):
            inodes[target[8:-1]] = int(entry.name)
    paths = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[6] in inodes:
            paths[inodes[fields[6]]] = fields[7] if len(fields) > 7 else ""
    assert set(paths) == set(inodes.values()), "every socket of the process is a unix socket"
    return paths


def current_launcher() -> int:
    pid = launcher_for(sys.executable).pid
    assert pid is not None, "the driver's start went through a running launcher"
    return pid


def test_a_forked_supervisor_looks_like_an_execd_one_and_the_channel_has_no_path(host: FakeHost) -> None:
    spec = make_spec("fork1")
    vm_dir = host.vm_dir("fork1")
    driver = host.driver()
    started = driver.start(spec, vm_dir)
    launcher = current_launcher()
    supervisor = started.supervisor_pid
    assert supervisor is not None and started.state is VMState.RUNNING

    # Forked from the launcher, yet with the exec'd command line every status read checks.
    assert cmdline(supervisor) == [sys.executable, "-m", SUPERVISOR_MODULE, str(vm_dir)]
    assert ProcessTable(LocalRunner()).alive(supervisor, supervisor_markers(vm_dir))
    assert cmdline(launcher)[:3] == [sys.executable, "-m", "bhype_core.drivers.launcher"]
    # Its own session, re-parented away from the launcher, without the launcher's sockets.
    assert session_of(supervisor) not in (session_of(launcher), session_of(os.getpid()))
    assert parent_of(supervisor) != launcher
    assert socket_paths(supervisor) == {}
    # The launcher's only channel is the socket pair the worker made: no path anyone could
    # connect to (unix(7): an unnamed socket), and it is ours alone.
    channels = socket_paths(launcher)
    assert list(channels.values()) == [""]
    assert os.stat(f"/proc/{launcher}").st_uid == os.geteuid()

    assert driver.stop(spec, vm_dir, timeout=30).state is VMState.STOPPED


WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from bhype_core.drivers.bhyve import BhyveDriver
    from bhype_core.drivers.launcher_client import launcher_for
    from bhype_core.host.runner import LocalRunner
    from bhype_core.spec import validate_spec

    settings, vm_dir = json.loads(sys.argv[1]), Path(sys.argv[2])
    driver = BhyveDriver(LocalRunner(), **settings)
    status = driver.start(validate_spec({"name": "outlive", "memory": "256M"}), vm_dir)
    print(json.dumps({"launcher": launcher_for(sys.executable).pid, "supervisor": status.supervisor_pid,
                      "pid": status.pid}), flush=True)
    time.sleep(600)
    """
)


def test_a_vm_started_through_the_launcher_outlives_the_launcher_and_the_worker(host: FakeHost) -> None:
    spec = make_spec("outlive")
    vm_dir = host.vm_dir("outlive")
    settings = {
        "run_dir": str(host.root / "run"), "bhyve": str(FAKE / "bhyve"), "bhyvectl": str(FAKE / "bhyvectl"),
        "bhyveload": str(FAKE / "bhyveload"), "firmware_dir": str(host.firmware),
        "vmm_dir": str(host.fake / "vmm"), "start_grace": 1.0, "start_timeout": 30,
    }  # fmt: skip
    worker = subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(settings), str(vm_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        started = json.loads(worker.stdout.readline())  # type: ignore[union-attr]
    finally:
        worker.kill()  # SIGKILL: no clean-up of any kind in the worker
        worker.wait()
    procs = ProcessTable(LocalRunner())
    launcher = started["launcher"]
    assert launcher and parent_of(started["supervisor"]) != launcher
    # The launcher reads end-of-file on its channel when the worker is gone, and exits.
    assert procs.wait_gone(launcher, ("bhype_core.drivers.launcher",), 10)
    assert not procs.alive(worker.pid)

    driver = host.driver()  # the next worker: only the files and the processes remain
    status = driver.status(spec, vm_dir)
    assert status.state is VMState.RUNNING
    assert (status.supervisor_pid, status.pid) == (started["supervisor"], started["pid"])
    host.guest(spec, "reboot")  # still supervised: a guest reboot starts bhyve again
    wait_for(lambda: driver.status(spec, vm_dir).restarts == 1)
    stopped = driver.force_stop(spec, vm_dir)
    assert stopped.state is VMState.STOPPED and "without its supervisor" not in stopped.detail


def test_a_launcher_that_died_is_started_again(host: FakeHost) -> None:
    driver = host.driver()
    first, second = make_spec("again1"), make_spec("again2")
    driver.start(first, host.vm_dir("again1"))
    old = current_launcher()
    os.kill(old, signal.SIGKILL)
    assert ProcessTable(LocalRunner()).wait_gone(old, (), 10)

    started = driver.start(second, host.vm_dir("again2"))

    new = current_launcher()
    assert new != old and started.state is VMState.RUNNING
    assert cmdline(started.supervisor_pid)[-1] == str(host.vm_dirs[-1])
    assert driver.status(first, host.vm_dirs[0]).state is VMState.RUNNING  # untouched by its death
    for spec, vm_dir in ((first, host.vm_dirs[0]), (second, host.vm_dirs[1])):
        driver.force_stop(spec, vm_dir)


def test_a_launcher_that_cannot_serve_falls_back_to_exec(host: FakeHost, monkeypatch) -> None:
    # A launcher that dies before taking any request (here: one that is not a launcher at all).
    broken = Launcher(sys.executable)
    monkeypatch.setattr(broken, "argv", lambda: ["/bin/true"])
    monkeypatch.setattr("bhype_core.drivers.supervised.launcher_for", lambda python: broken)
    spec = make_spec("fallback")
    vm_dir = host.vm_dir("fallback")

    started = host.driver().start(spec, vm_dir)

    assert started.state is VMState.RUNNING
    assert ProcessTable(LocalRunner()).alive(started.supervisor_pid, supervisor_markers(vm_dir))
    host.driver().force_stop(spec, vm_dir)


def test_a_vm_dir_too_long_for_the_title_is_execd(host: FakeHost, caplog) -> None:
    # The forked supervisor's command line must fit the room the launcher reserved; a longer
    # VM directory (possible, if odd) gets an exec'd supervisor instead, with the same result.
    vm_dir = host.root / "/".join(["d" * 200] * (ROOM // 200 + 1)) / "long"
    vm_dir.mkdir(parents=True)
    host.vm_dirs.append(vm_dir)
    spec = make_spec("long")
    driver = host.driver()
    with caplog.at_level(logging.INFO, logger="bhype_core.drivers.launcher_client"):
        started = driver.start(spec, vm_dir)
    assert "cannot give the supervisor its command line" in caplog.text
    assert started.state is VMState.RUNNING
    assert ProcessTable(LocalRunner()).alive(started.supervisor_pid, supervisor_markers(vm_dir))
    driver.force_stop(spec, vm_dir)


def test_a_failed_start_through_the_launcher_reports_like_an_execd_one(host: FakeHost) -> None:
    from bhype_core.drivers.base import HypervisorFailed

    spec = make_spec("fails")
    vm_dir = host.vm_dir("fails")
    host.script(spec, "fail 4 ROM boot failed: unrestricted guest capability not available")
    with pytest.raises(HypervisorFailed) as caught:
        host.driver(start_grace=5.0).start(spec, vm_dir)
    assert caught.value.exit_status == 4 and "ROM boot failed" in str(caught.value)
    assert current_launcher()
    assert not (vm_dir / "supervisor.pid").exists()


def test_starts_through_the_launcher_are_audited_like_commands(host: FakeHost) -> None:
    records = []
    driver = host.driver()
    driver.runner.add_audit_sink(records.append)
    spec = make_spec("audited")
    vm_dir = host.vm_dir("audited")
    driver.start(spec, vm_dir)
    launched = [r for r in records if r.argv[1:3] == ["-m", SUPERVISOR_MODULE]]
    assert [(r.argv[-1], r.returncode) for r in launched] == [(str(vm_dir), 0)]
    driver.force_stop(spec, vm_dir)


def test_the_title_takes_the_reserved_room_and_refuses_more(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from bhype_core.drivers.proctitle import set_title
        fits = set_title(["python", "-m", "bhype_core.drivers.supervisor", "/v" * 400])
        shown = open("/proc/self/cmdline", "rb").read()
        too_long = set_title(["x" * 4000])
        print(fits, shown.rstrip(b"\\0").split(b"\\0")[-1] == b"/v" * 400, too_long)
        """
    )
    out = subprocess.run([sys.executable, "-c", script, *[""] * ROOM], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"]


def test_the_worker_warms_the_launcher_up_at_start(tmp_path: Path) -> None:
    from bhype_core.builtins import drivers, models, storage, tasks, vm_tasks
    from bhype_core.drivers.launcher_client import _LAUNCHERS
    from bhype_core.plugins import make_plugin_manager
    from bhype_core.runtime import build_runtime
    from bhype_core.tasks.worker import warm_up_driver
    from bhype_core.testing import make_settings

    plugins = [("core_models", models), ("core_storage", storage), ("core_drivers", drivers),
               ("core_tasks", tasks), ("core_vms", vm_tasks)]
    settings = make_settings(tmp_path / "data", core={"driver": "qemu"}, qemu={"accel": "tcg"})
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=plugins))
    previous = _LAUNCHERS.pop((os.getpid(), sys.executable), None)  # as in a fresh worker process
    try:
        warm_up_driver(runtime).join(30)
        pid = launcher_for(sys.executable).pid
        assert pid is not None and cmdline(pid)[:3] == [sys.executable, "-m", "bhype_core.drivers.launcher"]
    finally:
        warmed = _LAUNCHERS.pop((os.getpid(), sys.executable), None)
        if warmed is not None:
            warmed._close()
        if previous is not None:
            _LAUNCHERS[(os.getpid(), sys.executable)] = previous
        runtime.engine.dispose()
