"""The ``bhype`` console script, run for real in a subprocess with a temporary configuration."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bhype_core import __version__
from bhype_core.builtins.doctor_parsers import parse_qemu_version
from bhype_core.cli import build_parser, main, one_line
from bhype_core.config import load_settings
from bhype_core.errors import PluginError
from bhype_core.hookspecs import hookimpl
from bhype_core.host.platform import detect_platform
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import CliCommand
from bhype_core.runtime import build_runtime

BHYPE = Path(sys.executable).parent / "bhype"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "bhype.toml"
    path.write_text(
        f'[core]\ndata_dir = "{tmp_path / "data"}"\n\n[api]\nport = 8181\n\n[nonsense]\nanswer = 42\n'
    )
    return path


def bhype(*args: str, config: Path | None, env: dict[str, str] | None = None, timeout: float = 120):
    """Run the installed console script; HOME points at the test's directory so no real
    configuration or data directory is touched."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("BHYPE_")}
    home = (config.parent if config else Path.cwd()) / "home"
    base.update(HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"), XDG_DATA_HOME=str(home / ".local"))
    base.update(env or {})
    argv = [str(BHYPE), *(["--config", str(config)] if config else []), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=base, timeout=timeout)


def run_main(capsys, *args: str) -> tuple[int, str, str]:
    """``bhype`` in this process (cheaper than a subprocess, same code path after start-up)."""
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_plugins_table_lists_every_installed_plugin(config):
    result = bhype("plugins", config=config)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["name", "distribution", "version", "status", "reason", "hooks"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    expected = make_plugin_manager(load_entrypoints=True).infos()
    assert set(rows) == {info.name for info in expected}
    doctor = rows["core_doctor"]
    assert doctor[1:4] == ["bhype-core", __version__, "active"]
    assert "register_doctor_checks" in doctor[-1]


def test_plugins_json_matches_the_plugin_manager(config):
    result = bhype("plugins", "--json", config=config)
    assert result.returncode == 0, result.stderr
    expected = [info.to_dict() for info in make_plugin_manager(load_entrypoints=True).infos()]
    assert json.loads(result.stdout) == expected


def test_disabled_plugin_is_shown_blocked(config, monkeypatch, capsys):
    monkeypatch.setenv("BHYPE_DISABLED_PLUGINS", "core_doctor")
    status, out, _ = run_main(capsys, "--config", str(config), "plugins", "--json")
    assert status == 0
    plugins = {p["name"]: p for p in json.loads(out)}
    assert plugins["core_doctor"]["status"] == "blocked"
    assert plugins["core_doctor"]["reason"] == "disabled by configuration"


def test_config_show_text_and_json(config, capsys):
    text = bhype("config", "show", config=config)
    assert text.returncode == 0, text.stderr
    assert f"# source: {config}" in text.stdout
    assert "# unknown sections (ignored): nonsense" in text.stdout
    assert "[api]\nhost = \"127.0.0.1\"\nport = 8181" in text.stdout

    shown = json.loads(run_main(capsys, "--config", str(config), "config", "show", "--json")[1])
    assert shown["source"] == str(config)
    assert shown["unknown_sections"] == ["nonsense"]
    assert shown["sections"]["api"]["port"] == 8181
    assert shown["sections"]["core"]["data_dir"] == str(config.parent / "data")
    # The same effective settings the library computes (plugin sections included).
    assert shown["sections"].keys() == build_runtime(load_settings(config)).settings.to_dict().keys()


def test_config_show_masks_passwords(config, monkeypatch, capsys):
    monkeypatch.setenv("BHYPE_CORE__DATABASE_URL", "mysql+pymysql://bhype:hunter2secret@127.0.0.1:3306/bhype")
    _, out, _ = run_main(capsys, "--config", str(config), "config", "show", "--json")
    assert "hunter2secret" not in out
    assert json.loads(out)["sections"]["core"]["database_url"] == (
        "mysql+pymysql://bhype:***@127.0.0.1:3306/bhype"
    )


def test_db_upgrade_applies_then_is_a_no_op(config, capsys):
    from bhype_core.db.migrate import pending

    expected = pending(build_runtime(load_settings(config)))
    assert expected, "the core has migrations to apply on an empty database"
    first = bhype("db", "upgrade", config=config)
    assert first.returncode == 0, first.stderr
    assert [line.split()[1] for line in first.stdout.splitlines() if line.startswith("applied ")] == expected
    assert (config.parent / "data" / "bhype.sqlite3").is_file()
    status, out, _ = run_main(capsys, "--config", str(config), "db", "upgrade")
    assert status == 0 and "(0 migration(s) applied)" in out
    assert pending(build_runtime(load_settings(config))) == []


def test_bad_config_is_one_line_naming_key_and_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[api]\nport = 99999\n")
    result = bhype("plugins", config=path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"bhype: error: {path}: api.port: Input should be less than or equal to 65535"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[queue]\nworkers = \"many\"\n", "queue.workers"),
        ("[core]\nplatfrom = \"linux\"\n", "core.platfrom"),
        ("[api\nport = 1\n", "not valid TOML"),
    ],
)
def test_config_errors_name_key_and_file(tmp_path, capsys, content, expected):
    path = tmp_path / "broken.toml"
    path.write_text(content)
    status, out, err = run_main(capsys, "--config", str(path), "config", "show")
    assert status == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"bhype: error: {path}: ") and expected in lines[0]


def test_missing_config_file_is_an_error(tmp_path, capsys):
    missing = tmp_path / "nope.toml"
    status, _, err = run_main(capsys, "--config", str(missing), "plugins")
    assert status == 1
    assert err.strip() == f"bhype: error: {missing}: configuration file not found"


def test_unknown_command_is_a_usage_error(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", str(config), "frobnicate"])
    assert exit_info.value.code == 2 and "invalid choice: 'frobnicate'" in capsys.readouterr().err


@pytest.mark.slow
def test_doctor_json(config):
    result = bhype("doctor", "--json", config=config)
    report = json.loads(result.stdout)
    assert report["platform"] == detect_platform()
    required_failed = [c for c in report["checks"] if not c["ok"] and not c["optional"]]
    assert report["ok"] is (not required_failed)
    assert result.returncode == (1 if required_failed else 0)
    for check in report["checks"]:
        assert check["plugin"] and check["name"] and check["detail"]
        assert check["ok"] or check["fix"], f"a failed check must say how to fix it: {check}"
    by_name = {c["name"]: c for c in report["checks"]}
    data_dir = by_name["data directory"]
    assert data_dir["ok"] is True and str(config.parent / "data") in data_dir["detail"]
    if report["platform"] == "linux":
        real = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True)
        assert by_name["QEMU"]["detail"] == f"qemu-system-x86_64 {parse_qemu_version(real.stdout)}"
        assert "KVM acceleration" in by_name and by_name["KVM acceleration"]["optional"] is True


# In-process: plugin CLI commands join the parser and receive the runtime.


class GreeterPlugin:
    @hookimpl
    def bhype_register_cli_commands(self, register):
        def configure(parser):
            parser.add_argument("--name", required=True)

        def run(args):
            print(f"hello {args.name} from {args.runtime.settings.core.data_dir}")
            return 3

        register(CliCommand(name="greet", help="say hello", configure=configure, run=run))


class ClashingPlugin:
    @hookimpl
    def bhype_register_cli_commands(self, register):
        register(CliCommand(name="serve", help="mine", configure=lambda parser: None, run=lambda args: 0))


def test_plugin_command_runs_with_the_runtime(register_plugin, bhype_runtime_factory, capsys):
    register_plugin(GreeterPlugin(), "greeter")
    runtime = bhype_runtime_factory()
    args = build_parser(runtime).parse_args(["greet", "--name", "ann"])
    args.runtime = runtime
    assert args.handler(args) == 3
    assert capsys.readouterr().out.strip() == f"hello ann from {runtime.settings.core.data_dir}"


def test_plugin_command_clashing_with_core_is_named(register_plugin, bhype_runtime_factory):
    register_plugin(ClashingPlugin(), "clasher")
    with pytest.raises(PluginError, match="plugin 'clasher' registers CLI command 'serve'"):
        build_parser(bhype_runtime_factory())


@pytest.fixture
def bhype_runtime_factory(bhype_settings, plugin_manager):
    return lambda: build_runtime(bhype_settings, plugin_manager)


def test_one_line_joins_multi_line_messages():
    assert one_line("command zfs exited 1: first\n  second\n\n") == "command zfs exited 1: first | second"


def test_a_command_keeps_bhypes_log_off_the_terminal(config, tmp_path):
    # A KVM probe that hangs (as nested KVM does here) is a warning in the log, and doctor's
    # answer already says so: the audit line must not land on stderr as well.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for program in ("qemu-system-x86_64", "qemu-img"):
        script = bin_dir / program
        script.write_text(
            "#!/bin/sh\n"
            'case "$*" in\n'
            '  --version) echo "QEMU emulator version 7.2.22" ;;\n'
            '  *"-accel kvm"*) exec sleep 60 ;;\n'
            "esac\n"
        )
        script.chmod(0o755)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = bhype("doctor", config=config, env=env)
    assert "KVM probe guest did not finish" in result.stdout, result.stdout
    assert "host command" not in result.stderr and result.stderr.strip() == "", result.stderr


def test_api_subcommand_gives_json_connection_options_and_the_handler():
    import argparse

    from bhype_core.plugin_api import api_subcommand

    parser = argparse.ArgumentParser(prog="bhype acme")
    sub = parser.add_subparsers(dest="acme_command", required=True)
    calls: list[argparse.Namespace] = []
    listing = api_subcommand(sub, "list", calls.append, "list things", key="acme_handler")
    listing.add_argument("--all", action="store_true")
    quiet = api_subcommand(sub, "ping", calls.append, "no JSON here", key="acme_handler", json_out=False)
    args = parser.parse_args(["list", "--json", "--all", "--url", "http://h:1", "--token", "t"])
    assert (args.json, args.all, args.url, args.token) == (True, True, "http://h:1", "t")
    args.acme_handler(args)
    assert calls == [args]
    assert "--json" not in quiet.format_help() and "--token" in quiet.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["ping", "--json"])
