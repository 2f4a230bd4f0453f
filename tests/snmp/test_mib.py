"""BHYPE-MIB: smilint (smitools) at level 4 finds nothing; net-snmp's snmptranslate resolves
every name the module defines to the OID bhype_snmp.oids sends; installing it writes a plain
file (never through a symlink) that net-snmp then loads."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from bhype_core.errors import ValidationErrors
from bhype_core.testing.parts import require_program
from bhype_snmp import oids
from bhype_snmp.mib import MIB_FILE, install

from .kit import mib_path, standard_mib_dirs

DEFINITION = re.compile(r"^(\w+)[ \t]+(?:OBJECT-TYPE|NOTIFICATION-TYPE|OBJECT IDENTIFIER|MODULE-IDENTITY|"
                        r"OBJECT-GROUP|NOTIFICATION-GROUP|MODULE-COMPLIANCE)\b", re.MULTILINE)


def defined_names() -> list[str]:
    return DEFINITION.findall(MIB_FILE.read_text())


def translate(*names: str, directories: str | None = None) -> list[str]:
    """``snmptranslate -M +DIRS -m BHYPE-MIB -On NAME…`` (snmptranslate(1)): one OID per name."""
    program = require_program("snmptranslate", "snmp")
    argv = [program, "-M", f"+{directories or mib_path()}", "-m", "BHYPE-MIB", "-On",
            *(f"BHYPE-MIB::{name}" for name in names)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "BHYPE-MIB" not in result.stderr, result.stderr  # no "Cannot find module (BHYPE-MIB)"
    return result.stdout.split()


def as_oid(numbers: tuple[int, ...]) -> str:
    return "." + ".".join(map(str, numbers))


def test_smilint_level_4_finds_nothing():
    program = require_program("smilint", "smitools")
    path = ":".join([str(MIB_FILE.parent), *standard_mib_dirs()])
    result = subprocess.run([program, "-l", "4", "-s", str(MIB_FILE)], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "SMIPATH": path})
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_snmptranslate_resolves_every_name_to_the_oid_bhype_sends():
    names = defined_names()
    assert len(names) > 40 and "bhypeVmTable" in names and "bhypeEvent" in names
    resolved = dict(zip(names, translate(*names), strict=True))
    assert resolved["bhypeMIB"] == as_oid(oids.ARC)  # the placeholder arc agrees on both sides
    assert resolved["bhypeEvent"] == as_oid(oids.EVENT_NOTIFICATION)
    assert resolved["bhypeTestNotification"] == as_oid(oids.TEST_NOTIFICATION)
    for name, oid in {**oids.EVENT_OBJECTS, **oids.HOST_OBJECTS}.items():
        assert resolved[name] == as_oid(oid), name
    for name, column in oids.VM_COLUMNS.items():
        assert resolved[name] == as_oid((*oids.VM_ENTRY, column)), name
    assert set(oids.EVENT_OBJECTS) | set(oids.HOST_OBJECTS) | set(oids.VM_COLUMNS) <= set(names)


def test_enumerations_match_what_bhype_sends():
    text = MIB_FILE.read_text()
    for name, value in oids.SEVERITY_VALUES.items():
        assert f"{name}({value})" in text
    for name, value in oids.VM_STATE_VALUES.items():
        assert f"{name}({value})" in text


def test_installed_mib_is_a_plain_file_net_snmp_loads(tmp_path):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("not a MIB\n")
    target_dir = tmp_path / "mibs"
    target_dir.mkdir()
    (target_dir / "BHYPE-MIB.txt").symlink_to(elsewhere)  # a planted link is replaced, not followed
    path = install(str(target_dir))
    assert not path.is_symlink() and path.read_text() == MIB_FILE.read_text()
    assert oct(path.stat().st_mode & 0o777) == "0o644" and elsewhere.read_text() == "not a MIB\n"
    directories = ":".join([str(target_dir), *standard_mib_dirs()])
    assert translate("bhypeVmState", directories=directories) == [as_oid((*oids.VM_ENTRY, 4))]


@pytest.mark.parametrize("directory", ["relative/mibs", "/nonexistent/bhype-mibs"])
def test_install_refuses_a_bad_directory(directory):
    with pytest.raises(ValidationErrors, match="not an absolute path to an existing directory"):
        install(directory)
