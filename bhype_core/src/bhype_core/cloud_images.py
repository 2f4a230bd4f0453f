"""A template's official cloud image: where it is, how it is checked, fetched once into the library.

A template's ``[image]`` table names the distribution's image and the checksum file the
distribution publishes beside it::

    [image]
    url = "https://cloud.debian.org/images/cloud/trixie/latest/debian-13-genericcloud-amd64.qcow2"
    checksums = "https://cloud.debian.org/images/cloud/trixie/latest/SHA512SUMS"
    user = "debian"            # the image's default account (cloud-init puts keys there)
    # name = "…"               # library file name (default: the URL's last part, without .xz)
    # file = "…"               # the name in the checksum file (default: the URL's last part)

``image.fetch`` downloads the checksum file, finds the image's line (:mod:`bhype_core.checksums`),
then downloads the image with the ISO library's fetch (progress, resume, guard, checksum) and
unpacks ``.xz`` images; an image already in the library is left alone. ``[images] mirrors``
rewrites URL prefixes, so a site can serve every image (and checksum file) from its own mirror.
"""

from __future__ import annotations

import lzma
import os
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import Field, field_validator

from bhype_core.config import Section
from bhype_core.disk_images import is_image_name
from bhype_core.errors import NotFound, ValidationErrors
from bhype_core.spec_parts import ISO_RE

SECTION = "images"
IMAGE_KEYS = {"url", "checksums", "name", "file", "user"}
CHECKSUM_FILE_LIMIT = 1 << 20  # Fedora's CHECKSUM is ~1 KiB, Ubuntu's SHA256SUMS ~3 KiB
COMPRESSED = {".xz": "xz"}


class ImageSettings(Section):
    """``[images]``: where templates' cloud images are fetched from."""

    mirrors: dict[str, str] = Field(
        default_factory=dict,
        description="URL prefix → replacement, applied to every template image and checksum URL, e.g. "
        '{"https://cloud.debian.org/images/cloud/" = "http://mirror.lan/debian-cloud/"}',
    )

    @field_validator("mirrors")
    @classmethod
    def _urls(cls, value: dict[str, str]) -> dict[str, str]:
        for prefix, target in value.items():
            for url in (prefix, target):
                if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                    raise ValueError(f"{url!r} must be an http or https URL prefix")
        return value


def image_settings(runtime: Any) -> ImageSettings:
    """The runtime's ``[images]`` section (defaults when the built-in declaring it is absent)."""
    try:
        return runtime.settings.section(SECTION)
    except Exception:
        return ImageSettings.model_validate({})


@dataclass(frozen=True)
class CloudImage:
    """A template's cloud image (see the module docstring)."""

    url: str
    checksums: str
    name: str
    file: str
    user: str = ""

    @property
    def compression(self) -> str | None:
        """``xz`` when the download is compressed (FreeBSD's VM images), else ``None``."""
        return COMPRESSED.get(PurePosixPath(self.file).suffix)

    def mirrored(self, mirrors: dict[str, str]) -> CloudImage:
        """This image with ``mirrors`` applied to both URLs (the longest matching prefix wins)."""
        return CloudImage(mirror_url(self.url, mirrors), mirror_url(self.checksums, mirrors),
                          self.name, self.file, self.user)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "compression": self.compression}


def mirror_url(url: str, mirrors: dict[str, str]) -> str:
    """``url`` with the longest matching prefix of ``mirrors`` replaced."""
    for prefix in sorted(mirrors, key=len, reverse=True):
        if url.startswith(prefix):
            return mirrors[prefix] + url[len(prefix):]
    return url


def _last_part(url: str) -> str:
    return PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name


def parse_image(raw: object) -> CloudImage:
    """A template's ``[image]`` table.

    :raises ValidationErrors: paths inside the table (``image.url``).
    """
    from bhype_core.iso_fetch import check_url

    errors = ValidationErrors()
    if not isinstance(raw, dict):
        raise ValidationErrors([("image", "must be a table")])
    for key in sorted(set(raw) - IMAGE_KEYS):
        errors.add(f"image.{key}", "is not a known image key")
    for key in ("url", "checksums"):
        try:
            check_url(raw.get(key))
        except ValidationErrors as exc:
            errors.add(f"image.{key}", exc.errors[0].message)
    for key in ("name", "file", "user"):
        if key in raw and not isinstance(raw[key], str):
            errors.add(f"image.{key}", "must be a string")
    errors.raise_if_any()
    file = raw.get("file") or _last_part(raw["url"])
    name = raw.get("name") or (file.removesuffix(PurePosixPath(file).suffix)
                               if PurePosixPath(file).suffix in COMPRESSED else file)
    if not ISO_RE.match(name) or not is_image_name(name):
        errors.add("image.name", f"{name!r} must be a .qcow2, .raw or .img file name (the library's disk images)")
    if not ISO_RE.match(file):
        errors.add("image.file", f"{file!r} must be a plain file name")
    errors.raise_if_any()
    return CloudImage(raw["url"], raw["checksums"], name, file, raw.get("user", ""))


def template_image(runtime: Any, template: str) -> CloudImage:
    """Template ``template``'s image with the configured mirrors applied.

    :raises NotFound: no such template, or it names no cloud image.
    """
    from bhype_core.vm.services import template_catalog

    found = template_catalog(runtime).get(template)
    if found.image is None:
        raise NotFound(f"template {template!r} names no cloud image (add an [image] table to an admin template)")
    return found.image.mirrored(image_settings(runtime).mirrors)


def image_status(runtime: Any, template: str, datastore: str | None = None) -> dict[str, Any]:
    """What ``GET /api/v1/templates/{name}/image`` answers: the image and whether the library has it."""
    from bhype_core.isos import datastore_of, read_info
    from bhype_core.vm.services import open_datastore

    image = template_image(runtime, template)
    store = open_datastore(runtime, datastore)
    try:
        info = read_info(store, image.name)
    except NotFound:
        info = None
    return {"template": template, "datastore": datastore_of(store), "present": info is not None,
            "size": info.size if info else None, **image.to_dict()}


def download_text(url: str, allow: list[str], timeout: float, limit: int = CHECKSUM_FILE_LIMIT) -> str:
    """A small text file (a checksum file) through the fetch guard, at most ``limit`` bytes.

    :raises ~bhype_core.iso_fetch.FetchFailed: HTTP errors, connection errors, too big.
    """
    import urllib.error

    from bhype_core.fetch_guard import guarded_opener
    from bhype_core.iso_fetch import USER_AGENT, FetchFailed

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with guarded_opener(allow).open(request, timeout=timeout) as answer:
            data = answer.read(limit + 1)
    except urllib.error.HTTPError as exc:
        raise FetchFailed(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchFailed(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if len(data) > limit:
        raise FetchFailed(f"{url}: more than {limit} bytes; not a checksum file")
    return data.decode("utf-8", errors="replace")


def unpack_xz(source: Path, target: Path, limit: int, context: Any) -> None:
    """Decompress ``source`` into ``target`` (created 0644, never followed), at most ``limit`` bytes."""
    from bhype_core.iso_fetch import FetchFailed
    from bhype_core.safe_files import open_regular

    done = 0
    # Both through descriptors: never a planted link, FIFO or hard link (issue 11).
    fd = open_regular(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644, single_link=True)
    packed = os.fdopen(open_regular(source), "rb")
    with lzma.open(packed, "rb") as compressed, packed, os.fdopen(fd, "wb") as out:
        while chunk := compressed.read(1 << 20):
            done += len(chunk)
            if done > limit:
                raise FetchFailed(f"the unpacked image passed isos.max_size ({limit} bytes)")
            out.write(chunk)
            if done % (256 << 20) < len(chunk):
                context.progress(95, f"unpacking: {done >> 20} MiB")
                context.check_cancelled()


def fetch_image(context: Any, template: str, name: str | None = None, datastore: str | None = None) -> dict[str, Any]:
    """Task ``image.fetch``: put template ``template``'s cloud image into ``datastore``'s library
    once (``name`` is the library name the API resolved, for the lock; it must still match)."""
    from bhype_core.checksums import file_digests, find_checksum
    from bhype_core.iso_fetch import download, fetch_iso
    from bhype_core.isos import datastore_of, import_file, iso_dir, iso_settings
    from bhype_core.vm.services import open_datastore

    image = template_image(context.runtime, template)
    if name is not None and name != image.name:
        raise ValidationErrors([("name", f"template {template} now names image {image.name}, not {name}: retry")])
    store = open_datastore(context.runtime, datastore)
    result = {"template": template, "image": image.name, "datastore": datastore_of(store), "url": image.url}
    if store.iso_path(image.name).exists():
        message = f"{image.name} is already in the library of datastore {datastore_of(store)}: nothing to do"
        context.progress(100, message)
        return {**result, "fetched": False, "message": message}
    settings = iso_settings(context.runtime)
    context.progress(1, f"reading {image.checksums}")
    text = download_text(image.checksums, settings.fetch_allow, settings.fetch_timeout)
    expected = find_checksum(text, image.file, image.checksums)
    context.log(f"{image.checksums}: {expected.algorithm} {expected.hex} for {image.file}")
    if image.compression is None:
        info = fetch_iso(context, image.url, image.name, datastore=datastore,
                         **{expected.algorithm: expected.hex})
        message = f"{image.name} fetched into the library ({info['size']} bytes, {expected.algorithm} verified)"
        context.progress(100, message)
        return {**result, "fetched": True, "message": message, "sha256": info["sha256"]}
    # Compressed (FreeBSD's .qcow2.xz): verify the download, unpack, add the unpacked file.
    packed = store.iso_path(image.file)  # only its .partial- file is written
    packed.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    partial = download(context, image.url, packed, settings.max_size, settings.fetch_attempts,
                       settings.fetch_timeout, settings.fetch_allow)
    context.progress(90, f"verifying the {expected.algorithm}")
    actual = file_digests(partial, (expected.algorithm,))[expected.algorithm]
    if actual != expected.hex:
        partial.unlink(missing_ok=True)
        partial.with_name(partial.name + ".json").unlink(missing_ok=True)
        raise ValidationErrors([(expected.algorithm, f"checksum mismatch: {image.checksums} says {expected.hex}, "
                                                     f"the download has {actual}")])
    unpacked = iso_dir(store, image.name).with_name(f".unpack-{image.name}")
    try:
        unpack_xz(partial, unpacked, settings.max_size, context)
        sha256 = file_digests(unpacked)["sha256"]
        info = import_file(store, image.name, unpacked, sha256, image.url, context.user)
    finally:
        unpacked.unlink(missing_ok=True)
        partial.unlink(missing_ok=True)
        partial.with_name(partial.name + ".json").unlink(missing_ok=True)
    message = f"{image.name} fetched and unpacked into the library ({info.size} bytes, {expected.algorithm} verified)"
    context.progress(100, message)
    return {**result, "fetched": True, "message": message, "sha256": sha256}


def image_lock(arguments: dict[str, Any]) -> list[str]:
    """``iso:<library name>``: the same lock ``iso.fetch``/``iso.delete`` take for that name."""
    name = arguments.get("name")
    return [f"iso:{name}"] if isinstance(name, str) and name and " " not in name else []
