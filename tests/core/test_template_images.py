"""Templates name their distribution's official cloud image (issue 14): every shipped Linux/BSD
template with cloud-init has an ``[image]`` with https URLs and a library name the disk-source
feature accepts; a broken ``[image]`` table is reported at its path; admins can name images."""

from __future__ import annotations

import pytest

from bhype_core.cloud_images import CloudImage, parse_image
from bhype_core.disk_images import image_format
from bhype_core.errors import ValidationErrors
from bhype_core.templates import load_templates, parse_template


def test_every_shipped_linux_and_bsd_template_with_cloud_init_names_an_https_image():
    catalog = load_templates()
    with_images = {t.name for t in catalog.list() if t.image is not None}
    wanted = {t.name for t in catalog.list() if t.cloud_init and t.os_type in ("linux", "freebsd")}
    assert wanted == {"almalinux", "alpine", "debian", "fedora", "freebsd-bhyveload", "freebsd-uefi",
                      "rocky", "ubuntu"}
    assert with_images == wanted  # Windows, NetBSD and OpenBSD publish no cloud-init images
    for name in wanted:
        image = catalog.get(name).image
        assert image.url.startswith("https://") and image.checksums.startswith("https://"), name
        assert image_format(image.name) == "qcow2", name  # every one of them is a QCOW2 image
        assert image.user, name
        assert catalog.get(name).summary()["image"]["name"] == image.name


def test_ubuntu_img_is_kept_as_qcow2_and_freebsd_xz_is_unpacked():
    catalog = load_templates()
    ubuntu = catalog.get("ubuntu").image
    assert (ubuntu.file, ubuntu.name) == ("resolute-server-cloudimg-amd64.img", "resolute-server-cloudimg-amd64.qcow2")
    freebsd = catalog.get("freebsd-uefi").image
    assert freebsd.compression == "xz" and freebsd.file == freebsd.name + ".xz"
    assert catalog.get("debian").image.compression is None


@pytest.mark.parametrize(("raw", "paths"), [
    ("not a table", {"image"}),
    ({"url": "ftp://x/a.qcow2", "checksums": "https://x/SUMS"}, {"image.url"}),
    ({"url": "https://x/a.qcow2"}, {"image.checksums"}),
    ({"url": "https://x/a.iso", "checksums": "https://x/SUMS"}, {"image.name"}),
    ({"url": "https://x/a.qcow2", "checksums": "https://x/SUMS", "colour": "red", "user": 3},
     {"image.colour", "image.user"}),
])
def test_bad_image_tables_are_reported_at_their_paths(raw, paths):
    with pytest.raises(ValidationErrors) as caught:
        parse_image(raw)
    assert {e.path for e in caught.value.errors} == paths


def test_an_admin_template_can_name_its_own_image_and_library_name():
    text = """title = "Mine"
os_type = "linux"
cloud_init = true
[spec]
disks = [{ size = "8G" }]
[image]
url = "https://mirror.example/images/x.img?download=1"
checksums = "https://mirror.example/images/SHA256SUMS"
name = "x.qcow2"
"""
    template = parse_template("mine", text, source="admin")
    assert template.image == CloudImage("https://mirror.example/images/x.img?download=1",
                                        "https://mirror.example/images/SHA256SUMS", "x.qcow2", "x.img")
    with pytest.raises(ValidationErrors) as caught:
        parse_template("mine", text.replace('name = "x.qcow2"', 'name = "../x.qcow2"'))
    assert [e.path for e in caught.value.errors] == ["image.name"]
