"""``bhype host init``: plans against recorded FreeBSD outputs, idempotence, a real Linux run.

Recorded outputs live in tests/core/samples/hostinit (README there names each man page).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from bhype_core.auth.pam import service_file_text
from bhype_core.host.runner import LocalRunner
from bhype_core.hostinit.host import asker, plan_host
from bhype_core.hostinit.layout import make_layout
from bhype_core.hostinit.parsers import parse_group_line, parse_stat_line, parse_user_line
from bhype_core.hostinit.plan import apply, count_changes, render
from bhype_core.testing.users import require_user_tools, unique_name

SAMPLES = Path(__file__).parent / "samples" / "hostinit"


def freebsd_layout():
    return make_layout(
        "freebsd", operators="bhype", admins="bhype-admin", service_user="bhype",
        data_dir=Path("/var/db/bhype"), run_dir=Path("/var/run/bhype"),
        pam_path=Path("/usr/local/etc/pam.d/bhype"), pam_text=service_file_text("freebsd"), root_group="wheel",
    )


class Recorded:
    """Answers each query from a recorded state; an unrecorded query fails the test."""

    def __init__(self, name: str) -> None:
        self.answers = {}
        for entry in json.loads((SAMPLES / name).read_text()):
            stdout = service_file_text("freebsd") if entry["stdout"] == "@pam" else entry["stdout"]
            self.answers[tuple(entry["argv"])] = SimpleNamespace(returncode=entry["returncode"], stdout=stdout)
        self.asked: list[tuple[str, ...]] = []

    def __call__(self, argv: list[str]):
        self.asked.append(tuple(argv))
        assert tuple(argv) in self.answers, f"query not recorded: {argv}"
        return self.answers[tuple(argv)]


class RecordingRunner:
    """Collects what an applier would run (the FreeBSD commands cannot run here)."""

    target = "local"

    def __init__(self) -> None:
        self.ran: list[tuple[list[str], str | None]] = []

    def run(self, argv, input=None, check=True, **kwargs):
        self.ran.append((list(argv), input))
        return SimpleNamespace(returncode=0, stdout="", stderr="")


def test_fresh_freebsd_host_plans_every_documented_change() -> None:
    steps = plan_host("freebsd", freebsd_layout(), Recorded("freebsd-fresh.json"))
    argvs = [list(argv) for step in steps for change in step.changes for argv in change.argvs]
    assert argvs == [
        ["sysrc", "kld_list+=vmm nmdm if_bridge if_tuntap"],
        ["kldload", "vmm"], ["kldload", "nmdm"], ["kldload", "if_bridge"],  # if_tuntap is in GENERIC
        ["sysrc", "-f", "/boot/loader.conf", "kern.racct.enable=1"],
        ["sysrc", "-f", "/etc/sysctl.conf", "net.link.tap.up_on_open=1"],
        ["sysctl", "net.link.tap.up_on_open=1"],
        ["pw", "groupadd", "bhype-api"], ["pw", "groupadd", "bhype"], ["pw", "groupadd", "bhype-admin"],
        ["pw", "useradd", "bhype", "-g", "bhype-api", "-G", "bhype", "-d", "/nonexistent",
         "-s", "/usr/sbin/nologin", "-c", "bHype API service"],
        ["install", "-d", "-o", "root", "-g", "bhype-api", "-m", "1770", "/var/db/bhype"],
        ["install", "-d", "-o", "root", "-g", "wheel", "-m", "755", "/var/run/bhype"],
        ["install", "-d", "-o", "root", "-g", "wheel", "-m", "750", "/var/log/bhype"],
        ["install", "-d", "-o", "root", "-g", "wheel", "-m", "755", "/usr/local/etc/bhype"],
        ["install", "-d", "-m", "755", "/usr/local/etc/pam.d"],
        ["tee", "/usr/local/etc/pam.d/bhype"],
        ["chmod", "0644", "/usr/local/etc/pam.d/bhype"],
    ]
    tunables = next(step for step in steps if step.name == "loader tunables and sysctls")
    assert tunables.problems == ("kern.racct.enable takes effect at the next boot (a loader tunable): reboot the host",)
    # every change names the manual page it follows
    assert all(change.manpage.endswith(")") for step in steps for change in step.changes)
    text = render(steps)
    assert "$ sysrc 'kld_list+=vmm nmdm if_bridge if_tuntap'" in text and "(sysrc(8))" in text


def test_applying_runs_each_argv_with_the_pam_text_on_stdin() -> None:
    steps = plan_host("freebsd", freebsd_layout(), Recorded("freebsd-fresh.json"))
    runner, lines = RecordingRunner(), []
    outcome = apply(runner, steps, echo=lines.append)
    assert not outcome.failed and len(outcome.applied) == count_changes(steps) == 16
    assert (["tee", "/usr/local/etc/pam.d/bhype"], service_file_text("freebsd")) in runner.ran
    assert lines[0] == "changed: kernel modules: add vmm nmdm if_bridge if_tuntap to kld_list in rc.conf"


def test_already_initialised_host_plans_nothing_and_applies_nothing() -> None:
    recorded = Recorded("freebsd-done.json")
    steps = plan_host("freebsd", freebsd_layout(), recorded)
    assert count_changes(steps) == 0 and all(step.done for step in steps), render(steps)
    runner = RecordingRunner()
    assert apply(runner, steps).applied == [] and runner.ran == []
    # every recorded query was asked: the "done" state is the whole state host init reads
    assert set(recorded.asked) == set(recorded.answers)


def test_partial_state_plans_only_the_difference() -> None:
    recorded = Recorded("freebsd-done.json")
    recorded.answers[("pw", "groupshow", "bhype")] = SimpleNamespace(returncode=0, stdout="bhype:*:1002:alice\n")
    recorded.answers[("stat", "-f", "%Su %Sg %Mp%Lp", "/var/db/bhype")] = SimpleNamespace(
        returncode=0, stdout="root bhype-api 0750\n")
    recorded.answers[("sysrc", "-n", "kld_list")] = SimpleNamespace(returncode=0, stdout="vmm nmdm\n")
    steps = plan_host("freebsd", freebsd_layout(), recorded)
    summaries = [change.summary for step in steps for change in step.changes]
    assert summaries == [
        "add if_bridge if_tuntap to kld_list in rc.conf",
        "add bhype to group bhype (the auth socket's group)",
        "set /var/db/bhype to root:bhype-api 1770 (is root:bhype-api 0750)",
    ]


def test_parsers_read_the_documented_formats() -> None:
    assert parse_group_line("bhype:*:1002:bhype,alice\n").members == ("bhype", "alice")
    assert parse_group_line("pw: unknown group `x'\n") is None
    user = parse_user_line("bhype:*:1001:1001::0:0:bHype API service:/nonexistent:/usr/sbin/nologin\n")
    assert (user.uid, user.gid, user.shell) == (1001, 1001, "/usr/sbin/nologin")
    assert parse_user_line("bhype:x:999:998:bHype API service:/nonexistent:/usr/sbin/nologin\n").gid == 998
    assert parse_stat_line("root bhype-api 1770\n").mode == 0o1770
    assert parse_stat_line("garbage") is None


def test_linux_plan_says_which_steps_do_not_apply() -> None:
    layout = make_layout("linux", operators="bhype", admins="bhype-admin", service_user="bhype",
                         data_dir=Path("/nonexistent-bhype-data"), run_dir=Path("/nonexistent-bhype-run"),
                         pam_path=Path("/nonexistent-pam/bhype"), pam_text="x", root_group="root")
    steps = plan_host("linux", layout, lambda argv: SimpleNamespace(returncode=2, stdout=""))
    modules = steps[0]
    assert modules.done and "not applicable on Linux" in modules.notes[0]
    assert ["groupadd", "--system", "bhype-api"] in [list(a) for c in steps[2].changes for a in c.argvs]


@pytest.fixture
def kit_names():
    """Fresh bht_ names for the groups and the service user; removed afterwards."""
    require_user_tools()
    names = SimpleNamespace(operators=unique_name(), admins=unique_name(), user=unique_name(),
                            service=unique_name())
    yield names
    subprocess.run(["userdel", names.user], capture_output=True)
    for group in (names.service, names.operators, names.admins):
        subprocess.run(["groupdel", group], capture_output=True)


def test_linux_real_run_creates_accounts_dirs_pam_and_a_second_run_changes_nothing(tmp_path, kit_names) -> None:
    import grp
    import pwd

    layout = make_layout(
        "linux", operators=kit_names.operators, admins=kit_names.admins, service_user=kit_names.user,
        service_group=kit_names.service, data_dir=tmp_path / "data", run_dir=tmp_path / "run",
        log_dir=tmp_path / "log", pam_path=tmp_path / "pam.d" / "bhype", pam_text=service_file_text("linux"),
        root_group="root",
    )
    runner = LocalRunner(default_timeout=30.0)
    steps = plan_host("linux", layout, asker(runner))
    assert count_changes(steps) == 4 + 3 + 1  # 3 groups + user, 3 directories, the PAM file
    outcome = apply(runner, steps, echo=lambda line: None)
    assert not outcome.failed, outcome.failed

    account = pwd.getpwnam(kit_names.user)
    assert grp.getgrgid(account.pw_gid).gr_name == kit_names.service
    assert kit_names.user in grp.getgrnam(kit_names.operators).gr_mem
    info = os.stat(tmp_path / "data")
    assert stat.S_IMODE(info.st_mode) == 0o1770 and info.st_gid == grp.getgrnam(kit_names.service).gr_gid
    assert (tmp_path / "pam.d" / "bhype").read_text() == service_file_text("linux")

    again = plan_host("linux", layout, asker(runner))
    assert count_changes(again) == 0, render(again)

    # drift is found and only it is repaired
    os.chmod(tmp_path / "data", 0o755)
    subprocess.run(["gpasswd", "-d", kit_names.user, kit_names.operators], check=True, capture_output=True)
    drift = plan_host("linux", layout, asker(runner))
    assert [c.summary for s in drift for c in s.changes] == [
        f"add {kit_names.user} to group {kit_names.operators} (the auth socket's group)",
        f"set {tmp_path / 'data'} to root:{kit_names.service} 1770 (is root:{kit_names.service} 0755)",
    ]
    apply(runner, drift, echo=lambda line: None)
    assert count_changes(plan_host("linux", layout, asker(runner))) == 0


def test_doctor_host_init_check_reuses_the_planners(bhype_settings, tmp_path) -> None:
    """The doctor check names what host init would change (warnings: a development checkout
    runs without host init), and the count matches ``bhype host init``'s own plan."""
    from bhype_core.builtins.doctor import doctor_runner
    from bhype_core.builtins.doctor_hostinit import run_host_init
    from bhype_core.host.platform import detect_platform
    from bhype_core.hostinit.host import plan_from_settings

    results = run_host_init(bhype_settings)
    steps = plan_from_settings(bhype_settings, detect_platform(bhype_settings.core.platform),
                               doctor_runner(bhype_settings), check_database=False)
    summary = results[-1]
    total = count_changes(steps)
    assert summary.name == "host init" and summary.optional
    assert summary.detail == (f"host init would change {total} thing(s)" if total else "host init would change nothing")
    for step, result in zip(steps, results[:-1], strict=True):
        assert result.name == f"host init: {step.name}" and result.ok == step.done
        for change in step.changes:
            assert change.summary in result.detail


def test_cli_host_init_shows_the_plan_and_applies_nothing_without_yes(tmp_path, capsys) -> None:
    """``bhype host init`` and ``--dry-run`` print the plan and change nothing; ``--json`` is
    the same plan as data. (Applying is proven above on kit-named accounts: the command itself
    would create the real ``bhype`` groups on this machine.)"""
    from bhype_core.cli import main

    config = tmp_path / "bhype.toml"
    config.write_text(f'[core]\ndata_dir = "{tmp_path / "data"}"\n[auth]\napi_user = "{unique_name()}"\n'
                      f'operator_groups = ["{unique_name()}"]\nadmin_groups = ["{unique_name()}"]\n'
                      f'pam_service = "{unique_name("bht-")}"\n'
                      f'privileged_socket = "{tmp_path / "run" / "auth.sock"}"\n')
    assert main(["--config", str(config), "host", "init"]) == 0
    out = capsys.readouterr().out
    assert f"create {tmp_path / 'data'}" in out and "run again with --yes to apply this plan" in out
    assert not (tmp_path / "data").exists()
    assert main(["--config", str(config), "host", "init", "--dry-run"]) == 0
    assert "--yes" not in capsys.readouterr().out.splitlines()[-1]
    assert main(["--config", str(config), "host", "init", "--json", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["changes"] == sum(len(step["changes"]) for step in plan["steps"]) > 0
    assert not (tmp_path / "data").exists() and not (tmp_path / "run").exists()


def test_cli_host_init_refuses_to_apply_unless_root(tmp_path, capsys, monkeypatch) -> None:
    from bhype_core.cli import main

    config = tmp_path / "bhype.toml"
    config.write_text(f'[core]\ndata_dir = "{tmp_path / "data"}"\n[auth]\napi_user = "{unique_name()}"\n'
                      f'pam_service = "{unique_name("bht-")}"\n')
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert main(["--config", str(config), "host", "init", "--yes"]) == 1
    assert "bhype host init changes groups, accounts and system files: run it as root" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_database_step_embedded_is_a_note(bhype_settings) -> None:
    from bhype_core.hostinit.database import plan_database

    step = plan_database(bhype_settings)
    assert step.done and "embedded SQLite" in step.notes[0]


def test_database_step_checks_real_mariadb_and_redis(bhype_settings, mariadb_url, redis_url) -> None:
    from bhype_core.hostinit.database import plan_database

    core = bhype_settings.core.model_copy(update={"database_url": mariadb_url, "redis_url": redis_url})
    settings = SimpleNamespace(core=core)
    step = plan_database(settings, pending=lambda: ["core_0001"])
    assert not step.problems, step.problems
    assert step.notes[0].startswith("server ") and step.notes[1].startswith("Redis answers at")
    assert [list(a)[1:] for c in step.changes for a in c.argvs] == [["db", "upgrade"]]
    assert step.changes[0].summary == "apply 1 database migration(s) (core_0001)"


def test_database_step_names_an_unreachable_server(bhype_settings) -> None:
    from bhype_core.hostinit.database import plan_database
    from bhype_core.testing.ports import free_port

    port = free_port()  # nothing listens there
    core = bhype_settings.core.model_copy(update={
        "database_url": f"mysql+pymysql://root@127.0.0.1:{port}/bhype", "redis_url": f"redis://127.0.0.1:{port}/0"})
    step = plan_database(SimpleNamespace(core=core), pending=lambda: pytest.fail("not asked when unreachable"))
    assert len(step.problems) == 2 and not step.changes
    assert f"127.0.0.1:{port}" in step.problems[0] and step.problems[1].startswith(f"Redis at 127.0.0.1:{port}: ")
