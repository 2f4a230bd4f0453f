"""``bhype doctor``'s login checks (PAM service file, bHype groups) and the UEFI firmware check,
against real groups created for the test and real files."""

from __future__ import annotations

import grp

from bhype_core.builtins.doctor_access import check_groups, check_pam_service
from bhype_core.builtins.doctor_linux import check_ovmf
from bhype_core.drivers.qemu_argv import find_ovmf
from bhype_core.testing.users import LocalUsers, require_user_tools, unique_name


def test_groups_pass_only_when_both_roles_have_a_group():
    require_user_tools()
    with LocalUsers() as users:
        admins, operators = users.group(), users.group()
        missing = unique_name()
        assert check_groups([admins.name], [operators.name]).ok
        # One admin group of two is enough; the missing one is named anyway.
        assert check_groups([missing, admins.name], [operators.name]).ok
        lacking = check_groups([admins.name], [missing], platform="linux")
        assert not lacking.ok and missing in lacking.detail
        assert lacking.fix == f"groupadd {missing} && usermod -aG {missing} USER"
        freebsd = check_groups([missing], [operators.name], platform="freebsd")
        assert freebsd.fix == f"pw groupadd {missing} && pw groupmod {missing} -m USER"


def test_pam_service_file_is_found_or_named_with_its_fix():
    require_user_tools()
    with LocalUsers() as users:
        service = users.pam_service()  # bHype's shipped file under a unique name
        assert check_pam_service(service, "linux").ok
    gone = check_pam_service(service, "linux")  # removed with the kit's users
    assert not gone.ok and gone.optional  # PAM falls back to 'other': a warning
    assert f"/etc/pam.d/{service}" in gone.detail and "pam.d/bhype.linux" in gone.fix


def test_ovmf_check_wants_the_code_image_and_its_vars_template(tmp_path):
    code, vars_template = tmp_path / "OVMF_CODE_4M.fd", tmp_path / "OVMF_VARS_4M.fd"
    candidates = [(str(code), str(vars_template))]
    code.write_bytes(b"code")
    missing = check_ovmf(candidates)  # the code image alone cannot make a VM's NVRAM
    assert not missing.ok and missing.fix == "apt-get install ovmf" and str(vars_template) in missing.detail
    vars_template.write_bytes(b"vars")
    found = check_ovmf(candidates)
    assert found.ok and found.detail == f"{code} with {vars_template}"
    assert check_ovmf().ok == (find_ovmf() is not None)  # the default looks where QEMU's driver does


def test_groups_check_reads_the_account_database_not_a_guess():
    # A group every Linux host has passes as an operator group; a unique name never exists.
    root_group = grp.getgrgid(0).gr_name
    assert check_groups([root_group], [root_group]).ok
    assert not check_groups([unique_name()], [unique_name()]).ok
