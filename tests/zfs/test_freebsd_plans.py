"""Disk checks and pool-init plans on FreeBSD, answered from recorded samples (fixtures/freebsd:
gpart(8) ``show -p``, fstyp(8), zdb(8) ``-l``, mount(8) ``-p``, swapctl(8) ``-l``,
zpool-list(8), zpool-import(8)). The same code runs against real OpenZFS on Linux in
test_guest_pool.py."""

from __future__ import annotations

import pytest

from bhype_core.errors import Conflict, ValidationErrors
from bhype_zfs.argv import Tools
from bhype_zfs.disks import check_disks, probe_disk
from bhype_zfs.pool_init import plan_init
from bhype_zfs.tool import ZfsHost

from .recorded import RecordedRunner

NOT_RECOGNIZED = (1, "", "fstyp: {}: filesystem not recognized\n")
NO_LABEL = (2, "@zdb_label_none.txt", "")


def disk(name: str, gpart: str | None, labels: dict[str, str] | None = None) -> dict:
    """Recorded answers for one FreeBSD disk: its table (or none) and a label per device."""
    answers = {
        ("test", "-e", f"/dev/{name}"): (0, "", ""),
        ("gpart", "show", "-p", name): (0, f"@{gpart}", "") if gpart else (1, "", f"gpart: No such geom: {name}.\n"),
        ("fstyp", f"/dev/{name}"): (NOT_RECOGNIZED[0], "", NOT_RECOGNIZED[2].format(f"/dev/{name}")),
        ("zdb", "-l", f"/dev/{name}"): NO_LABEL,
    }
    for device, label in (labels or {}).items():
        answers[("zdb", "-l", device)] = (0, f"@{label}", "") if label else NO_LABEL
    return answers


@pytest.fixture
def host() -> ZfsHost:
    answers = {
        ("zpool", "list", "-H", "-o", "name"): (0, "zroot\n", ""),
        ("mount", "-p"): (0, "@mount_p.txt", ""),
        ("swapctl", "-l"): (0, "@swapctl_l.txt", ""),
        ("test", "-e", "/dev/ada4"): (1, "", ""),
        **disk("ada0", "gpart_show_ada0.txt",
               {"/dev/ada0p1": "", "/dev/ada0p3": "", "/dev/ada0p4": "zdb_label_zroot.txt"}),
        **disk("ada1", "gpart_show_ada1.txt", {"/dev/ada1p1": "zdb_label_exported.txt"}),
        **disk("ada2", None),
        **disk("ada3", "gpart_show_ada3.txt", {"/dev/ada3p1": ""}),
        ("test", "-e", "/dev/ada3p1"): (0, "", ""),
        ("gpart", "show", "-p", "ada3p1"): (1, "", "gpart: No such geom: ada3p1.\n"),
        ("fstyp", "/dev/ada3p1"): (0, "ufs\n", ""),
        **disk("ada5", None),
        ("gpart", "show", "ada1"): (0, "@gpart_show_ada1.txt", ""),
        ("zpool", "import"): (0, "   pool: tank2\n     id: 4711\n  state: ONLINE\n", ""),
        ("zfs", "list", "-Hp", "-o", "name", "-t", "filesystem,volume", "-d", "1", "zroot/bhype"):
            (1, "", "cannot open 'zroot/bhype': dataset does not exist\n"),
    }
    return ZfsHost(RecordedRunner(answers), Tools(platform="freebsd"))


def reasons(host: ZfsHost, device: str) -> list[tuple[str, bool]]:
    return [(f.reason, f.forceable) for f in probe_disk(host, device).findings({"zroot"})]


def test_blank_disk_has_no_findings(host):
    assert reasons(host, "/dev/ada2") == []


def test_system_disk_is_refused_even_with_force(host):
    found = reasons(host, "/dev/ada0")
    assert ("/dev/ada0p3 is used for swap", False) in found
    assert ("/dev/ada0p4 belongs to imported pool 'zroot'", False) in found
    assert ("/dev/ada0 holds a GPT partition table (partitions: /dev/ada0p1, /dev/ada0p3, /dev/ada0p4)", True) in found
    assert check_disks(host, ["/dev/ada0"], force=True)["/dev/ada0"][0].forceable is False


def test_old_pool_disk_is_refused_unless_forced(host):
    assert reasons(host, "/dev/ada1") == [
        ("/dev/ada1p1 holds a ZFS label of pool 'oldpool' (state exported)", True),
        ("/dev/ada1 holds a GPT partition table (partitions: /dev/ada1p1)", True),
    ]
    assert check_disks(host, ["/dev/ada1"], force=True) == {}


def test_mounted_and_missing_disks(host):
    assert ("/dev/ada3p1 is mounted on /data", False) in reasons(host, "/dev/ada3")
    assert reasons(host, "/dev/ada4") == [("/dev/ada4 does not exist", False)]
    assert reasons(host, "/dev/ada3p1")[0] == ("/dev/ada3p1 is a partition; name whole disks", False)


def test_plan_for_blank_disks_partitions_then_creates(host):
    plan = plan_init(host, "tank", disks=["/dev/ada2", "/dev/ada5"], layout="mirror", owner_host="vmhost")
    commands = [step.argv for step in plan.steps]
    assert commands[:4] == [
        ["gpart", "create", "-s", "gpt", "ada2"],
        ["gpart", "add", "-t", "freebsd-zfs", "-a", "1m", "-l", "tank-0", "ada2"],
        ["gpart", "create", "-s", "gpt", "ada5"],
        ["gpart", "add", "-t", "freebsd-zfs", "-a", "1m", "-l", "tank-1", "ada5"],
    ]
    assert commands[4] == ["zpool", "create", "-o", "ashift=12", "-O", "compression=lz4", "-O", "atime=off",
                           "tank", "mirror", "gpt/tank-0", "gpt/tank-1"]
    assert commands[5][:8] == ["zfs", "create", "-p", "-o", "compression=lz4", "-o", "atime=off", "-o"]
    assert "org.bhype:role=root" in commands[5] and "org.bhype:host=vmhost" in commands[5]
    assert commands[5][-1] == "tank/bhype"
    assert commands[7] == ["zfs", "create", "-o", "recordsize=1M", "tank/bhype/isos"]
    assert [c[-1] for c in commands[6:]] == ["tank/bhype/vms", "tank/bhype/isos", "tank/bhype/templates"]
    assert plan.steps[4].undo == ["zpool", "destroy", "-f", "tank"]
    assert 'backend = "zfs"' in plan.settings and 'dataset = "tank/bhype"' in plan.settings
    assert 'mountpoint = "/tank/bhype"' in plan.settings  # zpool-create(8): the pool mounts at /<pool>
    assert not any(call[:2] in (["gpart", "create"], ["zpool", "create"]) for call in host.runner.calls), \
        "planning only looks"


def test_plan_refuses_used_disks_naming_each_reason(host):
    with pytest.raises(ValidationErrors) as caught:
        plan_init(host, "tank", disks=["/dev/ada2", "/dev/ada1", "/dev/ada3"], layout="raidz1")
    paths = [(e.path, e.message) for e in caught.value.errors]
    label = "/dev/ada1p1 holds a ZFS label of pool 'oldpool' (state exported) (use force to overwrite it)"
    assert ("disks.1", label) in paths
    assert ("disks.2", "/dev/ada3p1 is mounted on /data") in paths
    assert not any(path == "disks.0" for path, _ in paths)


def test_forced_plan_removes_the_old_table_first(host):
    plan = plan_init(host, "tank", disks=["/dev/ada1"], layout="single", force=True)
    assert [s.argv for s in plan.steps[:3]] == [
        ["gpart", "destroy", "-F", "ada1"],
        ["gpart", "create", "-s", "gpt", "ada1"],
        ["gpart", "add", "-t", "freebsd-zfs", "-a", "1m", "-l", "tank-0", "ada1"],
    ]
    assert plan.steps[3].argv[:3] == ["zpool", "create", "-f"]


def test_adopting(host):
    existing = plan_init(host, "zroot", adopt=True)
    assert existing.mode == "adopt" and existing.steps[0].argv[:3] == ["zfs", "create", "-p"]
    importable = plan_init(host, "tank2", adopt=True)
    assert importable.steps[0].argv == ["zpool", "import", "tank2"]
    assert importable.steps[0].undo == ["zpool", "export", "tank2"]
    # Its datasets cannot be listed before the import: create -p (no-op if present), never undone.
    later = importable.steps[1:]
    assert all(s.argv[:3] == ["zfs", "create", "-p"] and s.undo is None for s in later if s.argv[1] == "create")
    assert [s.argv[-1] for s in later] == ["tank2/bhype", "tank2/bhype", *(f"tank2/bhype/{n}" for n in
                                                                           ("vms", "isos", "templates"))]
    with pytest.raises(Conflict, match="neither imported nor importable"):
        plan_init(host, "nosuch", adopt=True)
    with pytest.raises(Conflict, match="already exists"):
        plan_init(host, "zroot", disks=["/dev/ada2"], layout="single")
