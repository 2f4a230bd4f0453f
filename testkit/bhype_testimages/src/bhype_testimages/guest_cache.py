"""The cache of built test guests outside the repository: location, locking, atomic publishing.

Layout under ``$BHYPE_TEST_CACHE`` (default ``~/.cache/bhype-test``)::

    apt/                 private apt configuration, lists and downloaded .deb files
    <kind>/<key>/        one finished build (``manifest.json`` written last)
    <kind>/.tmp-*        a build in progress (renamed into place when complete)
    <kind>/build.log     every request: reused or built, by which process, how long, failures
    locks/<kind>.lock    flock(2) held while checking for and building an entry
    locks/apt.lock       flock(2) held while using the shared .deb directory
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
BUILD_LOG = "build.log"


def cache_root() -> Path:
    """``$BHYPE_TEST_CACHE`` or ``~/.cache/bhype-test`` (created if missing)."""
    configured = os.environ.get("BHYPE_TEST_CACHE")
    root = Path(configured) if configured else Path.home() / ".cache" / "bhype-test"
    root.mkdir(parents=True, exist_ok=True)
    return root


def safe_key(*parts: str) -> str:
    """A directory name from version strings (``1:1.35.0-4`` -> ``1_1.35.0-4``)."""
    return "_".join(re.sub(r"[^A-Za-z0-9.+-]+", "-", part) for part in parts)


@contextmanager
def build_lock(root: Path, kind: str) -> Iterator[None]:
    """Hold an exclusive flock(2) on ``locks/<kind>.lock``: a second test process building the
    same guest waits here, then finds the first one's result."""
    locks = root / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with (locks / f"{kind}.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def find_entry(kind_dir: Path, suffix: str) -> Path | None:
    """The most recently built complete entry whose name ends with ``suffix`` (a cached guest
    stays valid for what it was built from, even after Debian has replaced its kernel)."""
    if not kind_dir.is_dir():
        return None
    entries = [
        path
        for path in kind_dir.iterdir()
        if not path.name.startswith(".") and path.name.endswith(suffix) and (path / MANIFEST).is_file()
    ]
    return max(entries, key=lambda path: (path / MANIFEST).stat().st_mtime, default=None)


def read_manifest(entry: Path) -> dict[str, Any]:
    """The manifest a build wrote (versions, file names, timings)."""
    return json.loads((entry / MANIFEST).read_text())


@contextmanager
def staging_dir(kind_dir: Path) -> Iterator[Path]:
    """A fresh ``.tmp-*`` build directory, removed if the build fails. Call only under
    :func:`build_lock`; leftovers of crashed builds are removed first."""
    kind_dir.mkdir(parents=True, exist_ok=True)
    for stale in kind_dir.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=kind_dir))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def publish(staging: Path, entry: Path, manifest: dict[str, Any]) -> Path:
    """Write the manifest last and rename ``staging`` to ``entry`` in one step, so readers
    never see a half-built guest."""
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    staging.chmod(0o755)  # mkdtemp made it private; the finished guest is for every user
    if entry.exists():
        shutil.rmtree(entry)  # a rebuild of the same key (BHYPE_TEST_REBUILD)
    os.rename(staging, entry)
    return entry


def cached_entry(root: Path, kind: str, suffix: str, build: Callable[[Path, Path, str], Path]) -> Path:
    """The cache entry of ``kind`` whose name ends in ``suffix``, built by
    ``build(root, kind_dir, suffix)`` under the kind's lock when there is none (or when
    ``BHYPE_TEST_REBUILD`` is set).

    A second process asking meanwhile waits on the lock and then reuses the first one's entry.
    Every request is recorded in ``<kind>/build.log`` (a failed build with its traceback), so a
    guest that could not be built can be diagnosed after the test run that needed it.
    """
    kind_dir = root / kind
    kind_dir.mkdir(parents=True, exist_ok=True)
    log = BuildLog(kind_dir / BUILD_LOG)
    log.write(f"{kind}{suffix}: waiting for the build lock")
    with build_lock(root, kind):
        entry = None if os.environ.get("BHYPE_TEST_REBUILD") else find_entry(kind_dir, suffix)
        if entry is not None:
            log.write(f"reused {entry.name}")
            return entry
        log.write("building")
        started = time.monotonic()
        try:
            entry = build(root, kind_dir, suffix)
        except BaseException:
            log.write(f"build FAILED after {time.monotonic() - started:.1f} s:\n{traceback.format_exc()}")
            raise
        log.write(f"built {entry.name} in {time.monotonic() - started:.1f} s")
        return entry


class BuildLog:
    """Appends time-stamped lines, with the process id, to a cache kind's ``build.log``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, message: str) -> None:
        """One line (or a block, for a traceback); a full disk must not break the build."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(f"{stamp} pid {os.getpid()}: {message}\n")
        except OSError:
            pass
