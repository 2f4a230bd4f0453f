"""Cloud images as disk sources: qemu-img info parsing against recorded output (qemu-img(1),
QEMU 7.2, files in samples/), and vm.create writing a real qcow2 image onto a raw disk with the
installed qemu-img; bad sources and too-small disks leave nothing behind."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bhype_core.disk_images import ImageInfo, convert_argv, parse_qemu_img_info
from bhype_core.errors import BhypeError, ValidationErrors
from bhype_core.units import MIB
from bhype_core.vm.create import create_vm
from bhype_core.vm.models import VM
from bhype_core.vm.services import open_datastore

SAMPLES = Path(__file__).parent / "samples"
PATTERN = bytes(range(256)) * (2 * MIB // 256)  # 2 MiB with a recognisable, non-zero pattern


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def test_parse_qcow2_and_raw_info_samples():
    assert parse_qemu_img_info(sample("qemu-img-info-qcow2.json")) == ImageInfo("qcow2", 3 * MIB)
    assert parse_qemu_img_info(sample("qemu-img-info-raw.json")) == ImageInfo("raw", MIB)


def test_parse_refuses_backing_files_and_garbage():
    with pytest.raises(BhypeError, match="backing file"):
        parse_qemu_img_info(sample("qemu-img-info-qcow2-backing.json"))
    with pytest.raises(BhypeError, match="external file"):
        parse_qemu_img_info('{"format": "qcow2", "virtual-size": 1, '
                            '"format-specific": {"type": "qcow2", "data": {"data-file": "/etc/x"}}}')
    with pytest.raises(BhypeError, match="no JSON"):
        parse_qemu_img_info("qemu-img: Could not open 'x': No such file")
    with pytest.raises(BhypeError, match="virtual-size"):
        parse_qemu_img_info('{"format": "raw"}')


def test_convert_argv_writes_into_the_existing_volume():
    argv = convert_argv(Path("/ds/isos/a.qcow2"), "qcow2", Path("/ds/vms/v/disk0.img"))
    assert argv == ["qemu-img", "convert", "-n", "--target-is-zero", "-f", "qcow2", "-O", "raw",
                    "/ds/isos/a.qcow2", "/ds/vms/v/disk0.img"]


def add_qcow2(runtime, name: str, data: bytes = PATTERN) -> Path:
    """Put ``data`` as a qcow2 image named ``name`` into the datastore's ISO library."""
    target = open_datastore(runtime).iso_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    raw = target.with_name(".src.raw")
    raw.write_bytes(data)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(target)], check=True)
    raw.unlink()
    return target


def leftovers(runtime) -> tuple[list[str], list[str]]:
    root = open_datastore(runtime).root / "vms"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []
    with Session(runtime.engine) as db:
        names = [vm.name for vm in db.exec(select(VM))]
    return files, names


def test_create_writes_the_image_onto_a_raw_disk_of_the_requested_size(vm_runtime, task_context):
    image = add_qcow2(vm_runtime, "cloud.qcow2")
    assert image.read_bytes()[:4] == b"QFI\xfb"  # really qcow2 (qcow2 spec: magic)
    context = task_context(vm_runtime, "vm.create")
    overrides = {"memory": "256M", "disks": [{"size": "8M", "source": "cloud.qcow2"}, {"size": "4M"}]}
    result = create_vm(context, "cloud1", template="debian", overrides=overrides)

    disk = Path(result["disks"][0])
    assert disk.stat().st_size == 8 * MIB
    with open(disk, "rb") as handle:
        assert handle.read(len(PATTERN)) == PATTERN  # raw: the guest's bytes at offset 0
        assert handle.read() == bytes(6 * MIB)
    assert Path(result["disks"][1]).read_bytes() == bytes(4 * MIB)
    assert "image cloud.qcow2 (qcow2, 2 MiB) written as raw" in context.reporter.text()
    with Session(vm_runtime.engine) as db:
        row = db.exec(select(VM)).one()
    assert all("source" not in d for d in row.spec["disks"])  # an edit must not need the image
    assert image.exists()  # the library keeps its image


def test_unknown_or_non_image_source_is_refused_at_its_path(vm_runtime, task_context):
    add_qcow2(vm_runtime, "cloud.qcow2")
    (open_datastore(vm_runtime).iso_path("installer.iso")).write_bytes(b"iso")
    context = task_context(vm_runtime, "vm.create")
    disks = [{"size": "8M"}, {"size": "8M", "source": "nope.qcow2"}, {"size": "8M", "source": "installer.iso"}]
    with pytest.raises(ValidationErrors) as caught:
        create_vm(context, "bad1", template="debian", overrides={"memory": "256M", "disks": disks})
    paths = {e.path: e.message for e in caught.value.errors}
    assert caught.value.http_status == 422
    assert "no disk image named 'nope.qcow2'" in paths["disks.1.source"]
    assert ".qcow2, .raw or .img" in paths["disks.2.source"]
    assert "disks.0.source" not in paths
    assert leftovers(vm_runtime) == ([], [])


def test_disk_smaller_than_the_image_is_refused_and_nothing_is_left(vm_runtime, task_context):
    add_qcow2(vm_runtime, "big.qcow2", PATTERN * 2)  # 4 MiB virtual size
    context = task_context(vm_runtime, "vm.create")
    overrides = {"memory": "256M", "disks": [{"size": "8M"}, {"size": "3M", "source": "big.qcow2"}]}
    with pytest.raises(ValidationErrors) as caught:
        create_vm(context, "small1", template="debian", overrides=overrides)
    assert {e.path: e.message for e in caught.value.errors} == {
        "disks.1.size": "must be at least 4 MiB, the virtual size of image big.qcow2"}
    assert leftovers(vm_runtime) == ([], [])


def test_an_image_qemu_img_cannot_read_fails_cleanly(vm_runtime, task_context):
    broken = open_datastore(vm_runtime).iso_path("broken.qcow2")
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"not a qcow2 image at all" * 100)
    context = task_context(vm_runtime, "vm.create")
    with pytest.raises(BhypeError, match="reading image broken.qcow2 failed"):
        create_vm(context, "broken1", template="debian",
                  overrides={"memory": "256M", "disks": [{"size": "8M", "source": "broken.qcow2"}]})
    assert leftovers(vm_runtime) == ([], [])
    assert os.path.exists(broken)


def test_an_edit_cannot_add_a_disk_from_an_image():
    from bhype_core.spec import validate_spec
    from bhype_core.vm.edit import disk_changes

    old = validate_spec({"name": "ed1", "disks": [{"size": "8M", "volume": "disk0"}]})
    with_source = old.model_copy(
        update={"disks": [*old.disks, old.disks[0].model_copy(update={"volume": "disk1", "source": "cloud.qcow2"})]}
    )
    with pytest.raises(ValidationErrors) as caught:
        disk_changes(old, with_source)
    assert [e.path for e in caught.value.errors] == ["disks.1.source"]


def test_a_spec_without_image_sources_serialises_without_the_key():
    # Stored specs (create, edit, clone) must all have one shape: no "source": None anywhere.
    from bhype_core.spec import validate_spec

    data = validate_spec({"name": "shape1", "disks": [{"size": "8M"}]}).to_data()
    assert "source" not in data["disks"][0]
