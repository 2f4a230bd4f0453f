"""vm-bhyve configs → bHype spec (issue 21), on a corpus written for these tests from vm-bhyve's
``sample-templates/config.sample`` documentation (corpus/vmdir): every documented key is
covered and either mapped or listed with a reason; import → export → import gives the same
spec."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bhype_core.spec import validate_spec
from bhype_core.vmbhyve.datastore import Datastore, read_host
from bhype_core.vmbhyve.export import export_conf
from bhype_core.vmbhyve.plan import build_plan
from bhype_core.vmbhyve.shconf import parse_shconf

CORPUS = Path(__file__).parent / "corpus"
GIB = 1 << 30

# Every key of vm-bhyve's sample-templates/config.sample (current and pre-1.2 revisions), with
# N = 0 for the numbered families. Listed by hand from its documentation.
CONFIG_SAMPLE_KEYS = """
loader bhyveload_loader bhyveload_args loader_timeout uefi_vars cpu cpu_sockets cpu_cores cpu_threads
memory wired_memory hostbridge hostbridge_slot lpc_slot ignore_bad_msr bhyve_options comports utctime
debug uuid ahci_device_limit disk0_type disk0_dev disk0_name disk0_opts disk0_slot disk0_size
network0_type network0_switch network0_device network0_name network0_mac network0_span network0_slot
passthru0 passthru_slot_start disk_slot_start install_slot network_slot_start virt_random
virt_random_slot graphics graphics_port graphics_listen graphics_res graphics_wait graphics_vga
vnc_password fbuf_slot xhci_mouse xhci_slot sound sound_play sound_req sound_slot virt_console0
virt_console_slot grub_install0 grub_install1 grub_run0 grub_run1 grub_run_partition grub_run_dir
grub_run_file zfs_dataset_opts zfs_zvol_opts prestart priority limit_pcpu limit_rbps limit_wbps
limit_riops limit_wiops guest uefi grub_commands linux_kernel guest_version arch
""".split()


def corpus_host(root: Path = CORPUS / "vmdir", rc: Path = CORPUS / "rc.conf"):
    return read_host(Datastore("default", root, "tank/vm"), rc)


def plan_of(host) -> dict:
    return build_plan(host, size_of=lambda source: GIB, running=lambda name: None)


def test_the_corpus_covers_every_key_of_config_sample() -> None:
    used: set[str] = set()
    for conf in (CORPUS / "vmdir").rglob("*.conf"):
        used |= set(parse_shconf(conf.read_text()).values)
    assert sorted(set(CONFIG_SAMPLE_KEYS) - used) == []


def test_every_documented_key_is_mapped_or_has_a_reason() -> None:
    plan = plan_of(corpus_host())
    unknown = [row for row in plan["unmapped"] if row["reason"] == "not a vm-bhyve option bHype knows"]
    assert unknown == []
    assert all(row["reason"] for row in plan["unmapped"])


def test_key_by_key_mapping() -> None:
    plan = plan_of(corpus_host())
    vms = {vm["name"]: vm for vm in plan["vms"]}
    web1 = vms["web1"]["spec"]
    assert web1["cpus"] == {"count": 2, "sockets": 1, "cores": 1, "threads": 2}
    assert web1["boot"] == {"mode": "uefi"} and vms["web1"]["nvram"].endswith("web1/uefi-vars.fd")
    assert web1["graphics"] == {"vnc": True, "resolution": "800x600", "wait": "always", "vga": "off",
                                "password": "s3cret8", "tablet": True}
    assert web1["disks"][0] == {"bus": "virtio-blk", "volume": "disk0", "sectorsize": 4096, "size": "1G"}
    assert web1["disks"][1]["bus"] == "nvme" and web1["rng"] is True and web1["clock"] == "utc"
    assert web1["nics"][0] == {"model": "virtio-net", "switch": "public", "mac": "58:9c:fc:0a:1b:2c"}
    assert "switch" not in web1["nics"][1]  # a vale switch is not registered: unconnected NIC
    assert web1["autostart"] == {"enabled": True, "order": 20, "delay": 5}
    fbsd1 = vms["fbsd1"]["spec"]
    assert fbsd1["boot"] == {"mode": "bhyveload", "loader_env": {"autoboot_delay": "5",
                                                                 "machdep.hyperthreading_allowed": "0"}}
    assert fbsd1["os_type"] == "freebsd" and fbsd1["memory"] == "1G"
    assert fbsd1["autostart"]["order"] == 10
    deb1 = vms["deb1"]["spec"]
    assert deb1["boot"] == {"mode": "grub", "grub_root": "hd0,msdos1"}  # vm-bhyve: -r hd0,<partition>
    assert deb1["disks"][0]["bus"] == "ahci-hd"
    win1 = vms["win1"]["spec"]
    assert win1["boot"] == {"mode": "uefi-csm"} and win1["clock"] == "localtime"
    assert win1["extra"]["bhyve"] == ["-s", "19:0,passthru,2/0/0", "-S", "-s", "10:0,passthru,3/0/0",
                                      "-p", "0:2", "-p", "1:3"]
    assert [d["volume"] for d in win1["disks"]] == ["disk0"]  # the ahci-cd is listed as not mapped
    zv1 = vms["zv1"]
    assert [(d["kind"], d["dataset"], d["sparse"]) for d in zv1["disks"]] == [
        ("zvol", "tank/vm/zv1/disk0", True), ("zvol", "tank/vm/zv1/disk1", False)]
    assert zv1["disks"][0]["path"] == "/dev/zvol/tank/vm/zv1/disk0"
    switches = {s["name"]: s for s in plan["switches"]}
    assert switches["public"] == {"name": "public", "action": "create", "reason": "",
                                  "fields": {"description": "imported from vm-bhyve", "uplink": "em0", "mtu": 9000}}
    assert switches["dmz"]["fields"]["vlan"] == 30 and switches["vale1"]["action"] == "skip"
    assert plan["templates"][0]["spec"]["boot"] == {"mode": "uefi-csm"}
    assert plan["templates"][0]["spec"]["os_type"] == "linux"
    assert plan["templates"][0]["spec"]["disks"][0]["size"] == "20G"
    assert any("$HOME" in w and "never expanded" in w for w in plan["warnings"])


def test_a_running_guest_is_refused_with_the_reason() -> None:
    plan = build_plan(corpus_host(), size_of=lambda source: GIB,
                      running=lambda name: "/dev/vmm/busy1 exists" if name == "busy1" else None)
    busy = next(vm for vm in plan["vms"] if vm["name"] == "busy1")
    assert busy["action"] == "refuse"
    assert "running under vm-bhyve (/dev/vmm/busy1 exists): stop it with 'vm stop busy1'" in busy["refused"][0]


def test_a_disk_that_is_missing_or_not_whole_mib_refuses_the_guest() -> None:
    plan = build_plan(corpus_host(), size_of=lambda source: None if "web1" in source.path else GIB + 1,
                      running=lambda name: None)
    reasons = {vm["name"]: vm["refused"] for vm in plan["vms"]}
    assert "does not exist or its size cannot be read" in reasons["web1"][0]
    assert "not a whole number of MiB" in reasons["fbsd1"][0]


@pytest.mark.parametrize("name", ["web1", "fbsd1", "deb1", "win1", "zv1", "busy1"])
def test_import_export_import_gives_the_same_spec(name: str, tmp_path: Path) -> None:
    first = next(vm for vm in plan_of(corpus_host())["vms"] if vm["name"] == name)
    spec = validate_spec(first["spec"])
    paths = [f"/dev/zvol/tank/bhype/vms/{name}/{d.volume}" if first["disks"][i]["kind"] == "zvol"
             else f"/var/db/bhype/vms/{name}/{d.volume}.img" for i, d in enumerate(spec.disks)]
    text, _notes = export_conf(spec, paths)
    again = tmp_path / "vmdir"
    (again / name).mkdir(parents=True)
    (again / name / f"{name}.conf").write_text(text)
    shutil.copytree(CORPUS / "vmdir" / ".config", again / ".config")
    second = next(vm for vm in plan_of(corpus_host(again))["vms"] if vm["name"] == name)
    assert [d["path"] for d in second["disks"]] == paths  # vm-bhyve would open the same disks
    assert validate_spec(second["spec"]).to_data() == spec.to_data()


@pytest.mark.parametrize(("dev", "name"), [("file", "../../etc/master.passwd"), ("file", "sub/disk0.img"),
                                           ("zvol", "../other/disk0"), ("custom", "relative.img"),
                                           ("custom", "/vm/../etc/master.passwd")])
def test_a_disk_name_that_leaves_the_guest_is_refused_not_followed(dev: str, name: str) -> None:
    from bhype_core.vmbhyve.datastore import GuestConf
    from bhype_core.vmbhyve.mapping import map_guest

    conf = parse_shconf(f'loader="uefi"\ndisk0_type="virtio-blk"\ndisk0_dev="{dev}"\ndisk0_name="{name}"\n')
    plan = map_guest(GuestConf("g1", Path("/vm/g1"), Datastore("default", Path("/vm"), "tank/vm"), conf),
                     lambda source: GIB)
    assert plan.disks == [] and "disk0_name" in plan.refused[0]
