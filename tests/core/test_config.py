"""Configuration: TOML file, environment overrides, errors that name the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from bhype_core.config import Section, apply_environment, load_settings, parse_env_value
from bhype_core.errors import ConfigError
from bhype_core.registry import SettingsSection


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_no_file_at_all_gives_the_embedded_default(tmp_path):
    settings = load_settings(environ={"XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "d")})
    assert settings.source is None
    assert settings.core.data_dir == tmp_path / "d" / "bhype"
    assert settings.core.effective_database_url == f"sqlite:///{tmp_path / 'd' / 'bhype' / 'bhype.sqlite3'}"
    assert settings.queue.backend == "auto"
    assert settings.api.port == 8080


def test_file_values_are_read(tmp_path):
    file = write(tmp_path / "b.toml", '[api]\nport = 9000\n[core]\nredis_url = "redis://127.0.0.1:6379/3"\n')
    settings = load_settings(file, environ={})
    assert settings.api.port == 9000
    assert settings.core.redis_url.endswith("/3")
    assert settings.source == file


def test_bhype_config_variable_names_the_file(tmp_path):
    file = write(tmp_path / "x.toml", "[api]\nport = 9001\n")
    assert load_settings(environ={"BHYPE_CONFIG": str(file)}).api.port == 9001


def test_environment_overrides_the_file(tmp_path):
    file = write(tmp_path / "b.toml", "[api]\nport = 9000\n")
    settings = load_settings(file, environ={"BHYPE_API__PORT": "9100", "BHYPE_DISABLED_PLUGINS": "snmp, zfs"})
    assert settings.api.port == 9100
    assert settings.core.disabled_plugins == ["snmp", "zfs"]


def test_invalid_value_names_key_and_file(tmp_path):
    file = write(tmp_path / "b.toml", "[api]\nport = 70000\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(file, environ={})
    assert str(file) in caught.value.message and "api.port" in caught.value.message


def test_unknown_core_key_is_an_error(tmp_path):
    file = write(tmp_path / "b.toml", "[core]\ndatabse_url = 'sqlite://'\n")
    with pytest.raises(ConfigError, match="core.databse_url"):
        load_settings(file, environ={})


def test_broken_toml_and_missing_explicit_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path / "b.toml", "[api\n"), environ={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml", environ={})


class ExampleSection(Section):
    pool: str = "tank"
    keep: int = Field(24, ge=0)


def test_plugin_sections_are_validated_with_key_and_file(tmp_path):
    file = write(tmp_path / "b.toml", "[example]\nkeep = -1\n[leftover]\nx = 1\n")
    settings = load_settings(file, environ={})
    with pytest.raises(ConfigError) as caught:
        settings.add_plugin_sections([SettingsSection("example", ExampleSection)])
    assert "example.keep" in caught.value.message and str(file) in caught.value.message

    good = load_settings(write(tmp_path / "g.toml", "[example]\npool = 'data'\n[leftover]\n"), environ={})
    good.add_plugin_sections([SettingsSection("example", ExampleSection)])
    assert good.section("example").pool == "data" and good.section("example").keep == 24
    assert good.unknown_sections() == ["leftover"]
    assert good.to_dict()["example"] == {"pool": "data", "keep": 24}
    with pytest.raises(ConfigError, match=r"\[nope\]"):
        good.section("nope")


def test_plugins_may_not_take_core_sections(tmp_path):
    settings = load_settings(environ={"XDG_CONFIG_HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="core section"):
        settings.add_plugin_sections([SettingsSection("api", ExampleSection)])


def test_environment_values_parse_as_toml():
    assert parse_env_value("8081") == 8081
    assert parse_env_value("true") is True
    assert parse_env_value('["a", "b"]') == ["a", "b"]
    assert parse_env_value("redis://h:1/0") == "redis://h:1/0"
    merged = apply_environment({"core": {"log_level": "info"}}, {"BHYPE_CORE__LOG_LEVEL": "debug", "OTHER": "x"})
    assert merged == {"core": {"log_level": "debug"}}


def test_auth_settings_import_without_the_config_module() -> None:
    """The ``[auth]`` section imports :class:`Section` from its own module, so neither
    ``config`` nor ``auth.settings`` needs the other half-imported (issue 12: the import-time
    cycle). A fresh interpreter proves it: importing ``auth.settings`` must not load ``config``."""
    import subprocess
    import sys

    code = (
        "import sys, bhype_core.auth.settings\n"
        "assert 'bhype_core.config' not in sys.modules, 'auth.settings pulled in bhype_core.config'\n"
        "import bhype_core.config as config\n"
        "assert config.Section is bhype_core.auth.settings.Section\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_trusted_proxies_default_off_and_validated(tmp_path) -> None:
    from bhype_core.commands.serve import proxy_options

    assert load_settings(write(tmp_path / "a.toml", "")).api.trusted_proxies == []
    assert proxy_options([]) == {"proxy_headers": False}
    settings = load_settings(write(tmp_path / "b.toml", '[api]\ntrusted_proxies = ["127.0.0.1", "10.0.0.0/8"]\n'))
    assert proxy_options(settings.api.trusted_proxies) == {
        "proxy_headers": True, "forwarded_allow_ips": ["127.0.0.1", "10.0.0.0/8"]}
    with pytest.raises(ConfigError, match="trusted_proxies"):
        load_settings(write(tmp_path / "c.toml", '[api]\ntrusted_proxies = ["*"]\n'))
