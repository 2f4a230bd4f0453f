"""Parsers of the check tools' output against recorded samples in the documented shapes
(pkg-audit(8) -Rjson, freebsd-version(1), freebsd-update(8), pkg-upgrade(8); samples/checks/README.md)."""

from __future__ import annotations

import pytest

from bhype_hostops.audit_parse import CheckError, base_package, parse_pkg_audit
from bhype_hostops.update_parse import parse_fetch, parse_pkg_upgrade_dry_run, parse_updatesready

from .freebsd_tools import sample


def test_pkg_audit_none_and_several():
    assert parse_pkg_audit(0, sample("@audit_none.json"), "") == []
    curl, python = parse_pkg_audit(1, sample("@audit_several.json"), "")
    assert (curl.package, curl.version, curl.cves) == ("curl", "8.9.0", ["CVE-2024-00000"])
    assert curl.issues[0].vid == "0123abcd-0000-11ef-0000-000000000000"  # no key of its own: from the URL
    assert curl.issues[0].url.startswith("https://vuxml.FreeBSD.org/freebsd/")
    assert curl.reverse_dependencies == ("git",)
    assert python.cves == ["CVE-2024-00001", "CVE-2024-00002"] and len(python.issues) == 2
    assert python.issues[1].cves == ()  # an entry without <cvename>


def test_pkg_audit_exit_1_means_findings_or_error_and_the_json_decides():
    with pytest.raises(CheckError, match="cannot fetch vulnxml"):
        parse_pkg_audit(1, "", sample("@audit_error.stderr"))  # exit 1, no JSON: an error
    with pytest.raises(CheckError, match="no readable JSON"):
        parse_pkg_audit(1, sample("@audit_malformed.json"), "")
    with pytest.raises(CheckError, match="pkg_count"):
        parse_pkg_audit(0, '{"packages": {}}', "")
    with pytest.raises(CheckError, match="pkg_count is 3"):
        parse_pkg_audit(1, sample("@audit_several.json").replace('"pkg_count": 2', '"pkg_count": 3'), "")


def test_the_base_system_pseudo_package():
    # 405.pkg-base-audit: s,^,FreeBSD-,;s,-RELEASE-p,_,;s,-RELEASE$,,
    assert base_package(sample("@freebsd_version_u.txt")) == "FreeBSD-14.1_3"
    assert base_package("14.2-RELEASE") == "FreeBSD-14.2"
    assert base_package("14.1-RELEASE-p3", kernel=True) == "FreeBSD-kernel-14.1_3"
    assert base_package("15.0-STABLE") == "FreeBSD-15.0-STABLE"
    with pytest.raises(CheckError):
        base_package("garbage")
    [freebsd] = parse_pkg_audit(1, sample("@audit_base_userland.json"), "")
    assert (freebsd.package, freebsd.version) == ("FreeBSD", "14.1_3")


def test_freebsd_update_fetch_and_updatesready():
    staged = parse_fetch(0, sample("@fu_fetch_updates.txt"), "")
    assert staged is not None and staged.target == "14.1-RELEASE-p5"
    assert staged.files == ("/bin/freebsd-version", "/boot/kernel/kernel", "/lib/libc.so.7", "/usr/sbin/bhyve")
    one_line = "The following files will be updated as part of updating to 14.1-RELEASE-p5:\n/bin/ls\n"
    assert parse_fetch(0, one_line, "").target == "14.1-RELEASE-p5"
    assert parse_fetch(0, sample("@fu_fetch_none.txt"), "") is None
    with pytest.raises(CheckError, match="without a terminal"):
        parse_fetch(1, sample("@fu_fetch_no_tty.txt"), "")
    with pytest.raises(CheckError, match="pkgbase"):
        parse_fetch(1, "", sample("@fu_pkgbase.txt"))
    assert parse_updatesready(0, sample("@fu_ready.txt"), "") is True
    assert parse_updatesready(2, sample("@fu_not_ready.txt"), "") is False
    with pytest.raises(CheckError, match="pkgbase"):
        parse_updatesready(1, sample("@fu_pkgbase.txt"), "")
    with pytest.raises(CheckError):
        parse_updatesready(1, "You must be root to run this.\n", "")


def test_pkg_upgrade_dry_run_lines_not_exit_status():
    upgrades = parse_pkg_upgrade_dry_run(sample("@pkg_upgrade_pending.txt"))
    assert [(u.name, u.old, u.new, u.vulnerable) for u in upgrades] == [
        ("curl", "8.9.0", "8.11.1", True), ("python311", "3.11.9", "3.11.11", False),
        ("sudo", "1.9.15p5", "1.9.16p2", False)]
    assert parse_pkg_upgrade_dry_run(sample("@pkg_upgrade_none.txt")) == []
    tagged = parse_pkg_upgrade_dry_run(sample("@pkg_upgrade_pkgbase_all.txt"))
    assert [(u.name, u.repository) for u in tagged] == [
        ("FreeBSD-kernel-generic", "FreeBSD-base"), ("FreeBSD-runtime", "FreeBSD-base"), ("curl", "FreeBSD-ports")]
    with pytest.raises(CheckError):
        parse_pkg_upgrade_dry_run("pkg: No active remote repositories configured.\n")
