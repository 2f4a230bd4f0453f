"""vm-bhyve templates (``.templates/*.conf``, configs written for these tests) → bHype admin
templates ``vmbhyve-<name>`` and back: same key mapping as guests, per-VM keys reported, files
written once and never over someone else's, round trip template → export → import."""

from __future__ import annotations

import tomllib
from pathlib import Path

from bhype_core.spec import validate_spec
from bhype_core.templates import load_templates
from bhype_core.vmbhyve.datastore import Datastore, GuestConf, read_host
from bhype_core.vmbhyve.mapping import map_guest
from bhype_core.vmbhyve.plan import build_plan, format_plan
from bhype_core.vmbhyve.shconf import parse_shconf
from bhype_core.vmbhyve.templates import export_template_conf, plan_templates, write_templates

CORPUS = Path(__file__).parent / "corpus" / "vmdir"


def corpus_templates():
    return read_host(Datastore("default", CORPUS, "tank/vm")).templates


def test_each_template_maps_like_a_guest_and_loads_as_a_bhype_template(tmp_path) -> None:
    rows = {row["name"]: row for row in plan_templates(corpus_templates(), tmp_path)}
    assert {name: row["action"] for name, row in rows.items()} == {
        "old-style": "create", "uefi-gfx": "create", "zvol-fbsd": "create"}
    assert write_templates(list(rows.values()), tmp_path) == ["vmbhyve-old-style", "vmbhyve-uefi-gfx",
                                                              "vmbhyve-zvol-fbsd"]
    catalog = load_templates(tmp_path)
    assert not catalog.errors
    gfx = catalog.get("vmbhyve-uefi-gfx")
    assert gfx.source == "admin" and gfx.title == "vm-bhyve: uefi-gfx"
    data = gfx.spec_data()
    assert data["boot"] == {"mode": "uefi"} and data["memory"] == "4G"
    assert data["cpus"] == {"count": 2, "sockets": 1, "cores": 2, "threads": 1}
    assert data["disks"][0]["bus"] == "nvme" and data["disks"][0]["size"] == "40G"
    assert data["nics"] == [{"model": "e1000", "switch": "public"}]  # the template's MAC is not kept
    assert data["graphics"]["resolution"] == "1280x720" and data["clock"] == "localtime"
    assert data["extra"] == {"bhyve": ["-S"]}  # wired_memory, as for guests
    fbsd = catalog.get("vmbhyve-zvol-fbsd")
    assert fbsd.os_type == "freebsd" and fbsd.spec_data()["boot"]["mode"] == "bhyveload"
    assert catalog.get("vmbhyve-old-style").os_type == "linux"  # guest="ubuntu" (pre-1.2)


def test_the_template_is_mapped_with_the_guest_mapper() -> None:
    template = next(t for t in corpus_templates() if t.name == "uefi-gfx")
    as_guest = map_guest(GuestConf("x", template.directory, template.datastore, template.conf), template=True)
    row = next(r for r in plan_templates(corpus_templates(), None) if r["name"] == "uefi-gfx")
    assert row["spec"] == {**as_guest.spec, "name": "uefi-gfx"}


def test_per_vm_and_unmapped_keys_are_reported_in_the_plan(tmp_path) -> None:
    plan = build_plan(read_host(Datastore("default", CORPUS, "tank/vm")), size_of=lambda source: 1 << 30,
                      running=lambda name: None, templates_dir=tmp_path)
    rows = {(r["owner"], r["key"]): r for r in plan["unmapped"] if r["owner"].startswith("template ")}
    assert rows[("template uefi-gfx", "network0_mac")]["reason"].startswith("per VM")
    assert "zfs datastore" in rows[("template zvol-fbsd", "disk0_dev")]["reason"]
    text = format_plan(plan)
    assert "  create  uefi-gfx             as vmbhyve-uefi-gfx" in text
    assert "template uefi-gfx" in text and "network0_mac" in text
    gfx = next(t for t in plan["templates"] if t["name"] == "uefi-gfx")
    assert "network0_mac=58:9c:fc:0a:0b:0c" in tomllib.loads(gfx["text"])["notes"]


def test_a_second_import_finds_the_same_files_and_never_overwrites_another(tmp_path) -> None:
    rows = plan_templates(corpus_templates(), tmp_path)
    write_templates(rows, tmp_path)
    mine = (tmp_path / "vmbhyve-old-style.toml").read_text()
    (tmp_path / "vmbhyve-uefi-gfx.toml").write_text('title = "the admin\'s own"\n')
    (tmp_path / "vmbhyve-zvol-fbsd.toml").unlink()
    (tmp_path / "vmbhyve-zvol-fbsd.toml").symlink_to(tmp_path / "vmbhyve-old-style.toml")
    again = {row["name"]: row for row in plan_templates(corpus_templates(), tmp_path)}
    assert again["old-style"]["action"] == "same"
    assert again["uefi-gfx"]["action"] == "exists" and "not overwritten" in again["uefi-gfx"]["reason"]
    assert again["zvol-fbsd"]["action"] == "exists"  # a symlink is never followed nor replaced
    assert write_templates(list(again.values()), tmp_path) == []
    assert (tmp_path / "vmbhyve-uefi-gfx.toml").read_text() == 'title = "the admin\'s own"\n'
    assert (tmp_path / "vmbhyve-old-style.toml").read_text() == mine


def test_a_template_that_is_not_valid_is_refused_with_the_reason(tmp_path) -> None:
    templates = tmp_path / "vmdir" / ".templates"
    templates.mkdir(parents=True)
    (templates / "huge.conf").write_text('loader="uefi"\ncpu=100000\nmemory=1G\n')
    rows = plan_templates(read_host(Datastore("default", tmp_path / "vmdir")).templates, tmp_path / "out")
    assert rows[0]["action"] == "refuse" and "spec.cpus" in rows[0]["reason"]
    assert write_templates(rows, tmp_path / "out") == [] and not list((tmp_path / "out").glob("*.toml"))


def test_template_export_import_gives_the_same_template(tmp_path) -> None:
    write_templates(plan_templates(corpus_templates(), tmp_path / "admin"), tmp_path / "admin")
    catalog = load_templates(tmp_path / "admin")
    for name in ("vmbhyve-old-style", "vmbhyve-uefi-gfx", "vmbhyve-zvol-fbsd"):
        text, _notes = export_template_conf(catalog.get(name))
        keys = parse_shconf(text).values
        assert "uuid" not in keys and "vnc_password" not in keys and "network0_mac" not in keys
        back = tmp_path / "back" / ".templates"
        back.mkdir(parents=True, exist_ok=True)
        (back / f"{name[8:]}.conf").write_text(text)
    rows = plan_templates(read_host(Datastore("default", tmp_path / "back")).templates, tmp_path / "again")
    write_templates(rows, tmp_path / "again")
    second = load_templates(tmp_path / "again")
    for name in ("vmbhyve-old-style", "vmbhyve-uefi-gfx", "vmbhyve-zvol-fbsd"):
        before, after = (validate_spec({**data, "name": "t1"}).to_data()
                         for data in (catalog.get(name).spec_data(), second.get(name).spec_data()))
        for data in (before, after):  # per VM: a fresh one each time the spec is made
            data.pop("uuid"), data["graphics"].pop("password", None)
            for nic in data["nics"]:
                nic.pop("mac")
        if name == "vmbhyve-old-style":  # guest="ubuntu" is vm-bhyve < 1.2's key; nothing carries it now
            assert (before.pop("os_type"), after.pop("os_type")) == ("linux", "other")
            assert "os_type linux" in export_template_conf(catalog.get(name))[1][0]
        assert after == before, name
