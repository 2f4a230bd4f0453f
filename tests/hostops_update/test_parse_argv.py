"""FreeBSD argv builders and output parsers of the update workflow, against recorded samples
(tests/hostops_update/samples, formats named in its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bhype_core.plugin_api import BhypeError, ValidationErrors
from bhype_hostops.update import argv
from bhype_hostops.update.parse import (
    booted,
    next_boot,
    nothing_to_install,
    parse_bectl_list,
    parse_boottime,
)

SAMPLES = Path(__file__).parent / "samples"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_bectl_list_scripted_output() -> None:
    environments = parse_bectl_list(sample("bectl-list-H.txt"))
    assert [be.name for be in environments] == [
        "default", "14.1-RELEASE-p3_2026-12-07_141500", "bhype-update-20261207-141400"]
    default = environments[0]
    assert (default.active_now, default.active_reboot, default.temporary) == (True, True, False)
    assert (default.mountpoint, default.space, default.created) == ("/", "31.2G", "2026-05-21 18:32")
    assert booted(environments) is default and next_boot(environments) is default


def test_a_temporary_activation_is_the_next_boot() -> None:
    environments = parse_bectl_list(sample("bectl-list-H-temporary.txt"))
    assert booted(environments).name == "default"
    assert next_boot(environments).name == "older"


@pytest.mark.parametrize("text", ["default  NR  /  31.2G  2026-05-21 18:32\n", "a\tX\t/\t1G\t2026-01-01 00:00\n"])
def test_bectl_list_refuses_what_is_not_its_scripted_output(text: str) -> None:
    with pytest.raises(BhypeError, match="bectl list -H, line 1"):
        parse_bectl_list(text)


def test_boottime() -> None:
    assert parse_boottime(sample("sysctl-kern.boottime.txt")) == "1733580000.123456"
    with pytest.raises(BhypeError, match="kern.boottime"):
        parse_boottime("kern.boottime: unknown oid")


def test_installers_saying_there_is_nothing_to_do() -> None:
    assert nothing_to_install(sample("freebsd-update-install-nothing.txt"))
    assert nothing_to_install(sample("pkg-upgrade-up-to-date.txt"))
    assert not nothing_to_install(sample("freebsd-update-install-done.txt"))
    assert not nothing_to_install(sample("freebsd-update-pkgbase.txt"))


def test_argv() -> None:
    assert argv.bectl_list() == ["bectl", "list", "-H"]
    assert argv.bectl_create("bhype-update-20261207-141400") == [
        "bectl", "create", "-r", "bhype-update-20261207-141400"]
    assert argv.freebsd_update_install() == ["freebsd-update", "install"]
    assert argv.FREEBSD_UPDATE_ENV == {"PAGER": "cat"}
    assert argv.pkg_upgrade() == ["pkg", "upgrade", "-y"]
    assert argv.pkg_upgrade("FreeBSD-base") == ["pkg", "upgrade", "-y", "-r", "FreeBSD-base"]
    assert argv.pkg_which_uname() == ["pkg", "which", "/usr/bin/uname"]
    assert argv.reboot() == ["shutdown", "-r", "now"]
    assert argv.boot_time() == ["sysctl", "-n", "kern.boottime"]
    with pytest.raises(ValidationErrors):
        argv.bectl_create("../zroot")
