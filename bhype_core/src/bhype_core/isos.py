"""The ISO library: each datastore's ISO folder, with a checksum record per ISO.

ISOs live where the datastore keeps them (``store.iso_path(name)``, ``<root>/isos/`` for
directory storage). Beside each, ``.<name>.json`` records its size, SHA-256, where it came
from and who added it; an ISO an admin copied in by hand has no record and shows an unknown
checksum. Files starting with ``.`` (records, ``.partial-`` downloads) never match the ISO
name rule, so they are never listed or attached.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator
from sqlmodel import select

from bhype_core.config import Section
from bhype_core.errors import Conflict, NotFound, ValidationErrors
from bhype_core.safe_files import adopt, open_regular
from bhype_core.spec_parts import ISO_RE

SECTION = "isos"
CHUNK = 1 << 20
SHA256_HEX = 64


class IsoSettings(Section):
    """``[isos]``: limits of the ISO library."""

    max_size: int = Field(16 << 30, gt=0, description="largest ISO accepted (upload or fetch), bytes")
    fetch_timeout: float = Field(30.0, gt=0, le=600, description="seconds without data before a fetch retries")
    fetch_attempts: int = Field(5, ge=1, le=50, description="connections a fetch tries before it fails")
    staged_max_age: float = Field(24 * 3600.0, gt=0, description="seconds before a staged upload no import "
                                                                  "names is removed (iso.clean-uploads)")
    fetch_allow: list[str] = Field(
        default_factory=list,
        description="networks iso.fetch may reach although not global (loopback, private, link-local, "
        "…), e.g. [\"192.168.10.0/24\"] for a local mirror; everything else non-global is refused",
    )

    @field_validator("fetch_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        from bhype_core.fetch_guard import parse_networks

        parse_networks(value)  # ValueError names the bad entry
        return value


def iso_settings(runtime: Any) -> IsoSettings:
    """The runtime's ``[isos]`` section (defaults when the built-in declaring it is absent)."""
    try:
        return runtime.settings.section(SECTION)
    except Exception:
        return IsoSettings.model_validate({})


@dataclass(frozen=True)
class IsoInfo:
    """One ISO of the library."""

    name: str
    datastore: str
    size: int
    sha256: str | None = None
    source: str | None = None
    added: str | None = None
    added_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def datastore_of(store: Any) -> str:
    """The datastore name of ``store`` (for messages and VM lookups)."""
    return str(getattr(store, "datastore", "default"))


def check_iso_name(name: object, field: str = "name") -> str:
    """An ISO file name: letters, digits, ``.``, ``_``, ``+``, ``-`` (no directories).

    :raises ValidationErrors: naming ``field``.
    """
    if not isinstance(name, str) or not ISO_RE.match(name):
        raise ValidationErrors([(field, "must be a file name of letters, digits, '.', '_', '+' or '-' "
                                        "starting with a letter or digit")])
    return name


def check_sha256(value: object, field: str = "sha256") -> str | None:
    """A SHA-256 given as 64 hex digits (any case; ``None`` = not given)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) != SHA256_HEX or any(c not in "0123456789abcdefABCDEF" for c in value):
        raise ValidationErrors([(field, "must be 64 hexadecimal digits (a SHA-256)")])
    return value.lower()


def record_path(iso: Path) -> Path:
    """Where the record of ``iso`` lives (``.<name>.json`` beside it)."""
    return iso.with_name(f".{iso.name}.json")


def partial_path(iso: Path) -> Path:
    """Where a download of ``iso`` collects its bytes (``.partial-<name>``)."""
    return iso.with_name(f".partial-{iso.name}")


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """The SHA-256 of ``path`` (``progress(bytes_done)`` after each MiB)."""
    digest, done = hashlib.sha256(), 0
    with os.fdopen(open_regular(path), "rb") as handle:  # never a planted link or FIFO
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done)
    return digest.hexdigest()


def read_info(store: Any, name: str) -> IsoInfo:
    """The library entry for ISO ``name`` of ``store``.

    :raises NotFound: no such ISO.
    """
    path = store.iso_path(check_iso_name(name))
    if not path.is_file():
        raise NotFound(f"no ISO named {name!r} in datastore {datastore_of(store)}")
    try:
        record = json.loads(record_path(path).read_text())
    except (OSError, ValueError):
        record = {}
    size = path.stat().st_size
    known: dict[str, Any] = record if record.get("size") == size else {}  # replaced by hand: the record is stale
    return IsoInfo(name, datastore_of(store), size, known.get("sha256"), known.get("source"),
                   known.get("added"), known.get("added_by"))


def list_isos(store: Any) -> list[IsoInfo]:
    """Every ISO of ``store``, by name."""
    return [read_info(store, name) for name in store.isos()]


def write_record(path: Path, sha256: str, source: str | None, user: str | None) -> IsoInfo:
    """Record ``path``'s checksum and origin beside it."""
    size, added = path.stat().st_size, datetime.now(UTC).isoformat(timespec="seconds")
    info = {"size": size, "sha256": sha256, "source": source, "added": added, "added_by": user}
    fd = open_regular(record_path(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o644, single_link=True)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(info))
    return IsoInfo(path.name, "", size, sha256, source, added, user)


def vms_using(runtime: Any, datastore: str, name: str) -> list[str]:
    """VMs of ``datastore`` whose spec attaches ISO ``name`` (empty without the VM layer)."""
    try:
        from bhype_core.db.session import session
        from bhype_core.vm.models import VM
    except ImportError:
        return []
    with session(runtime) as db:
        rows = db.exec(select(VM.name, VM.spec).where(VM.datastore == datastore)).all()
    return sorted(vm for vm, spec in rows if (spec or {}).get("cdrom") == name)


def ensure_absent(store: Any, name: str) -> Path:
    """The path for a new ISO ``name``.

    :raises Conflict: an ISO of that name exists.
    """
    path = store.iso_path(check_iso_name(name))
    if path.exists():
        raise Conflict(f"ISO {name!r} already exists in datastore {datastore_of(store)}: delete it first")
    return path


def iso_dir(store: Any, name: str) -> Path:
    """The ISO folder of ``store``, created if needed; returns the path for ``name``."""
    path = ensure_absent(store, name)
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    return path


def import_file(store: Any, name: str, source_file: Path, sha256: str, source: str | None, user: str | None) -> IsoInfo:
    """Move a verified file into the library as ``name`` (a copy when on another file system).

    ``source_file`` lies where the unprivileged API user writes (the uploads directory): it is
    taken only if it is a single-link regular file of that directory's owner, through one
    descriptor (:func:`bhype_core.safe_files.adopt`), never by following a planted symlink.

    :raises Conflict: ``name`` exists already.
    :raises UnsafeFile: ``source_file`` is a symlink, FIFO, hard link or someone else's file.
    """
    target = iso_dir(store, name)
    staging = partial_path(target)
    staging.unlink(missing_ok=True)  # a leftover of an earlier attempt (the library is root's)
    adopt(source_file, staging, mode=0o644)
    if target.exists():  # raced by another task: keep theirs
        staging.unlink()
        raise Conflict(f"ISO {name!r} already exists in datastore {datastore_of(store)}")
    os.replace(staging, target)
    info = write_record(target, sha256, source, user)
    return IsoInfo(name, datastore_of(store), info.size, sha256, source, info.added, user)


def delete_iso(runtime: Any, store: Any, name: str) -> None:
    """Remove ISO ``name`` and its record.

    :raises NotFound: no such ISO.
    :raises Conflict: a VM attaches it (named in the message).
    """
    path = store.iso_path(check_iso_name(name))
    if not path.is_file():
        raise NotFound(f"no ISO named {name!r} in datastore {datastore_of(store)}")
    users = vms_using(runtime, datastore_of(store), name)
    if users:
        raise Conflict(f"ISO {name} is attached to VM(s) {', '.join(users)}: detach it first")
    path.unlink()
    record_path(path).unlink(missing_ok=True)


class TooLarge(ValidationErrors):
    """An upload or download is bigger than ``isos.max_size``."""

    code = "too_large"
    http_status = 413


UPLOADS_DIR = "uploads"
UPLOAD_ID_LENGTH = 32


def uploads_dir(runtime: Any) -> Path:
    """Where the API stages uploads before the ``iso.import`` task moves them in."""
    return Path(runtime.settings.core.data_dir) / UPLOADS_DIR


def upload_path(runtime: Any, upload: object) -> Path:
    """The staged file of upload ``upload`` (32 hex digits).

    :raises ValidationErrors: a malformed id (it ends up in a path).
    """
    hex_digits = "0123456789abcdef"
    if not isinstance(upload, str) or len(upload) != UPLOAD_ID_LENGTH or any(c not in hex_digits for c in upload):
        raise ValidationErrors([("upload", "must be an upload id of 32 lower-case hex digits")])
    return uploads_dir(runtime) / f"{upload}.iso"


def import_upload(
    context: Any, name: str, upload: str, sha256: str, datastore: str | None = None
) -> dict[str, Any]:
    """Task ``iso.import``: move an upload the API staged (and checksummed) into the library."""
    from bhype_core.iso_staging import UNDO_IMPORT
    from bhype_core.vm.services import open_datastore

    staged = upload_path(context.runtime, upload)
    try:
        store = open_datastore(context.runtime, datastore)
        existed = os.path.lexists(store.iso_path(check_iso_name(name)))
        # A crash between the moves leaves a .partial- file: recovery removes it (issue 11).
        context.intent(UNDO_IMPORT, f"import of ISO {name}", datastore=datastore, name=name, existed=existed)
        info = import_file(store, check_iso_name(name), staged, check_sha256(sha256) or "", "upload", context.user)
    finally:
        staged.unlink(missing_ok=True)
    context.progress(100, f"{name}: {info.size} bytes, sha256 {info.sha256}")
    return info.to_dict()


def delete_iso_task(context: Any, name: str, datastore: str | None = None) -> dict[str, Any]:
    """Task ``iso.delete``: remove an ISO no VM attaches."""
    from bhype_core.vm.services import open_datastore

    store = open_datastore(context.runtime, datastore)
    delete_iso(context.runtime, store, name)
    context.progress(100, f"{name} deleted")
    return {"name": name, "datastore": datastore_of(store)}


def iso_lock(arguments: dict[str, Any]) -> list[str]:
    """``iso:<name>``: one task at a time per ISO name (across datastores, which is simpler
    and costs nothing: names rarely repeat between datastores)."""
    name = arguments.get("name")
    return [f"iso:{name}"] if isinstance(name, str) and name and " " not in name else []
