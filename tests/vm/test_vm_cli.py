"""``bhype vm …`` and ``bhype template list`` against a real uvicorn server on loopback with a
real API token and an in-process worker: JSON output, task following, one-line errors."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest

from bhype_core import cli
from bhype_core.testing.api_server import served_cli


@pytest.fixture
def server(make_vm_runtime, short_dir, monkeypatch) -> Iterator[dict]:
    """The API served by uvicorn in a thread, a worker thread, and a CLI configuration; the
    CLI authenticates as operator alice through $BHYPE_TOKEN."""
    runtime = make_vm_runtime(queue={"backend": "sqlite"}, tasks={"poll_interval": 0.2})
    users = (("alice", "operator"), ("bob", "operator"))
    with served_cli(runtime, short_dir, monkeypatch, users, as_user="alice") as server:
        yield server


def bhype(server, capsys, *args: str, stdin: str = "") -> tuple[int, str, str]:
    sys.stdin = io.StringIO(stdin)
    try:
        status = cli.main(["--config", str(server["config"]), *args])
    finally:
        sys.stdin = sys.__stdin__
    out, err = capsys.readouterr()
    return status, out, err


def test_template_list(server, capsys):
    status, out, _ = bhype(server, capsys, "template", "list", "--json")
    assert status == 0
    assert "debian" in [t["name"] for t in json.loads(out)["templates"]]
    status, out, _ = bhype(server, capsys, "template", "list")
    assert out.splitlines()[0].split() == ["NAME", "OS", "BOOT", "CLOUD-INIT", "SOURCE", "TITLE"]
    assert any(line.split()[:3] == ["freebsd-bhyveload", "freebsd", "bhyveload"] for line in out.splitlines())


def test_vm_lifecycle_through_the_cli(server, capsys):
    status, out, err = bhype(server, capsys, "vm", "create", "web1", "-t", "alpine", "--memory", "256M",
                             "--disk", "1G", "--set", "graphics.vnc=true", "--set", "tags=[\"prod\"]", "--wait")
    assert status == 0, err
    assert "task" in out and "succeeded: vm.create web1" in out

    status, out, _ = bhype(server, capsys, "vm", "list", "--json")
    [vm] = json.loads(out)
    assert (vm["name"], vm["owner"], vm["state"], vm["memory"], vm["tags"]) == (
        "web1", "alice", "stopped", "256M", ["prod"])
    status, out, _ = bhype(server, capsys, "vm", "list")
    assert out.splitlines()[1].split()[:3] == ["web1", "alice", "stopped"]

    status, out, _ = bhype(server, capsys, "vm", "info", "web1", "--json")
    assert json.loads(out)["spec"]["graphics"]["vnc"] is True

    status, out, _ = bhype(server, capsys, "vm", "show-command", "web1", "--platform", "linux")
    assert status == 0 and "qemu-system-x86_64" in out and "# the VM" in out
    status, out, _ = bhype(server, capsys, "vm", "show-command", "web1", "--platform", "freebsd", "--json")
    assert any(c["argv"][0] == "/usr/sbin/bhyve" for c in json.loads(out)["commands"])

    status, out, err = bhype(server, capsys, "vm", "edit", "web1", "--memory", "512M", "--description", "edge",
                             "--wait")
    assert status == 0, err
    status, out, _ = bhype(server, capsys, "vm", "info", "web1")
    assert "memory:       512M" in out and "description:  edge" in out

    status, out, err = bhype(server, capsys, "vm", "destroy", "web1", "--wait")  # not a tty, no --yes
    assert status == 1 and err == "bhype: error: --yes: confirm destroying a VM with --yes when not on a terminal\n"
    status, out, err = bhype(server, capsys, "vm", "destroy", "web1", "--yes", "--wait")
    assert status == 0, err
    assert bhype(server, capsys, "vm", "list", "--json")[1].strip() == "[]"


def test_errors_are_one_line(server, capsys, monkeypatch):
    status, _, err = bhype(server, capsys, "vm", "create", "bad", "--memory", "16M", "--disk", "huge")
    assert status == 1
    assert err == "bhype: error: spec.memory: must be at least 32M; spec.disks.0.size: invalid size 'huge': " \
                  "use a number with an optional unit B, K, M, G or T (e.g. '20G')\n"
    status, _, err = bhype(server, capsys, "vm", "create", "x", "--set", "novalue")
    assert status == 1 and "--set: 'novalue' must look like field.sub=value" in err
    assert bhype(server, capsys, "vm", "create", "bobs", "-t", "alpine", "--disk", "1G", "--wait")[0] == 0
    monkeypatch.setenv("BHYPE_TOKEN", server["tokens"]["bob"])
    status, _, err = bhype(server, capsys, "vm", "start", "bobs-not-there")
    assert (status, err) == (1, "bhype: error: no VM named 'bobs-not-there'\n")
    monkeypatch.setenv("BHYPE_TOKEN", "bhype_not-a-token")
    status, _, err = bhype(server, capsys, "vm", "list")
    assert status == 1 and "bhype login" in err


def test_other_users_vm_is_not_found(server, capsys, monkeypatch):
    assert bhype(server, capsys, "vm", "create", "alices", "-t", "alpine", "--disk", "1G", "--wait")[0] == 0
    monkeypatch.setenv("BHYPE_TOKEN", server["tokens"]["bob"])
    assert bhype(server, capsys, "vm", "list", "--json")[1].strip() == "[]"
    status, _, err = bhype(server, capsys, "vm", "info", "alices")
    assert (status, err) == (1, "bhype: error: no VM named 'alices'\n")


def test_a_start_that_cannot_work_names_the_problem_and_its_fix(server, capsys):
    assert bhype(server, capsys, "vm", "create", "nodisk", "-t", "alpine", "--disk", "1G", "--wait")[0] == 0
    runtime = server["runtime"]
    from bhype_core.vm.services import open_datastore

    (open_datastore(runtime).vm_dir("nodisk") / "disk0.img").unlink()  # lost behind bHype's back
    status, _, err = bhype(server, capsys, "vm", "start", "nodisk", "--wait")
    assert status == 1
    last = err.splitlines()[-1]  # progress lines come first on stderr
    assert last.startswith("bhype: error: task vm.start failed: VM nodisk cannot start: disks.0: disk image not found")
    assert last.endswith("(fix: create the disk, or fix disks.0.volume)")
    status, out, _ = bhype(server, capsys, "vm", "info", "nodisk", "--json")
    assert json.loads(out)["state"] == "stopped"


def test_install_and_rescue_starts_from_the_cli(server, capsys):
    # Issue 14 "Start plans": --install boots the ISO once, then the disk; --rescue the ISO first.
    assert bhype(server, capsys, "vm", "create", "plain", "-t", "alpine", "--disk", "1G", "--wait")[0] == 0
    status, _, err = bhype(server, capsys, "vm", "start", "plain", "--install")
    assert status == 1 and "has none: attach one first (spec.cdrom)" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit):  # one mode at a time (argparse usage error)
        bhype(server, capsys, "vm", "start", "plain", "--install", "--rescue")
    capsys.readouterr()

    from bhype_core.vm.services import open_datastore

    iso = open_datastore(server["runtime"]).iso_path("installer.iso")
    iso.parent.mkdir(parents=True, exist_ok=True)
    iso.write_bytes(b"\0" * 4096)
    assert bhype(server, capsys, "vm", "create", "inst", "-t", "alpine", "--disk", "1G", "--iso", "installer.iso",
                 "--wait")[0] == 0
    status, out, _ = bhype(server, capsys, "vm", "show-command", "inst", "--platform", "linux", "--install",
                           "--json")
    purposes = [c["purpose"] for c in json.loads(out)["commands"] if c["argv"][0].startswith("qemu")]
    assert status == 0 and len(purposes) == 2 and purposes[1].startswith("after the guest's first reboot")
    status, out, _ = bhype(server, capsys, "vm", "show-command", "inst", "--platform", "linux", "--rescue",
                           "--json")
    (qemu,) = [c["argv"] for c in json.loads(out)["commands"] if c["argv"][0].startswith("qemu")]
    assert status == 0 and any("drive=cd0,bootindex=0" in arg for arg in qemu)
