"""Pure parts: destination parsing and the safe-name alphabet of Windows targets."""

from __future__ import annotations

import pytest

from bhype_backup.destinations import parse_destination
from bhype_backup.layout import is_safe, safe_name
from bhype_core.plugin_api import ValidationErrors


@pytest.mark.parametrize("text, kind, host, port, user, path", [
    ("/mnt/backups/", "local", "", None, None, "/mnt/backups"),
    ("rsync://bk@nas.example:8730/vms/bhype", "daemon", "nas.example", 8730, "bk", "vms/bhype"),
    ("rsync://nas/vms", "daemon", "nas", None, None, "vms"),
    ("ssh://bk@10.0.0.2:2222/srv/bk", "ssh", "10.0.0.2", 2222, "bk", "/srv/bk"),
    ("bk@far.example:/srv/bk", "ssh", "far.example", None, "bk", "/srv/bk"),
    ("zfs://root@[::1]:22/tank/bk", "zfs", "::1", 22, "root", "tank/bk"),
])
def test_destinations(text, kind, host, port, user, path):
    found = parse_destination(text)
    assert (found.kind, found.host, found.port, found.user, found.path) == (kind, host, port, user, path)
    assert parse_destination(found.display()) == found


@pytest.mark.parametrize("text, message", [
    ("", "must not be empty"), ("relative", "use /path"), ("rsync://u:secret@h/m", "never put a password"),
    ("rsync://h/m/../x", "not allowed"), ("ssh://h:99999/x", "port"), ("zfs://h/tank/bad name", "dataset"),
    ("rsync:///m", "host"), ("/a/;rm -rf", "not allowed"),
])
def test_bad_destinations(text, message):
    with pytest.raises(ValidationErrors, match=message):
        parse_destination(text)


def test_safe_names_are_valid_on_ntfs_and_unique_without_case():
    taken: set[str] = set()
    names = [safe_name(original, taken) for original in
             ["disk0.img", "Data.img", "data.img", "Seed:1?.ISO", "CON.img", "trailing. ", "OVMF_VARS.fd", "..."]]
    assert names[0] == "disk0.img" and names[1] == "data.img" and names[6] == "ovmf_vars.fd"
    assert len({n.lower() for n in names}) == len(names)
    assert all(is_safe(n) for n in names)
    assert not any(c in n for n in names for c in ':*?"<>|\\ ')
    assert names[4].split(".")[0] != "con" and not names[5].endswith((".", " "))
