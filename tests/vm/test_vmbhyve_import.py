"""``vmbhyve.import``/``vmbhyve.export`` on real files and a real database (issue 21): a dry
run changes nothing; an import adopts each disk in place (the same inode: not a byte copied),
refuses running guests and disks it cannot adopt, rolls a failed guest back without touching
vm-bhyve's files; ``show-command --platform freebsd`` then gives the bhyve argv vm-bhyve builds
for the same config; export writes a config vm-bhyve opens the same disks with."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bhype_core.builtins import vmbhyve as core_vmbhyve
from bhype_core.db.session import session
from bhype_core.errors import Forbidden, NotFound, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.network.models import row_from, validate_switch
from bhype_core.vm.models import VM
from bhype_core.vm.plan import show_command
from bhype_core.vm.services import open_datastore
from bhype_core.vmbhyve.tasks import export_vm, import_vms

CORPUS = Path(__file__).parent.parent / "vmbhyve" / "corpus"
MIB = 1 << 20
DISKS = {"web1": ["disk0.img", "data.img"], "fbsd1": ["disk0.img"], "deb1": ["disk0.img"],
         "win1": ["disk0.img"], "busy1": ["disk0.img"]}


@pytest.fixture
def vmbhyve_dir(short_dir: Path) -> Path:
    """The corpus as a live vm-bhyve datastore on the same file system as bHype's datastore:
    real sparse 64 MiB disks with a marker in their first block, and web1's UEFI variables."""
    root = short_dir / "vmbhyve"
    shutil.copytree(CORPUS / "vmdir", root)
    for guest, names in DISKS.items():
        for name in names:
            with open(root / guest / name, "wb") as handle:
                handle.write(f"{guest}/{name}".encode())
                handle.truncate(64 * MIB)
    (root / "web1" / "uefi-vars.fd").write_bytes(b"NVRAM of web1")
    return root


@pytest.fixture
def runtime(make_vm_runtime, short_dir: Path):
    vmm = short_dir / "vmm"
    (vmm / "busy1").mkdir(parents=True)  # /dev/vmm/busy1: vm-bhyve runs it (reference 1.8)
    runtime = make_vm_runtime(("core_vmbhyve", core_vmbhyve), core={"platform": "freebsd"},
                              bhyve={"vmm_dir": str(vmm)})
    return add_switches(runtime)


def add_switches(runtime):
    """The corpus's switches as existing bHype switches: these tests run no host commands."""
    with session(runtime, write=True) as db:
        for name, extra in (("public", {"uplink": "em0"}), ("dmz", {}), ("lan", {})):
            db.add(row_from(validate_switch({"name": name, **extra})))
    return runtime


def rows(runtime) -> dict[str, VM]:
    with Session(runtime.engine) as db:
        return {row.name: row for row in db.exec(select(VM))}


def run_import(runtime, task_context, vmbhyve_dir: Path, **arguments):
    context = task_context(runtime, "vmbhyve.import", user=None)
    return import_vms(context, vm_dir=str(vmbhyve_dir), rc_conf=str(CORPUS / "rc.conf"), **arguments)


def test_a_dry_run_plans_and_changes_nothing(runtime, task_context, vmbhyve_dir):
    plan = run_import(runtime, task_context, vmbhyve_dir, dry_run=True)
    actions = {vm["name"]: vm["action"] for vm in plan["vms"]}
    assert actions == {"busy1": "refuse", "deb1": "import", "fbsd1": "import", "web1": "import",
                       "win1": "import", "zv1": "refuse"}
    zv1 = next(vm for vm in plan["vms"] if vm["name"] == "zv1")
    assert any("zfs: datastore" in r or "zvol" in r for r in zv1["refused"])
    assert rows(runtime) == {}
    assert not (open_datastore(runtime).root / "vms").exists()


def test_import_adopts_disks_in_place_and_refuses_the_running_guest(runtime, task_context, vmbhyve_dir):
    before = {(g, n): os.stat(vmbhyve_dir / g / n) for g, names in DISKS.items() for n in names}
    result = run_import(runtime, task_context, vmbhyve_dir)
    assert sorted(result["imported"]) == ["deb1", "fbsd1", "web1", "win1"]
    assert result["failed"] == {}
    store = open_datastore(runtime)
    for guest in result["imported"]:
        for name in DISKS[guest]:
            adopted = store.volume_path(guest, name.removesuffix(".img"))
            mine, theirs = os.stat(adopted), os.stat(vmbhyve_dir / guest / name)
            assert (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)  # the same file
            assert theirs.st_nlink == 2 and theirs.st_mtime_ns == before[guest, name].st_mtime_ns
            assert adopted.read_bytes()[:32].startswith(f"{guest}/{name}".encode())
    assert os.stat(vmbhyve_dir / "busy1" / "disk0.img").st_nlink == 1  # refused: untouched
    web1 = rows(runtime)["web1"]
    assert web1.spec["uuid"] == "6a0c9f0e-2b3d-4c55-9a1e-0c2d3e4f5a6b" and web1.owner == "root"
    assert (store.vm_dir("web1") / "uefi-vars.fd").read_bytes() == b"NVRAM of web1"
    assert web1.spec["autostart"] == {"enabled": True, "order": 20, "delay": 5, "stop_timeout": None}
    assert (vmbhyve_dir / "web1" / "web1.conf").exists()  # vm-bhyve's files stay as they were


def normalise(argv: list[str]) -> dict:
    """What a bhyve command line means, without what legitimately differs between managers:
    PCI slot numbers, tap and nmdm names, the VNC address/port, firmware file names and the
    instance name. ``-c`` is compared by its vCPU count (vm-bhyve passes the topology when
    cpu_sockets/cores/threads are set; the test checks bHype's topology separately)."""
    flags, devices, lpc, i = set(), [], [], 1
    meaning: dict = {}
    while i < len(argv) - 1:
        arg = argv[i]
        if arg in ("-s", "-l", "-c", "-m", "-U", "-k"):
            value = argv[i + 1]
            i += 2
            if arg == "-s":
                emulation, *options = value.split(",")[1:]
                if emulation == "lpc" or emulation.endswith("hostbridge"):
                    continue
                options = [o for o in options if not o.startswith(("tap", "<tap", "tcp=", "/dev/nmdm"))]
                if emulation in ("virtio-blk", "ahci-hd", "nvme"):
                    options = [os.path.basename(options[0]) if options[0].startswith("/") else options[0],
                               *options[1:]]
                devices.append((emulation, *options))
            elif arg == "-l":
                lpc.append(value.split(",")[0])
            elif arg == "-c":
                meaning["cpus"] = int(value.split(",")[0].removeprefix("cpus="))
            else:
                meaning[arg] = value
        else:
            flags |= set(arg[1:]) if arg.startswith("-") else set()
            i += 1
    meaning.update(flags=flags, devices=sorted(devices), lpc=sorted(lpc))
    return meaning


def test_show_command_gives_the_argv_vm_bhyve_runs_for_the_config(runtime, task_context, vmbhyve_dir):
    run_import(runtime, task_context, vmbhyve_dir)
    plan = show_command(runtime, rows(runtime)["web1"], "freebsd")
    bhyve = next(c["argv"] for c in plan["commands"] if c["argv"][0] == "/usr/sbin/bhyve")
    # vm-bhyve lib/vm-run for corpus web1.conf: vm::run (-c, -m, -AHPw, -u for utctime, -U),
    # vm::bhyve_device_basic, _disks ("-s slot:func,<type>,<path>[,<opts>]"), _networking
    # ("<type>,tapN,mac=<mac>"), _rand, _fbuf ("fbuf,tcp=<listen>:<port>,w=,h=,vga=,wait,
    # password="), _mouse ("xhci,tablet"), _comports ("-l com1,/dev/nmdm…A"), UEFI bootrom.
    d = vmbhyve_dir / "web1"
    vm_bhyve = ["bhyve", "-c", "2", "-m", "2G", "-AHPw", "-u", "-U", "6a0c9f0e-2b3d-4c55-9a1e-0c2d3e4f5a6b",
                "-s", "0,hostbridge", "-s", "31,lpc",
                "-s", f"4:0,virtio-blk,{d}/disk0.img,sectorsize=4096", "-s", f"5:0,nvme,{d}/data.img",
                "-s", "6:0,virtio-net,tap0,mac=58:9c:fc:0a:1b:2c", "-s", "7:0,virtio-net,tap1,mac=58:9c:fc:0a:1b:2d",
                "-s", "8:0,virtio-rnd",
                "-s", "9:0,fbuf,tcp=10.0.0.1:5999,w=800,h=600,vga=off,wait,password=s3cret8",
                "-s", "10:0,xhci,tablet", "-l", "com1,/dev/nmdm-web1.1A",
                "-l", f"bootrom,/usr/local/share/uefi-firmware/BHYVE_UEFI.fd,{d}/uefi-vars.fd", "web1"]
    ours, theirs = normalise(bhyve), normalise(vm_bhyve)
    # bHype keeps the password out of ps(1) (-k file) and adds -H/-P/-A/-w as vm-bhyve does.
    theirs["devices"] = [tuple(o for o in dev if not o.startswith("password=")) for dev in theirs["devices"]]
    assert ours.pop("-k").endswith("/web1/vnc.conf")
    assert bhyve[bhyve.index("-c") + 1] == "cpus=2,sockets=1,cores=1,threads=2"  # cpu_* topology
    assert ours == theirs


def test_a_failed_guest_is_rolled_back_and_its_disks_given_back(make_vm_runtime, task_context, vmbhyve_dir,
                                                                short_dir, monkeypatch):
    class Veto:
        @hookimpl
        def bhype_vm_before_register(self, vm, context):
            if vm.name == "fbsd1":
                raise ValidationErrors([("name", "vetoed by a test plugin")])

    runtime = add_switches(make_vm_runtime(("core_vmbhyve", core_vmbhyve), ("veto", Veto()),
                                           core={"platform": "freebsd"}, bhyve={"vmm_dir": str(short_dir / "vmm")}))
    store = open_datastore(runtime)
    real = type(store).adopt_volume

    def refusing_second_disk(self, name, volume, source):
        if (name, volume) == ("web1", "data"):
            raise ValidationErrors([("source", "the OS refused it")])
        return real(self, name, volume, source)

    monkeypatch.setattr(type(store), "adopt_volume", refusing_second_disk)
    context = task_context(runtime, "vmbhyve.import", user=None)
    result = import_vms(context, vm_dir=str(vmbhyve_dir), rc_conf=None, vms=["fbsd1", "web1", "win1"])
    assert result["imported"] == ["win1"]
    assert "vetoed" in result["failed"]["fbsd1"] and "the OS refused it" in result["failed"]["web1"]
    assert sorted(rows(runtime)) == ["win1"]
    for guest in ("fbsd1", "web1"):
        assert not store.vm_dir(guest).exists()
        for name in DISKS[guest]:
            original = vmbhyve_dir / guest / name
            assert os.stat(original).st_nlink == 1 and original.read_bytes().startswith(f"{guest}/{name}".encode())


def test_another_file_system_is_refused_not_copied(make_vm_runtime, task_context, vmbhyve_dir):
    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(vmbhyve_dir).st_dev:
        pytest.fail("needs /dev/shm on another file system than /tmp")  # true on our machines
    runtime = add_switches(make_vm_runtime(
        ("core_vmbhyve", core_vmbhyve), core={"platform": "freebsd"},
        vm={"datastores": {"default": {"path": str(other / f"bht-ds-{os.getpid()}")}}}))
    try:
        (other / f"bht-ds-{os.getpid()}").mkdir()
        plan = import_vms(task_context(runtime, "vmbhyve.import", user=None), vm_dir=str(vmbhyve_dir),
                          rc_conf=None, vms=["fbsd1"], dry_run=True)
    finally:
        shutil.rmtree(other / f"bht-ds-{os.getpid()}", ignore_errors=True)
    assert "a hard link cannot cross file systems and bHype does not copy" in plan["vms"][0]["refused"][0]


def test_export_writes_a_config_that_opens_the_same_disks(runtime, task_context, vmbhyve_dir):
    run_import(runtime, task_context, vmbhyve_dir, vms=["fbsd1"])
    context = task_context(runtime, "vmbhyve.export", user=None)
    shown = export_vm(context, "fbsd1", vm_dir=str(vmbhyve_dir), dry_run=True)
    assert 'loader="bhyveload"' in shown["config"] and "written" not in shown
    disk = open_datastore(runtime).volume_path("fbsd1", "disk0")
    assert f'disk0_dev="custom"\ndisk0_name="{disk}"' in shown["config"]
    written = export_vm(context, "fbsd1", vm_dir=str(vmbhyve_dir))
    conf = vmbhyve_dir / "fbsd1" / "fbsd1.conf"
    assert written["written"] == str(conf) and conf.read_text() == shown["config"]
    assert (vmbhyve_dir / "fbsd1" / "fbsd1.conf.before-bhype").read_text().startswith('loader="bhyveload"')


def test_templates_are_imported_as_admin_templates_and_exported_back(runtime, task_context, vmbhyve_dir):
    """The import writes each vm-bhyve template as ``vmbhyve-<name>`` into vm.templates_dir (the
    catalog the API lists); a second import finds them there; ``--template`` exports one back."""
    from bhype_core.vm.services import template_catalog

    only = run_import(runtime, task_context, vmbhyve_dir, vms=["fbsd1"])
    assert only["templates_imported"] == [] and {t["action"] for t in only["templates"]} == {"skip"}
    done = run_import(runtime, task_context, vmbhyve_dir)
    assert done["templates_imported"] == ["vmbhyve-old-style", "vmbhyve-uefi-gfx", "vmbhyve-zvol-fbsd"]
    catalog = template_catalog(runtime)
    assert catalog.get("vmbhyve-uefi-gfx").spec_data()["disks"][0]["size"] == "40G" and not catalog.errors
    again = run_import(runtime, task_context, vmbhyve_dir, dry_run=True)
    assert {t["action"] for t in again["templates"]} == {"same"}

    context = task_context(runtime, "vmbhyve.export", user=None)
    written = export_vm(context, "vmbhyve-uefi-gfx", vm_dir=str(vmbhyve_dir), template=True)
    target = vmbhyve_dir / ".templates" / "uefi-gfx.conf"
    assert written["written"] == str(target) and 'disk0_size="40G"' in target.read_text()
    assert (vmbhyve_dir / ".templates" / "uefi-gfx.conf.before-bhype").read_text().startswith("# Written for")
    with pytest.raises(NotFound):
        export_vm(context, "no-such-template", vm_dir=str(vmbhyve_dir), template=True, dry_run=True)


def test_only_admins_may_import_or_export(runtime, vmbhyve_dir):
    from bhype_core.auth.principal import Principal
    from bhype_core.tasks import service

    operator = Principal("bht_operator", "operator")
    for kind, arguments in (("vmbhyve.import", {"vm_dir": str(vmbhyve_dir), "dry_run": True}),
                            ("vmbhyve.export", {"name": "web1", "dry_run": True})):
        with pytest.raises(Forbidden):
            service.submit(runtime, operator, kind, arguments)
    for kind in ("vmbhyve.import", "vmbhyve.export"):
        assert runtime.registry.tasks.get(kind).role == "admin"


def test_the_cli_plans_first_then_imports_through_the_api(make_vm_runtime, short_dir, vmbhyve_dir, monkeypatch,
                                                           capsys, local_user):
    import io
    import sys

    from bhype_core import cli
    from bhype_core.testing.api_server import served_cli

    admins = local_user.group()
    admin = local_user(groups=[admins.name])
    operator = local_user()
    runtime = add_switches(make_vm_runtime(
        ("core_vmbhyve", core_vmbhyve), core={"platform": "freebsd"}, bhyve={"vmm_dir": str(short_dir / "vmm")},
        queue={"backend": "sqlite"}, tasks={"poll_interval": 0.2}, auth={"admin_groups": [admins.name]}))
    users = ((admin.name, "admin"), (operator.name, "operator"))
    with served_cli(runtime, short_dir, monkeypatch, users, as_user=admin.name) as server:
        def bhype(*args: str) -> tuple[int, str, str]:
            sys.stdin = io.StringIO("")
            try:
                status = cli.main(["--config", str(server["config"]), *args])
            finally:
                sys.stdin = sys.__stdin__
            out, err = capsys.readouterr()
            return status, out, err

        rc = str(CORPUS / "rc.conf")
        status, out, err = bhype("import", "vm-bhyve", "--vm-dir", str(vmbhyve_dir), "--rc-conf", rc, "--dry-run")
        assert status == 0, err
        assert "import  fbsd1" in out and "Not mapped (" in out
        assert any(line.split()[:3] == ["win1", "hostbridge", "amd"] for line in out.splitlines())
        assert rows(runtime) == {}
        status, out, err = bhype("import", "vm-bhyve", "--vm-dir", str(vmbhyve_dir), "--rc-conf", rc, "--vm", "fbsd1")
        assert status == 0, err
        assert out.splitlines()[0] == "VMs:" and "imported fbsd1" in out
        assert list(rows(runtime)) == ["fbsd1"]
        status, out, err = bhype("export", "vm-bhyve", "fbsd1", "--dry-run")
        assert status == 0 and 'loader="bhyveload"' in out and 'loader_timeout="5"' in out
        # The worker checks the submitter again: an operator's task fails, naming why.
        monkeypatch.setenv("BHYPE_TOKEN", server["tokens"][operator.name])
        status, out, err = bhype("export", "vm-bhyve", "fbsd1", "--dry-run")
        assert status == 1 and "for admins" in err


def test_an_import_cut_off_mid_way_gives_the_disks_back_at_recovery(runtime, vmbhyve_dir, monkeypatch):
    from sqlalchemy import update
    from sqlmodel import col

    from bhype_core.auth.principal import Principal
    from bhype_core.db.task_models import Task
    from bhype_core.tasks import MemoryReporter, TaskContext, intents, service, store
    from bhype_core.vm.undo import Undo

    task = service.submit(runtime, Principal("bht_admin", "admin"), "vmbhyve.import", {"vm_dir": str(vmbhyve_dir)})
    with runtime.engine.begin() as connection:
        connection.execute(update(Task).where(col(Task.id) == task.id).values(state="interrupted"))
    task = store.get_task(runtime.engine, task.id)
    context = TaskContext(runtime, task.id, task.kind, None, MemoryReporter())
    datastore = open_datastore(runtime)
    real, adopted = type(datastore).adopt_volume, []

    def dying_adopt(self, name, volume, source):
        if adopted:
            raise SystemExit("kill -9")  # the worker dies between web1's two disks
        adopted.append(volume)
        return real(self, name, volume, source)

    monkeypatch.setattr(type(datastore), "adopt_volume", dying_adopt)
    monkeypatch.setattr(Undo, "rollback", lambda self: [])  # a killed worker rolls nothing back
    with pytest.raises(SystemExit):
        import_vms(context, vm_dir=str(vmbhyve_dir), rc_conf=None, vms=["web1"])
    assert os.stat(vmbhyve_dir / "web1" / "disk0.img").st_nlink == 2  # adopted, then the crash

    (replay,) = intents.settle(runtime, host="any")
    assert replay.failed == []
    assert os.stat(vmbhyve_dir / "web1" / "disk0.img").st_nlink == 1
    assert (vmbhyve_dir / "web1" / "disk0.img").read_bytes().startswith(b"web1/disk0.img")
    assert not datastore.vm_dir("web1").exists() and rows(runtime) == {}


def test_a_directory_whose_disk_was_not_given_back_stays(runtime, task_context, vmbhyve_dir):
    from bhype_core.errors import Conflict
    from bhype_core.vmbhyve.tasks import remove_dir_if_given_back

    run_import(runtime, task_context, vmbhyve_dir, vms=["fbsd1"])
    store = open_datastore(runtime)
    with pytest.raises(Conflict, match="was not given back"):
        remove_dir_if_given_back(store, "fbsd1", [("disk0", str(vmbhyve_dir / "fbsd1" / "disk0.img"))])
    assert store.volume_path("fbsd1", "disk0").exists()


def loader_meaning(argv: list[str]) -> dict:
    """A loader command line without what differs by manager (console device, VM name, the
    path of the boot disk's directory; bHype adds the SMBIOS UUID as vm-bhyve's bhyve -U does)."""
    meaning: dict = {"-e": set()}
    for flag, value in zip(argv[1:-1:2], argv[2:-1:2], strict=True):
        if flag == "-e":
            meaning["-e"].add(value)
        elif flag in ("-d", "-m") and value.startswith("/"):
            meaning[flag] = os.path.basename(value)
        elif flag != "-c":
            meaning[flag] = value
    meaning["-e"] = {e for e in meaning["-e"] if not e.startswith("smbios.system.uuid=")}
    return meaning


def test_show_command_gives_vm_bhyves_loader_commands(runtime, task_context, vmbhyve_dir):
    run_import(runtime, task_context, vmbhyve_dir, vms=["fbsd1", "deb1"])
    found = rows(runtime)

    def loader(name: str, program: str) -> list[str]:
        plan = show_command(runtime, found[name], "freebsd")
        return next(c["argv"] for c in plan["commands"] if c["argv"][0].endswith(program))

    # lib/vm-guest guest::load, bhyveload: "-c <com> -m <memory> -e autoboot_delay=<loader_timeout>
    # -d <boot disk>" (+ bhyveload_args, config.sample); bHype passes -m 1024M as 1G, the same size.
    d = vmbhyve_dir / "fbsd1"
    vm_bhyve = ["bhyveload", "-c", "/dev/nmdm-fbsd1.1A", "-m", "1G", "-e", "autoboot_delay=5",
                "-e", "machdep.hyperthreading_allowed=0", "-d", f"{d}/disk0.img", "fbsd1"]
    assert loader_meaning(loader("fbsd1", "bhyveload")) == loader_meaning(vm_bhyve)
    # grub: "-c <com> -m <vm dir>/device.map -M <memory> -r hd0,<grub_run_partition>"; the
    # device map is "(hd0) <boot disk>" in both. (deb1's grub_runN commands are listed as not mapped.)
    vm_bhyve = ["grub-bhyve", "-c", "/dev/nmdm-deb1.1A", "-m", "/vm/deb1/device.map", "-M", "512M",
                "-r", "hd0,msdos1", "deb1"]
    assert loader_meaning(loader("deb1", "grub-bhyve")) == loader_meaning(vm_bhyve)
