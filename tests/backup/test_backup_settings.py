"""The ``[backup]`` section: targets of every rsync kind, and errors that name the key."""

from __future__ import annotations

import pytest

from bhype_backup.settings import destination_kind
from bhype_core.errors import ConfigError

TARGETS = [
    {"name": "nas", "destination": "backup@nas.example.net:/srv/bhype", "keep": 14},
    {"name": "vault", "destination": "rsync://vault.example.net/bhype/vms"},
    {"name": "vault2", "destination": "vault.example.net::bhype/vms"},
    {"name": "usb", "destination": "/mnt/usb/bhype"},
]


def test_no_section_gives_no_targets(backup_runtime):
    settings = backup_runtime().settings.section("backup")
    assert settings.targets == [] and settings.rsync_command == "rsync"


def test_targets_are_read_and_classified(backup_runtime):
    settings = backup_runtime(targets=TARGETS).settings.section("backup")
    assert [(t.name, t.kind, t.keep) for t in settings.targets] == [
        ("nas", "ssh", 14),
        ("vault", "daemon", 7),
        ("vault2", "daemon", 7),
        ("usb", "local", 7),
    ]


@pytest.mark.parametrize(
    ("targets", "key", "why"),
    [
        ([{"name": "a", "destination": "relative/dir"}], "backup.targets.0.destination", "absolute path"),
        ([{"name": "a", "destination": "nas:"}], "backup.targets.0.destination", "needs a path"),
        ([{"name": "a", "destination": "@:/x"}], "backup.targets.0.destination", "needs a host"),
        ([{"name": "a", "destination": "rsync:///module"}], "backup.targets.0.destination", "needs a host"),
        ([{"name": "a"}], "backup.targets.0.destination", "Field required"),
        ([{"name": "a", "destination": "/x"}, {"name": "Bad Name", "destination": "/y"}],
         "backup.targets.1.name", "lower-case letter"),
        ([{"name": "a", "destination": "/x", "keep": 0}], "backup.targets.0.keep", "greater than or equal"),
        ([{"name": "a", "destination": "/x", "path": "/y"}], "backup.targets.0.path", "Extra inputs"),
        ([{"name": "a", "destination": "/x"}, {"name": "a", "destination": "/y"}],
         "backup.targets", "used twice"),
    ],
)
def test_invalid_targets_name_the_key(backup_runtime, targets, key, why):
    with pytest.raises(ConfigError) as caught:
        backup_runtime(targets=targets)
    assert f"{key}:" in caught.value.message
    assert why in caught.value.message


def test_invalid_timeout_names_the_key(backup_runtime):
    with pytest.raises(ConfigError, match=r"backup\.command_timeout:"):
        backup_runtime(command_timeout=-1)


def test_destination_kind_follows_rsync_usage():
    # rsync(1) USAGE: a single colon before any slash means a remote shell; '::' or rsync:// a daemon.
    assert destination_kind("/a:b/c") == "local"
    assert destination_kind("host:dir/sub") == "ssh"
    assert destination_kind("user@host::module") == "daemon"
