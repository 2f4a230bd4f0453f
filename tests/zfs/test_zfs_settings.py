"""The ``[zfs]`` section: defaults, valid values, and errors that name the key (and the file)."""

from __future__ import annotations

import pytest

from bhype_core.config import load_settings
from bhype_core.errors import ConfigError
from bhype_core.runtime import build_runtime
from bhype_zfs.settings import ZfsSettings


def test_no_section_gives_defaults(zfs_runtime):
    settings = zfs_runtime().settings.section("zfs")
    assert isinstance(settings, ZfsSettings)
    assert (settings.pool, settings.zfs_command, settings.zpool_command) == ("", "zfs", "zpool")


def test_valid_values_are_read(zfs_runtime):
    runtime = zfs_runtime(pool="tank-01.vm:a", zfs_command="/sbin/zfs", command_timeout=3)
    settings = runtime.settings.section("zfs")
    assert settings.pool == "tank-01.vm:a"
    assert settings.zfs_command == "/sbin/zfs"
    assert settings.command_timeout == 3.0


@pytest.mark.parametrize(
    ("values", "key", "why"),
    [
        ({"pool": "1tank"}, "zfs.pool", "begin with a letter"),
        ({"pool": "tank/vm"}, "zfs.pool", "begin with a letter"),  # a dataset, not a pool
        ({"pool": "my pool"}, "zfs.pool", "only letters"),
        ({"pool": "mirror2"}, "zfs.pool", "reserved"),
        ({"pool": "log"}, "zfs.pool", "reserved"),
        ({"pool": "c0t0d0"}, "zfs.pool", "reserved"),
        ({"command_timeout": 0}, "zfs.command_timeout", "greater than 0"),
        ({"zfs_command": ""}, "zfs.zfs_command", "at least 1 character"),
        ({"pol": "tank"}, "zfs.pol", "Extra inputs are not permitted"),
    ],
)
def test_invalid_values_name_the_key(zfs_runtime, values, key, why):
    with pytest.raises(ConfigError) as caught:
        zfs_runtime(**values)
    assert f"{key}:" in caught.value.message
    assert why in caught.value.message


def test_error_names_the_file(tmp_path, plugin_manager, register_plugin):
    import bhype_zfs.plugin

    register_plugin(bhype_zfs.plugin, "zfs")
    config = tmp_path / "bhype.toml"
    config.write_text(f'[core]\ndata_dir = "{tmp_path}"\n\n[zfs]\npool = "raidz"\n')
    with pytest.raises(ConfigError) as caught:
        build_runtime(load_settings(config, environ={}), plugin_manager)
    assert str(config) in caught.value.message
    assert "zfs.pool:" in caught.value.message
