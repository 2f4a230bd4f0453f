"""VM spec validation, size units and MAC generation (bhype_core.spec, bhype_core.units)."""

from __future__ import annotations

import random
import uuid

import pytest

from bhype_core.errors import Conflict, ValidationErrors
from bhype_core.spec import (
    MAX_INSTANCE_NAME,
    SpecContext,
    VMSpec,
    generate_mac,
    instance_name,
    normalize_mac,
    validate_spec,
)
from bhype_core.units import GIB, MIB, format_size, human_size, parse_size


def paths(exc: ValidationErrors) -> dict[str, str]:
    return {e.path: e.message for e in exc.errors}


def invalid(data: dict, context: SpecContext | None = None) -> dict[str, str]:
    with pytest.raises(ValidationErrors) as info:
        validate_spec(data, context)
    return paths(info.value)


class SequenceRng(random.Random):
    """Deterministic stand-in for random.Random: randint returns the given values in turn."""

    def __init__(self, values: list[int]) -> None:
        super().__init__(0)
        self.values = list(values)

    def randint(self, a: int, b: int) -> int:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


# --- units ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2G", 2 * GIB),
        ("512M", 512 * MIB),
        ("512m", 512 * MIB),
        (" 1.5G ", 1536 * MIB),
        ("100MiB", 100 * MIB),
        ("4KB", 4096),
        ("4096B", 4096),
        ("1T", 1 << 40),
        ("1024", 1024 * MIB),  # bhyve(8) -m: "If no suffix is given, the value is assumed to be in megabytes"
        (2048, 2048 * MIB),
    ],
)
def test_parse_size_accepts_units(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "G", "-1G", "2X", "1.5B", "1,5G", True, 1.5, None, -3])
def test_parse_size_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_parse_size_default_unit_is_a_parameter():
    assert parse_size(3, default_unit="G") == 3 * GIB
    assert parse_size("3", default_unit="B") == 3


@pytest.mark.parametrize("size", [0, 1, 1000, 4096, 512 * MIB, 1536 * MIB, 2 * GIB, 3 << 40])
def test_format_size_round_trips(size):
    assert parse_size(format_size(size)) == size


def test_format_size_uses_largest_exact_unit():
    assert format_size(2 * GIB) == "2G"
    assert format_size(1536 * MIB) == "1536M"
    assert format_size(1000) == "1000B"
    assert human_size(1536 * MIB) == "1.5 GiB"
    assert human_size(512) == "512 B"


# --- names, defaults, round trip -----------------------------------------------------------


def test_minimal_spec_gets_defaults():
    spec = validate_spec({"name": "web1"})
    assert spec.cpus.count == 1 and spec.memory == GIB
    assert spec.boot.mode == "uefi" and spec.clock == "utc" and spec.serial
    assert isinstance(spec.uuid, uuid.UUID)
    assert spec.disks == [] and spec.nics == []


@pytest.mark.parametrize("name", ["web1", "a", "A.b_c-9", "x" * 63])
def test_valid_names(name):
    assert validate_spec({"name": name}).name == name


@pytest.mark.parametrize("name", ["", "-x", ".hidden", "..", "a b", "a/b", "x" * 64, "é"])
def test_invalid_names(name):
    assert "name" in invalid({"name": name})


def test_name_is_required():
    assert invalid({}) == {"name": "is required"}


def test_existing_name_is_rejected_case_insensitively():
    errors = invalid({"name": "Web1"}, SpecContext(existing_names={"web1"}))
    assert "already exists" in errors["name"]


def test_instance_name_fits_bhyve_limit_and_stays_distinct():
    assert instance_name("web1") == "bhype-web1"
    a, b = instance_name("x" * 40 + "a"), instance_name("x" * 40 + "b")
    assert len(a) == len(b) == MAX_INSTANCE_NAME and a != b
    assert a == instance_name("x" * 40 + "a")  # stable
    assert (
        len(instance_name("y" * 25)) == MAX_INSTANCE_NAME and instance_name("y" * 25) == "bhype-" + "y" * 25
    )


def test_instance_name_clash_between_different_names_is_rejected():
    long_name = "abcdefghijklmnopqrstuvwxyz"  # 26 characters: hashed
    short_name = instance_name(long_name).removeprefix("bhype-")  # 25 characters: used as is
    errors = invalid({"name": short_name}, SpecContext(existing_names={long_name}))
    assert "clashes" in errors["name"]


def test_spec_round_trips_through_its_data():
    spec = validate_spec(
        {
            "name": "web1",
            "cpus": {"sockets": 2, "cores": 2},
            "memory": "1536M",
            "disks": [{"size": "20G"}, {"size": "1T", "bus": "nvme", "sectorsize": 4096}],
            "nics": [{"switch": "public", "vlan": 100}],
            "graphics": {"vnc": True},
            "tags": ["prod"],
        }
    )
    data = spec.to_data()
    assert data["memory"] == "1536M" and data["disks"][1]["size"] == "1T"
    assert validate_spec(data) == spec


def test_unknown_fields_and_wrong_types_are_named():
    errors = invalid({"name": "a", "colour": "red", "disks": {"size": "1G"}, "serial": "maybe"})
    assert errors["colour"] == "is not a known field"
    assert errors["disks"] == "must be a list"
    assert errors["serial"] == "must be true or false"


def test_spec_must_be_an_object():
    with pytest.raises(ValidationErrors) as info:
        validate_spec(["name"])  # type: ignore[arg-type]
    assert paths(info.value) == {"": "the VM spec must be an object"}


# --- every error at once, with dotted paths ------------------------------------------------


def test_all_field_errors_are_collected_with_paths():
    errors = invalid(
        {
            "name": "bad name",
            "cpus": 0,
            "memory": "3X",
            "boot": "bios",
            "disks": [{"size": "20G"}, {"size": "1.5K", "bus": "scsi"}],
            "nics": [{"mac": "01:00:5e:00:00:01"}, {"model": "rtl8139", "vlan": 5000}],
            "graphics": {"resolution": "1000x1000", "password": "a,b"},
            "autostart": {"order": -1},
        }
    )
    assert set(errors) == {
        "name",
        "cpus.count",
        "memory",
        "boot.mode",
        "disks.1.size",
        "disks.1.bus",
        "nics.0.mac",
        "nics.1.model",
        "nics.1.vlan",
        "graphics.resolution",
        "graphics.password",
        "autostart.order",
    }
    assert errors["cpus.count"] == "must be at least 1"
    assert errors["nics.1.vlan"] == "must be at most 4094"
    assert "multicast" in errors["nics.0.mac"]
    assert errors["memory"].startswith("invalid size '3X'")


# --- CPUs and memory -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpus", "expected"),
    [
        (4, (4, 1, 4, 1)),
        ("2", (2, 1, 2, 1)),
        ({"count": 4}, (4, 1, 4, 1)),
        ({"sockets": 2, "cores": 2, "threads": 2}, (8, 2, 2, 2)),
        ({"count": 4, "threads": 2}, (4, 1, 2, 2)),
        ({"count": 6, "sockets": 1, "cores": 3, "threads": 2}, (6, 1, 3, 2)),
    ],
)
def test_cpu_forms(cpus, expected):
    # bhyve(8) -c: sockets/cores/threads default to 1, numcpus defaults to their product.
    c = validate_spec({"name": "a", "cpus": cpus}).cpus
    assert (c.count, c.sockets, c.cores, c.threads) == expected


@pytest.mark.parametrize(
    "cpus", [{"count": 4, "sockets": 1, "cores": 3}, {"count": 3, "threads": 2}, True, 300]
)
def test_inconsistent_cpu_topology_is_rejected(cpus):
    assert any(path.startswith("cpus") for path in invalid({"name": "a", "cpus": cpus}))


def test_cpus_and_memory_are_checked_against_the_host():
    context = SpecContext(host_cpus=4, host_memory=8 * GIB)
    errors = invalid({"name": "a", "cpus": 8, "memory": "16G"}, context)
    assert "only 4" in errors["cpus"]
    assert "more than the host's 8 GiB" in errors["memory"]
    assert validate_spec({"name": "a", "cpus": 4, "memory": "8G"}, context).memory == 8 * GIB


@pytest.mark.parametrize("memory", ["16M", "1000K", "1.0001G"])
def test_memory_must_be_whole_mib_and_big_enough(memory):
    assert "memory" in invalid({"name": "a", "memory": memory})


# --- disks, CD, switches, templates --------------------------------------------------------


def test_disk_volumes_are_named_and_must_be_unique():
    spec = validate_spec(
        {"name": "a", "disks": [{"size": "1G", "volume": "disk1"}, {"size": "2G"}, {"size": "3G"}]}
    )
    assert [d.volume for d in spec.disks] == ["disk1", "disk2", "disk3"]
    errors = invalid(
        {"name": "a", "disks": [{"size": "1G", "volume": "data"}, {"size": "1G", "volume": "data"}]}
    )
    assert errors == {"disks.1.volume": "same volume as disks.0"}


def test_too_many_disks_and_nics():
    errors = invalid({"name": "a", "disks": [{"size": "1G"}] * 17, "nics": [{}] * 9})
    assert errors == {"disks": "must have at most 16 items", "nics": "must have at most 8 items"}


def test_known_isos_switches_and_templates():
    context = SpecContext(known_isos={"debian.iso"}, known_switches={"public"}, known_templates={"debian"})
    errors = invalid(
        {
            "name": "a",
            "cdrom": "ubuntu.iso",
            "nics": [{"switch": "public"}, {"switch": "dmz"}],
            "template": "arch",
        },
        context,
    )
    assert errors == {
        "cdrom": "no ISO named 'ubuntu.iso' in the ISO library",
        "nics.1.switch": "no virtual switch named 'dmz'",
        "template": "no template named 'arch'",
    }
    ok = validate_spec({"name": "a", "cdrom": "debian.iso", "nics": [{"switch": "public"}]}, context)
    assert ok.cdrom == "debian.iso"


def test_cdrom_is_a_library_name_not_a_path():
    assert "cdrom" in invalid({"name": "a", "cdrom": "../../etc/passwd"})


# --- MAC addresses -------------------------------------------------------------------------


def test_normalize_mac():
    assert normalize_mac("58-9C-FC-0A-1B-2C") == "58:9c:fc:0a:1b:2c"
    for bad in ("58:9c:fc:0a:1b", "zz:9c:fc:0a:1b:2c", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"):
        with pytest.raises(ValueError):
            normalize_mac(bad)


def test_generated_macs_are_in_bhyves_range_and_unique():
    spec = validate_spec({"name": "a", "nics": [{}] * 8}, SpecContext(rng=random.Random(7)))
    macs = [nic.mac for nic in spec.nics]
    assert len(set(macs)) == 8
    for mac in macs:
        # sys/net/ieee_oui.h: bhyve owns 58:9c:fc:00:00:01 .. 58:9c:fc:0f:ff:ff
        assert mac.startswith("58:9c:fc:0") and mac != "58:9c:fc:00:00:00"


def test_generate_mac_skips_taken_addresses():
    taken = {"58:9C:FC:01:02:03"}
    assert generate_mac(taken, SequenceRng([0x010203, 0x010203, 0x0A0B0C])) == "58:9c:fc:0a:0b:0c"
    with pytest.raises(Conflict):
        generate_mac(taken, SequenceRng([0x010203]))


def test_mac_collisions_with_other_vms_and_within_the_spec():
    context = SpecContext(existing_macs={"58:9c:fc:00:00:01"})
    errors = invalid(
        {
            "name": "a",
            "nics": [
                {"mac": "58:9C:FC:00:00:01"},
                {"mac": "58:9c:fc:00:00:02"},
                {"mac": "58:9c:fc:00:00:02"},
            ],
        },
        context,
    )
    assert errors == {"nics.0.mac": "58:9c:fc:00:00:01 is already used by another VM"}
    errors = invalid({"name": "a", "nics": [{"mac": "58:9c:fc:00:00:02"}, {"mac": "58:9c:fc:00:00:02"}]})
    assert errors == {"nics.1.mac": "same MAC as nics.0"}


def test_a_uuid_another_vm_has_is_refused_before_anything_is_made():
    taken = "7d2b0a8e-3f1c-4c55-9d2e-1b4a6c8f0e21"
    errors = invalid({"name": "a", "uuid": taken.upper()}, SpecContext(existing_uuids={taken}))
    assert errors == {"uuid": f"{taken} is already the UUID of another VM"}


def test_windows_keeps_local_time_unless_told_otherwise():
    assert validate_spec({"name": "w", "os_type": "windows"}, SpecContext()).clock == "localtime"
    assert validate_spec({"name": "w", "os_type": "windows", "clock": "utc"}, SpecContext()).clock == "utc"
    assert validate_spec({"name": "l", "os_type": "linux"}, SpecContext()).clock == "utc"


def test_generated_mac_avoids_existing_and_own_macs():
    rng = SequenceRng([0x000001, 0x000002, 0x000003])
    spec = validate_spec(
        {"name": "a", "nics": [{"mac": "58:9c:fc:00:00:02"}, {}]},
        SpecContext(existing_macs={"58:9c:fc:00:00:01"}, rng=rng),
    )
    assert spec.nics[1].mac == "58:9c:fc:00:00:03"


# --- graphics ------------------------------------------------------------------------------


def test_vnc_password_rules():
    assert (
        validate_spec({"name": "a", "graphics": {"vnc": True, "password": "s3cret8"}}).graphics.password
        == "s3cret8"
    )
    for bad in ("123456789", "has,comma", "has space"):
        assert "graphics.password" in invalid({"name": "a", "graphics": {"vnc": True, "password": bad}})


def test_vnc_password_is_generated_unless_explicitly_empty():
    generated = validate_spec({"name": "a", "graphics": {"vnc": True}}).graphics.password
    assert generated and len(generated) == 8 and generated.isalnum()
    assert validate_spec({"name": "a", "graphics": {"vnc": True, "password": ""}}).graphics.password == ""
    assert validate_spec({"name": "a"}).graphics.password is None  # no VNC, no password


def test_no_vnc_password_is_generated_for_a_driver_without_one():
    context = SpecContext(vnc_password=False)  # QEMU: VNC on a private unix socket (issue 11)
    assert validate_spec({"name": "a", "graphics": {"vnc": True}}, context).graphics.password is None
    given = {"name": "a", "graphics": {"vnc": True, "password": "kept1234"}}
    assert validate_spec(given, context).graphics.password == "kept1234"  # a stored one stays


@pytest.mark.parametrize("resolution", ["640x480", "1920x1080", "3840x2160"])
def test_resolution_within_bhyve_limits(resolution):
    spec = validate_spec({"name": "a", "graphics": {"vnc": True, "resolution": resolution}})
    assert f"{spec.graphics.width}x{spec.graphics.height}" == resolution


@pytest.mark.parametrize("resolution", ["320x200", "4096x2160", "1280x801", "big"])
def test_resolution_outside_bhyve_limits(resolution):
    # bhyve(8) fbuf: "Minimal supported resolution is 640x480 pixels, and maximum is 3840x2160"
    assert "graphics.resolution" in invalid({"name": "a", "graphics": {"resolution": resolution}})


def test_wait_needs_vnc():
    assert invalid({"name": "a", "graphics": {"wait": True}}) == {"graphics.wait": "needs graphics.vnc"}


# --- boot ----------------------------------------------------------------------------------


def test_boot_shorthand_and_kernel_boot():
    assert validate_spec({"name": "a", "boot": "bhyveload"}).boot.mode == "bhyveload"
    spec = validate_spec(
        {
            "name": "a",
            "boot": {
                "mode": "grub",
                "kernel": "/cache/vmlinuz",
                "initrd": "/cache/initrd.gz",
                "cmdline": "quiet",
            },
        }
    )
    assert spec.boot.kernel == "/cache/vmlinuz"


def test_boot_cross_field_rules():
    errors = invalid(
        {"name": "a", "boot": {"mode": "uefi", "kernel": "/k", "loader_env": {"a": "b"}, "cmdline": "x"}}
    )
    assert errors == {
        "boot.kernel": "only used with boot mode grub",
        "boot.cmdline": "only used with boot mode grub",
        "boot.loader_env": "only used with boot mode bhyveload",
    }
    assert invalid({"name": "a", "boot": {"mode": "grub", "initrd": "/i"}}) == {
        "boot.initrd": "needs boot.kernel"
    }
    assert invalid({"name": "a", "boot": "bhyveload", "serial": False}) == {
        "serial": "boot mode bhyveload needs the serial console"
    }


@pytest.mark.parametrize("path", ["relative/vmlinuz", "/a/../etc/shadow", "/a b", "/a,b", "/a;b", "/a//b"])
def test_kernel_path_must_be_plain_absolute(path):
    assert "boot.kernel" in invalid({"name": "a", "boot": {"mode": "grub", "kernel": path}})


def test_grub_root_and_loader_env_format():
    errors = invalid({"name": "a", "boot": {"mode": "grub", "grub_root": "(hd0)"}})
    assert "boot.grub_root" in errors
    errors = invalid({"name": "a", "boot": {"mode": "bhyveload", "loader_env": {"bad key": "x"}}})
    assert "boot.loader_env" in errors


# --- the rest ------------------------------------------------------------------------------


def test_autostart_and_cloud_init():
    spec = validate_spec({"name": "a", "autostart": True, "cloud_init": {"user_data": "#cloud-config\n{}"}})
    assert spec.autostart.enabled and spec.autostart.order == 100
    assert "cloud_init.user_data" in invalid({"name": "a", "cloud_init": {"user_data": "packages: [vim]"}})


def test_extra_options_structure_is_checked():
    errors = invalid({"name": "a", "extra": {"bhyve": ["-S", "bad\nline"], "qemu": [""], "xen": []}})
    assert set(errors) == {"extra.bhyve.1", "extra.qemu.0", "extra.xen"}


def test_tags_owner_description():
    errors = invalid(
        {"name": "a", "tags": ["ok", "not ok", "ok"], "owner": "root:x", "description": "x" * 1025}
    )
    assert set(errors) == {"tags", "owner", "description"}


def test_context_checks_run_on_the_completed_spec():
    seen: list[VMSpec] = []

    def check(spec: VMSpec):
        seen.append(spec)
        return [("nics.0.model", "not on this host")] if spec.nics[0].model == "e1000" else []

    errors = invalid({"name": "a", "nics": [{"model": "e1000"}]}, SpecContext(checks=[check]))
    assert errors == {"nics.0.model": "not on this host"}
    assert seen[0].nics[0].mac is not None  # generated values are filled before checks run
