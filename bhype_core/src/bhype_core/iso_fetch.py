"""Downloading an ISO from a URL into the library: resumable, size-limited, checksum-verified.

Bytes collect in ``.partial-<name>`` next to the final file. A dropped connection is retried
with ``Range: bytes=<have>-`` (RFC 9110 14.2) and ``If-Range`` set to the validator the first
answer gave (ETag, else Last-Modified), so a file that changed on the server starts over
instead of being spliced. A server that answers a range request with 200 sends the whole file
again: the partial is truncated. A task that failed after all its attempts leaves the partial,
so retrying the task resumes it; a checksum mismatch removes it.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

from bhype_core.errors import BhypeError, ValidationErrors
from bhype_core.fetch_guard import guarded_opener
from bhype_core.isos import (
    CHUNK,
    IsoInfo,
    check_iso_name,
    check_sha256,
    datastore_of,
    iso_dir,
    iso_settings,
    partial_path,
    write_record,
)
from bhype_core.safe_files import UnsafeFile, chmod_regular, open_regular, read_bytes

META_LIMIT = 64 << 10  # the partial's JSON note: a URL and two headers
USER_AGENT = "bhype-iso-fetch"
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class FetchFailed(BhypeError):
    """The download could not be completed (HTTP error, too big, kept dropping)."""

    code = "fetch_failed"
    http_status = 502


def check_url(url: object) -> str:
    """An ``http``/``https`` URL with a host and no user information.

    :raises ValidationErrors: naming ``url``.
    """
    if not isinstance(url, str) or len(url) > 2048:
        raise ValidationErrors([("url", "must be an http or https URL of at most 2048 characters")])
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationErrors([("url", "must be an http or https URL with a host")])
    if parts.username or parts.password:
        raise ValidationErrors([("url", "must not contain credentials (they would be stored with the task)")])
    return url


class _Partial:
    """The partial file and what the server said about it (kept in ``<partial>.json``)."""

    def __init__(self, path: Path, url: str) -> None:
        self.path, self.url = path, url
        self.meta_path = path.with_name(path.name + ".json")
        try:
            meta = json.loads(read_bytes(self.meta_path, META_LIMIT))
        except (OSError, ValueError, UnsafeFile):
            meta = {}
        same = meta.get("url") == url and path.exists()
        self.validator: str | None = meta.get("validator") if same else None
        self.total: int | None = meta.get("total") if same else None
        if not same:
            self.truncate()

    @property
    def size(self) -> int:
        return os.lstat(self.path).st_size

    def truncate(self) -> None:
        """Empty (or create) the partial file, never through a symlink."""
        os.close(open_regular(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, single_link=True))

    def append(self) -> BinaryIO:
        """The partial file open for appending (regular file only, not followed)."""
        return os.fdopen(open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, single_link=True), "ab")

    def save(self) -> None:
        meta = json.dumps({"url": self.url, "validator": self.validator, "total": self.total})
        fd = open_regular(self.meta_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, single_link=True)
        with os.fdopen(fd, "w") as handle:
            handle.write(meta)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.meta_path.unlink(missing_ok=True)


def _request(
    url: str, partial: _Partial, timeout: float, opener: urllib.request.OpenerDirector
) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT}
    if partial.size:
        headers["Range"] = f"bytes={partial.size}-"
        if partial.validator:
            headers["If-Range"] = partial.validator
    try:
        return opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and partial.total is not None and partial.size == partial.total:
            raise _Complete() from None  # we already have every byte
        raise FetchFailed(f"{url}: HTTP {exc.code} {exc.reason}") from None


class _Complete(Exception):
    pass


def _receive(answer: http.client.HTTPResponse, partial: _Partial, limit: int, context: Any) -> None:
    offset = partial.size
    if answer.status == 206 and offset:
        match = _CONTENT_RANGE.match(answer.headers.get("Content-Range", ""))
        if not match or int(match.group(1)) != offset:
            raise FetchFailed(f"server sent range {answer.headers.get('Content-Range')!r}, asked for {offset}-")
        if match.group(3) != "*":
            partial.total = int(match.group(3))
    else:  # 200: the whole file (no range support, or the file changed): start over
        offset = 0
        length = answer.headers.get("Content-Length")
        partial.total = int(length) if length and length.isdigit() else None
        partial.validator = answer.headers.get("ETag") or answer.headers.get("Last-Modified")
        partial.truncate()
    partial.save()
    if partial.total is not None and partial.total > limit:
        partial.discard()
        raise FetchFailed(f"the ISO is {partial.total} bytes, more than isos.max_size ({limit})")
    last = time.monotonic()
    with partial.append() as handle:
        while chunk := answer.read(CHUNK):
            handle.write(chunk)
            offset += len(chunk)
            if offset > limit:
                partial.discard()
                raise FetchFailed(f"the download passed isos.max_size ({limit} bytes)")
            if time.monotonic() - last > 1.0:
                last = time.monotonic()
                handle.flush()
                _progress(context, offset, partial.total)
                context.check_cancelled()
    if partial.total is not None and offset < partial.total:
        raise ConnectionError(f"connection closed after {offset} of {partial.total} bytes")


def _progress(context: Any, done: int, total: int | None) -> None:
    if total:
        context.progress(min(90.0, 90.0 * done / total), f"{done >> 20} of {total >> 20} MiB")
    else:
        context.progress(5, f"{done >> 20} MiB")


def download(
    context: Any, url: str, target: Path, limit: int, attempts: int, timeout: float, allow: Sequence[str] = ()
) -> Path:
    """Fetch ``url`` into ``target``'s partial file, resuming after dropped connections;
    returns the partial's path once every byte is there.

    Only global addresses are fetched from, plus the networks in ``allow``
    (:mod:`bhype_core.fetch_guard`: each host resolved once per connection and checked, every
    redirect hop too).

    :raises FetchFailed: an HTTP error, a file over ``limit``, or ``attempts`` connections
        that all dropped (the partial stays for a retry).
    :raises ~bhype_core.fetch_guard.TargetRefused: a host or redirect the guard refuses.
    """
    opener = guarded_opener(allow)
    partial = _Partial(partial_path(target), url)
    for attempt in range(1, attempts + 1):
        try:
            with _request(url, partial, timeout, opener) as answer:
                if partial.size:
                    context.log(f"resuming at byte {partial.size} (attempt {attempt}, HTTP {answer.status})")
                _receive(answer, partial, limit, context)
            return partial.path
        except _Complete:
            return partial.path
        except (http.client.HTTPException, urllib.error.URLError, OSError) as exc:
            # ConnectionError and TimeoutError are OSErrors: a dropped or stalled connection.
            context.log(f"attempt {attempt} of {attempts} interrupted after {partial.size} bytes: {exc}", "warning")
            context.check_cancelled()
            time.sleep(min(5.0, 0.5 * attempt))
    raise FetchFailed(f"{url}: gave up after {attempts} interrupted attempts ({partial.size} bytes kept; "
                      "retry the task to resume)")


def fetch_iso(
    context: Any, url: str, name: str, sha256: str | None = None, datastore: str | None = None,
    sha512: str | None = None,
) -> dict[str, Any]:
    """Task ``iso.fetch``: download ``url`` as ISO ``name`` into ``datastore``'s library,
    verifying ``sha256`` and/or ``sha512`` when given (strongly advised: it is what proves the
    download; Debian and FreeBSD publish SHA-512 only). The library records the SHA-256."""
    from bhype_core.checksums import check_digest, file_digests
    from bhype_core.vm.services import open_datastore

    url, name, expected = check_url(url), check_iso_name(name), check_sha256(sha256)
    expected512 = check_digest(sha512, "sha512", "sha512")
    runtime = context.runtime
    settings = iso_settings(runtime)
    store = open_datastore(runtime, datastore)
    target = iso_dir(store, name)
    context.progress(1, f"downloading {url}")
    path = download(context, url, target, settings.max_size, settings.fetch_attempts, settings.fetch_timeout,
                    settings.fetch_allow)
    context.progress(90, "verifying the checksum")
    digests = file_digests(path, ("sha256", "sha512") if expected512 else ("sha256",))
    actual = digests["sha256"]
    for field, want in (("sha256", expected), ("sha512", expected512)):
        if want and digests[field] != want:
            _Partial(path, url).discard()
            raise ValidationErrors([(field, f"checksum mismatch: expected {want}, the download has {digests[field]}")])
    if not expected and not expected512:
        context.log(f"no checksum given; the download's SHA-256 is {actual}", "warning")
    if target.exists():
        raise ValidationErrors([("name", f"ISO {name!r} appeared while downloading; delete it first")])
    chmod_regular(path, 0o644)  # through a descriptor: never the target of a planted link
    path.replace(target)
    path.with_name(path.name + ".json").unlink(missing_ok=True)
    info = write_record(target, actual, url, context.user)
    context.progress(100, f"{name}: {info.size} bytes, sha256 {actual}")
    return IsoInfo(name, datastore_of(store), info.size, actual, url, info.added, context.user).to_dict()
