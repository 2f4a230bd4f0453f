"""FreeBSD's service(8)/sysrc(8) path: argv builders and parsers against recorded outputs
(rc.subr(8), sysrc(8); samples/service/README.md names each shape)."""

from __future__ import annotations

import pytest

from bhype_core.plugin_api import Conflict
from bhype_hostops import service_argv, services
from bhype_hostops.service_parse import (
    parse_freebsd_status,
    parse_sysrc_change,
    parse_sysrc_value,
    parse_sysv_links,
)
from bhype_hostops.settings import HostopsSettings

from .recorded import RecordedRunner, sample

RUNNING = (0, "@service/status_running.txt", "")
STOPPED = (1, "@service/status_stopped.txt", "")
ENABLED = (0, "YES\n", "")
UNSET = (1, "", "sysrc: unknown variable 'sshd_enable'\n")


def freebsd(answers, **settings) -> tuple[services.FreeBSDServices, RecordedRunner]:
    runner = RecordedRunner(answers)
    return services.FreeBSDServices(runner, HostopsSettings(**settings)), runner


def test_argv_follows_service8_and_sysrc8():
    assert service_argv.freebsd_service("sshd", "start") == ["service", "sshd", "onestart"]
    assert service_argv.freebsd_service("rsyncd", "status") == ["service", "rsyncd", "onestatus"]
    assert service_argv.freebsd_sysrc_set("sshd", True) == ["sysrc", "sshd_enable=YES"]
    assert service_argv.freebsd_sysrc_set("ntpd", False) == ["sysrc", "ntpd_enable=NO"]
    assert service_argv.freebsd_sysrc_get("sshd") == ["sysrc", "-n", "sshd_enable"]
    assert service_argv.sysv_update_rc("ssh", "enable") == ["update-rc.d", "ssh", "enable"]
    with pytest.raises(ValueError):
        service_argv.freebsd_service("sshd", "rm -rf")


def test_parsers_read_the_recorded_shapes():
    assert parse_freebsd_status(0, sample("@service/status_running.txt")) == (True, (1234,))
    assert parse_freebsd_status(1, sample("@service/status_stopped.txt")) == (False, ())
    assert parse_freebsd_status(0, sample("@service/status_rsyncd_two_pids.txt")) == (True, (4321, 4322))
    assert parse_sysrc_value(0, "YES\n", "") is True
    assert parse_sysrc_value(0, "no\n", "") is False
    assert parse_sysrc_value(1, "", "sysrc: unknown variable 'x'\n") is None
    with pytest.raises(ValueError):
        parse_sysrc_value(2, "", "sysrc: /etc/rc.conf: Permission denied")
    assert parse_sysrc_change(sample("@service/sysrc_enable.txt")) == ("sshd_enable", "NO", "YES")
    assert parse_sysrc_change("sshd_enable:  -> YES\n") == ("sshd_enable", None, "YES")
    assert parse_sysrc_change("garbage") is None
    links = "/etc/rc2.d:\nK01ssh\nS01rsync\n\n/etc/rc3.d:\nK01ssh\nS01rsync\n"
    assert parse_sysv_links(links, "rsync") is True
    assert parse_sysv_links(links, "ssh") is False
    assert parse_sysv_links(links, "sshd") is None  # no links: update-rc.d never ran


def test_start_is_confirmed_by_a_status_query_not_by_its_exit_code():
    # rc.subr exits 0 from a start that printed "Cannot 'start'" or whose daemon died at once:
    # the following status (exit 1) is what says it is not running.
    platform, runner = freebsd({
        ("service", "sshd", "onestart"): (0, "@service/start.txt", ""),
        ("service", "sshd", "onestatus"): STOPPED,
        ("sysrc", "-n", "sshd_enable"): UNSET,
    })
    services.SETTLE_SECONDS, saved = 0.0, services.SETTLE_SECONDS
    try:
        with pytest.raises(Conflict, match="not running afterwards"):
            platform.act("sshd", "start")
    finally:
        services.SETTLE_SECONDS = saved
    assert ["service", "sshd", "onestart"] in runner.calls


def test_start_stop_enable_disable_on_freebsd():
    log: list[str] = []
    platform, runner = freebsd({
        ("service", "sshd", "onestart"): (0, "@service/start.txt", ""),
        ("service", "sshd", "onestop"): (0, "@service/stop.txt", ""),
        ("service", "sshd", "onestatus"): [STOPPED, RUNNING, RUNNING, STOPPED, STOPPED, STOPPED],
        ("sysrc", "-n", "sshd_enable"): [UNSET, UNSET, UNSET, UNSET, ENABLED, (0, "NO\n", "")],
        ("sysrc", "sshd_enable=YES"): (0, "@service/sysrc_enable.txt", ""),
        ("sysrc", "sshd_enable=NO"): (0, "@service/sysrc_disable.txt", ""),
    })
    assert platform.status("sshd").running is False
    state = platform.act("sshd", "start", log.append)
    assert state.running and state.pids == (1234,)
    assert "$ service sshd onestart" in log and "  Starting sshd." in log
    assert platform.act("sshd", "stop", log.append).running is False
    assert platform.set_enabled("sshd", True, log.append).enabled is True
    assert "  sshd_enable: NO -> YES" in log
    assert platform.set_enabled("sshd", False).enabled is False


def test_sshd_t_failure_stops_a_reload_on_freebsd():
    log: list[str] = []
    platform, runner = freebsd({("/usr/sbin/sshd", "-t"): (255, "", "@service/sshd_t_bad.txt")})
    with pytest.raises(Conflict, match="configuration check of sshd failed"):
        platform.act("sshd", "reload", log.append)
    assert runner.calls == [["/usr/sbin/sshd", "-t"]]  # nothing after the failed check
    assert any("Bad configuration option: NoSuchKeyword" in line for line in log)


def test_sysrc_that_changes_nothing_is_an_error():
    refused = (1, "", "sysrc: cannot create /etc/rc.conf: Read-only file system\n")
    platform, _ = freebsd({("sysrc", "sshd_enable=YES"): refused})
    with pytest.raises(Conflict, match="Read-only file system"):
        platform.set_enabled("sshd", True)


def test_the_platform_is_chosen_at_start_up(hostops_runtime):
    runtime = hostops_runtime(service_platform="freebsd")
    assert isinstance(services.service_platform(runtime), services.FreeBSDServices)
    runtime = hostops_runtime(service_platform="auto")
    assert isinstance(services.service_platform(runtime), services.SysvServices)  # this Linux host


def test_settings_refuse_names_that_are_not_service_names():
    with pytest.raises(ValueError):
        HostopsSettings(services=["sshd", "../../bin/sh"])
    with pytest.raises(ValueError):
        HostopsSettings(config_checks={"sshd": []})
