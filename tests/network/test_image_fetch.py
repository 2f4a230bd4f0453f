"""Templates' cloud images fetched once into the library (issue 14), from a real HTTP server on
loopback standing in for the distributions' mirrors through ``[images] mirrors``: Debian's
SHA512SUMS (GNU lines) and FreeBSD's CHECKSUM.SHA512 (BSD lines, an .xz image unpacked), a
second fetch that does nothing, a tampered image refused, the API and its 200/202 answers."""

from __future__ import annotations

import hashlib
import lzma
import os
from collections.abc import Iterator

import pytest
from _netkit import run_queued, task_context
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.checksums import ChecksumError
from bhype_core.cloud_images import fetch_image, mirror_url
from bhype_core.db.task_models import FAILED, SUCCEEDED
from bhype_core.errors import NotFound, ValidationErrors
from bhype_core.isos import read_info
from bhype_core.tasks import store
from bhype_core.testing import act_as
from bhype_core.testing.file_server import FileServer
from bhype_core.vm.services import open_datastore

DEBIAN = "debian-13-genericcloud-amd64.qcow2"
FREEBSD = "FreeBSD-15.1-RELEASE-amd64-BASIC-CLOUDINIT-ufs.qcow2"
IMAGE = os.urandom(3 << 20)
PACKED = lzma.compress(IMAGE)


def sha512(data: bytes) -> str:
    return hashlib.sha512(data).hexdigest()


class Mirror(dict):
    """The served files (path → bytes) and the paths asked for (``requests``)."""

    requests: list[str]


@pytest.fixture
def mirror(network_runtime) -> Iterator[Mirror]:
    """A loopback HTTP server with the files of a Debian and a FreeBSD mirror; the runtime is
    configured to fetch templates' images from it. Yields the served files, which a test may
    change."""
    files = Mirror({
        f"/debian/trixie/latest/{DEBIAN}": IMAGE,
        "/debian/trixie/latest/SHA512SUMS": (
            f"{sha512(b'other')}  debian-13-generic-amd64.qcow2\n{sha512(IMAGE)}  {DEBIAN}\n").encode(),
        f"/freebsd/releases/VM-IMAGES/15.1-RELEASE/amd64/Latest/{FREEBSD}.xz": PACKED,
        "/freebsd/releases/VM-IMAGES/15.1-RELEASE/amd64/Latest/CHECKSUM.SHA512": (
            f"SHA512 ({FREEBSD}.xz) = {sha512(PACKED)}\nSHA512 (other.raw.xz) = {sha512(b'x')}\n").encode(),
    })
    server = FileServer(files)
    files.requests = server.requests
    base = server.url
    # The guard refuses loopback unless allowed (issue 11); the mirrors map the official URLs.
    network_runtime.settings.section("isos").fetch_allow = ["127.0.0.1/32"]
    network_runtime.settings.section("images").mirrors = {
        "https://cloud.debian.org/images/cloud/": f"{base}/debian/",
        "https://download.freebsd.org/": f"{base}/freebsd/",
    }
    with server:
        yield files


def test_mirror_url_takes_the_longest_prefix():
    mirrors = {"https://a/": "http://m/", "https://a/b/": "http://n/"}
    assert mirror_url("https://a/b/c.qcow2", mirrors) == "http://n/c.qcow2"
    assert mirror_url("https://a/c.qcow2", mirrors) == "http://m/c.qcow2"
    assert mirror_url("https://z/c.qcow2", mirrors) == "https://z/c.qcow2"


def test_debian_image_is_fetched_verified_by_sha512sums_and_only_once(network_runtime, mirror):
    context = task_context(network_runtime, "image.fetch")
    result = fetch_image(context, "debian")
    store_ = open_datastore(network_runtime)
    assert store_.iso_path(DEBIAN).read_bytes() == IMAGE
    assert result["fetched"] is True and "sha512 verified" in result["message"]
    info = read_info(store_, DEBIAN)
    assert info.sha256 == hashlib.sha256(IMAGE).hexdigest()
    assert info.source.endswith(f"/debian/trixie/latest/{DEBIAN}")
    assert f"sha512 {sha512(IMAGE)} for {DEBIAN}" in "\n".join(line.message for line in context.reporter.lines)

    asked = len(mirror.requests)
    again = fetch_image(task_context(network_runtime, "image.fetch"), "debian")
    assert again["fetched"] is False
    assert again["message"] == f"{DEBIAN} is already in the library of datastore default: nothing to do"
    assert len(mirror.requests) == asked  # not even the checksum file is read again


def test_freebsd_xz_image_is_verified_then_unpacked(network_runtime, mirror):
    result = fetch_image(task_context(network_runtime, "image.fetch"), "freebsd-uefi")
    store_ = open_datastore(network_runtime)
    assert store_.iso_path(FREEBSD).read_bytes() == IMAGE
    assert result["message"].startswith(f"{FREEBSD} fetched and unpacked")
    folder = store_.iso_path(FREEBSD).parent
    assert sorted(p.name for p in folder.iterdir()) == [f".{FREEBSD}.json", FREEBSD]  # no .xz, partial, unpack


def test_a_tampered_image_is_refused_and_nothing_is_kept(network_runtime, mirror):
    mirror[f"/debian/trixie/latest/{DEBIAN}"] = IMAGE[:-1] + b"!"
    with pytest.raises(ValidationErrors) as caught:
        fetch_image(task_context(network_runtime, "image.fetch"), "debian")
    assert caught.value.errors[0].path == "sha512"
    assert "checksum mismatch" in caught.value.errors[0].message
    folder = open_datastore(network_runtime).iso_path(DEBIAN).parent
    assert list(folder.iterdir()) == []

    mirror[f"/freebsd/releases/VM-IMAGES/15.1-RELEASE/amd64/Latest/{FREEBSD}.xz"] = lzma.compress(b"evil")
    with pytest.raises(ValidationErrors, match="sha512"):
        fetch_image(task_context(network_runtime, "image.fetch"), "freebsd-uefi")
    assert list(folder.iterdir()) == []


def test_checksum_file_without_the_image_fails_naming_it(network_runtime, mirror):
    mirror["/debian/trixie/latest/SHA512SUMS"] = f"{sha512(b'x')}  something-else.qcow2\n".encode()
    with pytest.raises(ChecksumError, match=f"no line for {DEBIAN}"):
        fetch_image(task_context(network_runtime, "image.fetch"), "debian")


def test_template_without_an_image_is_not_found(network_runtime, mirror):
    with pytest.raises(NotFound, match="names no cloud image"):
        fetch_image(task_context(network_runtime, "image.fetch"), "openbsd")


def test_api_queues_once_then_answers_already_there(network_runtime, mirror):
    app = create_app(runtime=network_runtime)
    with TestClient(app) as client:
        act_as(app, "alice", "operator")
        shown = client.get("/api/v1/templates/debian/image").json()
        assert (shown["present"], shown["name"], shown["user"]) == (False, DEBIAN, "debian")
        assert shown["url"].startswith("http://127.0.0.1:")  # the mirror applies
        answer = client.post("/api/v1/templates/debian/image")
        assert answer.status_code == 202, answer.text
        assert answer.json()["kind"] == "image.fetch"
        run_queued(network_runtime)
        task = store.get_task(network_runtime.engine, answer.json()["task_id"])
        assert task.state == SUCCEEDED, task.error
        assert task.result["fetched"] is True

        again = client.post("/api/v1/templates/debian/image")
        assert again.status_code == 200
        assert again.json()["task_id"] is None
        assert "already in the library" in again.json()["message"]
        assert client.get("/api/v1/templates/debian/image").json()["present"] is True

        assert client.post("/api/v1/templates/openbsd/image").status_code == 404
        assert client.post("/api/v1/templates/nope/image").status_code == 404
        assert client.get("/api/v1/templates/debian").json()["image"]["checksums"].endswith("/SHA512SUMS")

        mirror[f"/freebsd/releases/VM-IMAGES/15.1-RELEASE/amd64/Latest/{FREEBSD}.xz"] = b"truncated"
        failed = client.post("/api/v1/templates/freebsd-uefi/image")
        run_queued(network_runtime)
        assert store.get_task(network_runtime.engine, failed.json()["task_id"]).state == FAILED


def test_iso_fetch_verifies_sha512_too_and_keeps_sha256_working(network_runtime, mirror):
    from bhype_core.iso_fetch import fetch_iso

    url = mirror_url(f"https://cloud.debian.org/images/cloud/trixie/latest/{DEBIAN}",
                     network_runtime.settings.section("images").mirrors)
    with pytest.raises(ValidationErrors) as caught:
        fetch_iso(task_context(network_runtime, "iso.fetch"), url, "bad.qcow2", sha512="0" * 128)
    assert caught.value.errors[0].path == "sha512"
    folder = open_datastore(network_runtime).iso_path("bad.qcow2").parent
    assert list(folder.iterdir()) == []
    both = fetch_iso(task_context(network_runtime, "iso.fetch"), url, "good.qcow2",
                     sha256=hashlib.sha256(IMAGE).hexdigest(), sha512=sha512(IMAGE).upper())
    assert both["sha256"] == hashlib.sha256(IMAGE).hexdigest()

    app = create_app(runtime=network_runtime)
    with TestClient(app) as client:
        act_as(app, "alice", "operator")
        refused = client.post("/api/v1/isos/fetch", json={"url": "https://example.org/a.iso", "name": "a.iso",
                                                          "sha512": "abc"})
        assert refused.status_code == 422
        assert [f["path"] for f in refused.json()["error"]["fields"]] == ["sha512"]
