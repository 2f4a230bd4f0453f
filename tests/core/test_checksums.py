"""Checksum files as the distributions publish them (samples/checksums/, written in each
distribution's documented format: GNU coreutils lines for Debian, Ubuntu, AlmaLinux and Alpine;
clearsigned BSD-tagged lines for Fedora; BSD-tagged with size comments for Rocky; sha512(1)
output for FreeBSD). Each sample line's digest is the digest of its own file name, so a test
can tell the right line was picked."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bhype_core.checksums import (
    Checksum,
    ChecksumError,
    check_digest,
    file_digests,
    find_checksum,
    parse_checksum_file,
)
from bhype_core.errors import ValidationErrors

SAMPLES = Path(__file__).parent / "samples" / "checksums"


def sample(name: str) -> str:
    return (SAMPLES / name).read_text()


def digest(name: str, algorithm: str) -> str:
    return hashlib.new(algorithm, name.encode()).hexdigest()


@pytest.mark.parametrize(("sample_name", "file_name", "algorithm"), [
    ("debian-SHA512SUMS", "debian-13-genericcloud-amd64.qcow2", "sha512"),
    ("ubuntu-SHA256SUMS", "resolute-server-cloudimg-amd64.img", "sha256"),
    ("fedora-CHECKSUM", "Fedora-Cloud-Base-Generic-44-1.7.x86_64.qcow2", "sha256"),
    ("rocky-CHECKSUM", "Rocky-9-GenericCloud-Base.latest.x86_64.qcow2", "sha256"),
    ("almalinux-CHECKSUM", "AlmaLinux-9-GenericCloud-latest.x86_64.qcow2", "sha256"),
    ("alpine.qcow2.sha512", "nocloud_alpine-3.23.3-x86_64-uefi-cloudinit-r0.qcow2", "sha512"),
    ("freebsd-CHECKSUM.SHA512", "FreeBSD-15.1-RELEASE-amd64-BASIC-CLOUDINIT-ufs.qcow2.xz", "sha512"),
])
def test_each_distribution_format_gives_the_line_of_the_wanted_file(sample_name, file_name, algorithm):
    found = find_checksum(sample(sample_name), file_name)
    assert found == Checksum(algorithm, digest(file_name, algorithm), file_name)


def test_gnu_lines_keep_names_and_modes_apart():
    entries = parse_checksum_file(sample("ubuntu-SHA256SUMS"))
    assert [e.name for e in entries][:2] == ["resolute-server-cloudimg-amd64-disk-kvm.img",
                                             "resolute-server-cloudimg-amd64.img"]
    assert {e.algorithm for e in entries} == {"sha256"}
    # The similar "-disk-kvm.img" line is never taken for the plain one.
    assert find_checksum(sample("ubuntu-SHA256SUMS"), "resolute-server-cloudimg-amd64.img").hex == digest(
        "resolute-server-cloudimg-amd64.img", "sha256")


def test_clearsign_wrapper_comments_and_signature_are_not_lines():
    entries = parse_checksum_file(sample("fedora-CHECKSUM"))
    assert len(entries) == 3  # no Hash: header, comment or signature line taken as a checksum
    dash_escaped = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n- " + \
        f"{digest('a.qcow2', 'sha512')}  a.qcow2\n-----BEGIN PGP SIGNATURE-----\nxx\n"
    assert find_checksum(dash_escaped, "a.qcow2").algorithm == "sha512"


def test_a_lone_bare_digest_answers_for_the_file_beside_it():
    bare = digest("x", "sha512") + "\n"
    assert find_checksum(bare, "x.qcow2") == Checksum("sha512", digest("x", "sha512"), "x.qcow2")


def test_escaped_gnu_names_and_crlf_lines():
    text = f"\\{digest('a', 'sha256')}  dir\\\\a b.qcow2\r\n"
    assert parse_checksum_file(text) == [Checksum("sha256", digest("a", "sha256"), "dir\\a b.qcow2")]


def test_missing_file_names_what_the_file_lists():
    with pytest.raises(ChecksumError) as caught:
        find_checksum(sample("rocky-CHECKSUM"), "Rocky-10-GenericCloud-Base.latest.x86_64.qcow2", "CHECKSUM")
    assert "CHECKSUM has no line for Rocky-10" in str(caught.value)
    assert "Rocky-9-GenericCloud-Base.latest.x86_64.qcow2" in str(caught.value)


def test_weak_digests_and_bad_tags_are_refused():
    with pytest.raises(ChecksumError, match="only MD5 digest"):
        find_checksum(sample("weak-MD5SUMS"), "old-image.qcow2")
    # A tag that does not fit the digest length is no checksum line.
    assert parse_checksum_file(f"SHA256 (a) = {digest('a', 'sha512')}\n") == []
    assert parse_checksum_file(f"MD5 (a) = {digest('a', 'md5')}\n") == []


def test_two_different_digests_for_one_file_are_refused():
    text = f"{digest('a', 'sha256')}  a.qcow2\n{digest('b', 'sha256')}  a.qcow2\n"
    with pytest.raises(ChecksumError, match="two different SHA256"):
        find_checksum(text, "a.qcow2")


def test_the_strongest_digest_wins_when_both_are_given():
    text = f"SHA256 (a.qcow2) = {digest('a', 'sha256')}\nSHA512 (a.qcow2) = {digest('a', 'sha512')}\n"
    assert find_checksum(text, "a.qcow2").algorithm == "sha512"


def test_check_digest_and_file_digests(tmp_path):
    assert check_digest(digest("a", "sha512").upper(), "sha512", "sha512") == digest("a", "sha512")
    assert check_digest("", "sha512", "sha512") is None
    with pytest.raises(ValidationErrors) as caught:
        check_digest(digest("a", "sha256"), "sha512", "sha512")
    assert caught.value.errors[0].path == "sha512"
    path = tmp_path / "f"
    path.write_bytes(b"x" * (3 << 20))
    assert file_digests(path, ("sha256", "sha512")) == {
        "sha256": hashlib.sha256(b"x" * (3 << 20)).hexdigest(),
        "sha512": hashlib.sha512(b"x" * (3 << 20)).hexdigest(),
    }
