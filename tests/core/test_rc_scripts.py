"""bHype's rc.d scripts: sh -n, shellcheck (POSIX sh), and runs against a stand-in rc.subr.

The stand-in (tests/core/rcsubr/rc.subr + daemon, README there says how faithful) lets each
script start, report status, refuse and stop as rc.subr would; the test asserts the argv the
script hands daemon(8) and, for the worker, the CLI calls at boot and system shutdown.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from importlib import resources
from pathlib import Path

import pytest

STANDIN = Path(__file__).parent / "rcsubr"
SCRIPTS = ("bhype_api", "bhype_worker", "bhype_authd")
PYTHON_CMD = "/usr/local/bin/python3.11"


def script_text(name: str) -> str:
    return resources.files("bhype_core").joinpath("rc.d", name).read_text(encoding="utf-8")


@pytest.fixture
def rc(tmp_path):
    """Installs a script into tmp_path as a port would (%%PREFIX%% → tmp_path/prefix), with
    the stand-in rc.subr; returns a runner ``rc(name, arg, **rc_conf) -> CompletedProcess``."""
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "etc" / "bhype").mkdir(parents=True)
    config = prefix / "etc" / "bhype" / "bhype.toml"
    config.write_text("")
    cli_log = tmp_path / "cli.log"
    fake_cli = prefix / "bin" / "bhype"  # records how the worker's rc script calls the CLI
    fake_cli.write_text(f'#!/bin/sh\necho "XDG_CONFIG_HOME=$XDG_CONFIG_HOME $*" >> {cli_log}\n')
    fake_cli.chmod(0o755)
    started: list[Path] = []

    def run(name: str, arg: str, **conf: str):
        script = tmp_path / name
        text = script_text(name).replace(". /etc/rc.subr", f". {STANDIN / 'rc.subr'}")
        script.write_text(text.replace("%%PREFIX%%", str(prefix)).replace("%%PYTHON_CMD%%", PYTHON_CMD))
        script.chmod(0o555)
        settings = {f"{name}_program": str(STANDIN / "daemon"), f"{name}_pidfile": str(tmp_path / f"{name}.pid"),
                    f"{name}_logfile": str(tmp_path / f"{name}.log"), **conf}
        (tmp_path / "rc.conf").write_text("".join(f'{key}="{value}"\n' for key, value in settings.items()))
        started.append(tmp_path / f"{name}.pid")
        env = {"PATH": os.environ["PATH"], "RC_CONF": str(tmp_path / "rc.conf"),
               "DAEMON_LOG": str(tmp_path / "daemon.log")}
        return subprocess.run(["/bin/sh", str(script), arg], capture_output=True, text=True, env=env, timeout=60)

    run.tmp = tmp_path
    run.prefix = prefix
    run.config = config
    run.cli_log = cli_log
    yield run
    for pidfile in started:  # stop a stand-in this test left running (by its recorded pid)
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass


def daemon_argvs(tmp_path: Path) -> list[list[str]]:
    """Each argv the stand-in daemon(8) received."""
    log = tmp_path / "daemon.log"
    if not log.exists():
        return []
    argvs, current = [], []
    for line in log.read_text().splitlines():
        if line == "--end--":
            argvs.append(current)
            current = []
        else:
            current.append(line)
    return argvs


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_parse_and_pass_shellcheck_in_posix_mode(name, tmp_path) -> None:
    path = tmp_path / name
    path.write_text(script_text(name))
    subprocess.run(["sh", "-n", str(path)], check=True)
    if shutil.which("shellcheck") is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is missing (tools/install-test-deps installs it)")
        pytest.skip("shellcheck is missing (tools/install-test-deps installs it)")
    # SC1091: /etc/rc.subr is not on this machine. SC2034: name, rcvar, command, command_args,
    # pidfile, required_files, desc are read by rc.subr after sourcing, which shellcheck cannot see.
    result = subprocess.run(["shellcheck", "-s", "sh", "-e", "SC1091,SC2034", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(("name", "require", "keyword"), [
    ("bhype_api", "LOGIN NETWORKING bhype_authd", None),
    ("bhype_worker", "LOGIN NETWORKING zfs bhype_api", "shutdown"),
    ("bhype_authd", "LOGIN", None),
])
def test_rcorder_lines(name, require, keyword) -> None:
    lines = {line.split(":")[0].lstrip("# "): line.split(":", 1)[1].strip()
             for line in script_text(name).splitlines() if line.startswith("# ") and ":" in line
             and line.split(":")[0].lstrip("# ") in ("PROVIDE", "REQUIRE", "KEYWORD", "BEFORE")}
    assert lines["PROVIDE"] == name and lines["REQUIRE"] == require
    assert lines.get("KEYWORD") == keyword


def test_disabled_service_refuses_start_without_running_anything(rc) -> None:
    result = rc("bhype_api", "start")
    assert result.returncode == 0
    assert "Cannot 'start' bhype_api. Set bhype_api_enable to YES" in result.stdout
    assert daemon_argvs(rc.tmp) == []


def test_api_runs_under_daemon_as_the_service_user_and_its_lifecycle(rc) -> None:
    conf = {"bhype_api_enable": "YES", "bhype_api_flags": "--port 8443", "bhype_api_account": "bhype"}
    started = rc("bhype_api", "start", **conf)
    assert started.returncode == 0, started.stderr
    pidfile = rc.tmp / "bhype_api.pid"
    assert daemon_argvs(rc.tmp) == [[
        "-r", "-P", str(pidfile), "-p", str(rc.tmp / "bhype_api.child.pid"), "-H",
        "-o", str(rc.tmp / "bhype_api.log"), "-t", "bhype_api", "-u", "bhype",
        str(rc.prefix / "bin" / "bhype"), "--config", str(rc.config), "serve", "--port", "8443",
    ]]
    pid = pidfile.read_text().strip()
    status = rc("bhype_api", "status", **conf)
    assert (status.returncode, status.stdout.strip()) == (0, f"bhype_api is running as pid {pid}.")
    again = rc("bhype_api", "start", **conf)
    assert again.returncode == 1 and f"already running? (pid={pid})" in again.stderr
    assert rc("bhype_api", "stop", **conf).returncode == 0
    assert not pidfile.exists()
    stopped = rc("bhype_api", "status", **conf)
    assert (stopped.returncode, stopped.stdout.strip()) == (1, "bhype_api is not running.")


def test_missing_config_file_stops_start(rc) -> None:
    rc.config.unlink()
    result = rc("bhype_authd", "onestart")
    assert result.returncode == 1 and "bhype.toml is not readable" in result.stderr
    assert daemon_argvs(rc.tmp) == []


def test_auth_daemon_runs_as_root_under_daemon(rc) -> None:
    assert rc("bhype_authd", "onestart", bhype_authd_flags="--group bhype").returncode == 0
    argv = daemon_argvs(rc.tmp)[0]
    assert "-u" not in argv and argv[:2] == ["-r", "-P"]
    assert argv[argv.index("-t") + 2:] == [PYTHON_CMD, "-m", "bhype_core.auth.daemon", "--config", str(rc.config),
                                           "--group", "bhype"]
    rc("bhype_authd", "onestop")


def test_worker_stop_leaves_vms_and_system_shutdown_stops_them(rc) -> None:
    conf = {"bhype_worker_enable": "YES", "bhype_worker_credentials": "/root/.config"}
    assert rc("bhype_worker", "start", **conf).returncode == 0
    argv = daemon_argvs(rc.tmp)[0]
    assert "-u" not in argv and argv[-3:] == ["--config", str(rc.config), "worker"]
    assert rc("bhype_worker", "stop", **conf).returncode == 0  # service bhype_worker stop
    assert not rc.cli_log.exists()  # no VM was touched
    assert rc("bhype_worker", "start", **conf).returncode == 0
    shutdown = rc("bhype_worker", "faststop", **conf)  # what rc.shutdown(8) runs
    assert shutdown.returncode == 0 and "Stopping bHype VMs" in shutdown.stdout
    assert rc.cli_log.read_text().splitlines() == [
        f"XDG_CONFIG_HOME=/root/.config --config {rc.config} vm shutdown-all"]
    assert not (rc.tmp / "bhype_worker.pid").exists()


def test_worker_boot_starts_autostart_vms_and_a_manual_start_does_not(rc) -> None:
    conf = {"bhype_worker_enable": "YES"}
    assert rc("bhype_worker", "start", **conf).returncode == 0
    rc("bhype_worker", "stop", **conf)
    assert not rc.cli_log.exists()
    assert rc("bhype_worker", "faststart", **conf).returncode == 0  # what /etc/rc runs at boot
    deadline = time.monotonic() + 30  # the autostart runs in the background: wait for its record
    while "autostart" not in (rc.cli_log.read_text() if rc.cli_log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    # first "vm list" until the API answers (the fake CLI answers at once), then the autostart
    assert rc.cli_log.read_text().splitlines() == [
        f"XDG_CONFIG_HOME=/root/.config --config {rc.config} vm list",
        f"XDG_CONFIG_HOME=/root/.config --config {rc.config} vm autostart"]
    rc("bhype_worker", "stop", **conf)


def test_worker_vms_knob_off_leaves_vms_at_shutdown(rc) -> None:
    conf = {"bhype_worker_enable": "YES", "bhype_worker_vms": "NO"}
    rc("bhype_worker", "start", **conf)
    assert rc("bhype_worker", "faststop", **conf).returncode == 0
    assert not rc.cli_log.exists()
