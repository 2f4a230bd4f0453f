"""Cloud images as disk sources: read them with ``qemu-img info``, write them with ``qemu-img convert``.

A cloud image lives in the datastore's ISO library folder (``<datastore>/isos/``, beside the
ISOs: one library, one upload/fetch/delete path) and is recognised by its extension:
``.qcow2`` is read as qcow2, ``.raw`` and ``.img`` as raw. The format always comes from the
extension and is passed to qemu-img with ``-f``, never probed: a "raw" upload carrying a
qcow2 header could otherwise make qemu-img open a backing file anywhere on the host.

Commands follow qemu-img(1) (QEMU 7.2): ``info [-f FMT] [--output=json] FILENAME`` and
``convert -n [--target-is-zero] -f FMT -O OUTPUT_FMT FILENAME OUTPUT_FILENAME``. On FreeBSD
qemu-img comes from the ``qemu-tools`` package (port emulators/qemu, flavor tools; not in our
FreeBSD reference: check on a real host) or the full ``qemu`` package; on
Debian from ``qemu-utils``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bhype_core.errors import BhypeError, CommandError, ValidationErrors

QEMU_IMG = "qemu-img"
# Extension -> qemu-img format name (qemu-img(1) "Disk image file formats").
IMAGE_FORMATS = {".qcow2": "qcow2", ".raw": "raw", ".img": "raw"}
INFO_TIMEOUT = 60.0
# A multi-GiB image on a slow disk takes minutes; an hour means the host is in trouble.
CONVERT_TIMEOUT = 3600.0
INSTALL_HINT = "install qemu-img (FreeBSD: pkg install qemu-tools, or qemu; Debian: apt-get install qemu-utils)"


@dataclass(frozen=True)
class ImageInfo:
    """What ``qemu-img info`` says about an image: its format and guest-visible size."""

    format: str
    virtual_size: int


def is_image_name(name: str) -> bool:
    """``name`` has a disk image extension (``.qcow2``, ``.raw``, ``.img``)."""
    return image_format(name) is not None


def image_format(name: str) -> str | None:
    """The qemu-img format of ``name`` by its extension, ``None`` for anything else."""
    return IMAGE_FORMATS.get(Path(name).suffix.lower())


def parse_qemu_img_info(text: str) -> ImageInfo:
    """Parse ``qemu-img info --output=json`` (qemu-img(1); the ``ImageInfo`` QAPI object).

    :raises BhypeError: not JSON, no format/virtual-size, or an image that reads other files
        (a backing file or a qcow2 external data file): converting it would copy data from
        outside the library.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BhypeError(f"qemu-img info printed no JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BhypeError("qemu-img info printed JSON that is not an object")
    fmt, size = data.get("format"), data.get("virtual-size")
    if not isinstance(fmt, str) or isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise BhypeError("qemu-img info gave no format or virtual-size")
    if "backing-filename" in data or "full-backing-filename" in data:
        raise BhypeError(f"the image has a backing file ({data.get('backing-filename')}); use a standalone image")
    specific = (data.get("format-specific") or {}).get("data") or {}
    if isinstance(specific, dict) and "data-file" in specific:
        raise BhypeError("the image keeps its data in an external file; use a standalone image")
    return ImageInfo(fmt, size)


def info_argv(path: Path, fmt: str) -> list[str]:
    """qemu-img(1) ``info -f FMT --output=json FILENAME``."""
    return [QEMU_IMG, "info", "-f", fmt, "--output=json", str(path)]


def convert_argv(source: Path, fmt: str, target: Path) -> list[str]:
    """qemu-img(1) ``convert``: ``-n`` writes into the volume the storage backend already
    created at the requested size (a sparse file or a zvol, which qemu-img cannot create),
    ``--target-is-zero`` tells it that fresh volume reads as zeros so holes stay holes."""
    return [QEMU_IMG, "convert", "-n", "--target-is-zero", "-f", fmt, "-O", "raw", str(source), str(target)]


def _run(runner: Any, argv: list[str], timeout: float, what: str) -> Any:
    try:
        return runner.run(argv, timeout=timeout)
    except CommandError as exc:
        if exc.reason.startswith("command not found"):
            raise BhypeError(f"{what}: qemu-img is not installed: {INSTALL_HINT}") from exc
        raise BhypeError(f"{what} failed: {exc}") from exc


def inspect_image(runner: Any, path: Path, name: str) -> ImageInfo:
    """``qemu-img info`` of library image ``path`` (format from ``name``'s extension)."""
    fmt = image_format(name)
    if fmt is None:
        raise ValidationErrors([("source", f"{name!r} is not a .qcow2, .raw or .img disk image")])
    result = _run(runner, info_argv(path, fmt), INFO_TIMEOUT, f"reading image {name}")
    try:
        return parse_qemu_img_info(result.stdout)
    except BhypeError as exc:
        raise BhypeError(f"image {name}: {exc}") from None


def convert_image(runner: Any, source: Path, info: ImageInfo, target: Path) -> None:
    """Write image ``source`` as raw into the existing, zero-filled volume ``target``."""
    _run(runner, convert_argv(source, info.format, target), CONVERT_TIMEOUT, f"converting {source.name}")
