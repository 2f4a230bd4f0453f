"""One stored file of a point on a file target written onto the datastore's host, and checked there.

The point is read from the target where the target is reached: this machine
(``runtime.local_runner``), which holds the target's secrets. The disk is on the datastore's
host (``runtime.runner``; the same machine unless ``[runner]`` drives another host over SSH).
Whether a disk is a device (a zvol) or an image file is what the datastore says
(:attr:`Volume.device <bhype_core.plugin_api.Volume>`), never a look at this machine's
file system.

* **Datastore here** (the usual FreeBSD host): rsync fetches from the target straight into
  the disk. A device is written in place with its delta algorithm (``--inplace
  --write-devices --no-whole-file``, rsync(1)); a file goes to ``.<name>.restore`` next to the
  disk, is checked chunk by chunk and renamed over it.
* **Datastore on another host**: rsync fetches into a sparse staging file here, checked chunk
  by chunk against the manifest *before* the datastore changes (a damaged point leaves the
  VM's disks as they were); the staged image then goes through the runner's ``pipe``: ``dd
  if=IMAGE bs=1M`` here into ``dd of=DISK bs=1M conv=notrunc,fsync`` there (dd(1), GNU and
  FreeBSD 13+; ``fsync`` so a write refused late, a zvol over its quota, fails the copy).
  A freshly created zvol reads as zeros, so there ``conv=sparse`` seeks over all-zero blocks
  instead of writing them (where that dd has it: not busybox's); an existing zvol gets every
  block. A file goes to
  ``.<name>.restore`` (``conv=sparse``, then ``truncate -s SIZE``, truncate(1)) and is moved
  over the disk with ``mv -f``.

Either way the written disk is then read back **on the datastore's host** and its sha256 over
the manifest's size compared with the manifest's: ``sha256sum DISK`` (``sha256 -q`` on
FreeBSD, sha256(1)) when the disk has exactly that size, else ``head -c SIZE DISK | sha256sum``
(a disk grown since the backup; head(1) ``-c``, GNU and FreeBSD) through the runner's ``pipe``.
Only the digest comes back.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bhype_backup.endpoint import Endpoint
from bhype_backup.manifest import FileEntry, check_file
from bhype_core.plugin_api import (
    BhypeError,
    Cancelled,
    CommandCancelled,
    TransferFailed,
    Volume,
    rsync_argv,
    run_rsync,
    task_progress,
)

BLOCK = "1M"  # dd block size: the unit of "all zero, seek over it"
TIMEOUT = 7 * 24 * 3600


class RestoreMismatch(BhypeError):
    """A restored file does not match the manifest (the target changed it, or it is damaged)."""

    code = "restore_mismatch"
    http_status = 409


def datastore_is_here(runtime: Any) -> bool:
    """Whether the datastore's host is this machine (``runtime.local_runner`` *is*
    ``runtime.runner`` when ``[runner] target = "local"``)."""
    return runtime.runner is runtime.local_runner


def fetch(context: Any, endpoint: Endpoint, point: Any, entry: FileEntry, destination: Path, *, runner: Any,
          device: bool, label: str, start: float, span: float) -> None:
    """rsync stored file ``entry`` of ``point`` to ``destination`` with ``runner`` (a new file,
    sparse; or with ``device`` a device written in place), no check."""
    options = endpoint.rsync_options()
    options.pop("windows", None)  # the receiving side is POSIX: modes come from the manifest
    source = endpoint.url(f"{point.path}/{entry.stored}", directory=False)
    if device:
        argv = rsync_argv([source], str(destination), **options, inplace=True, write_devices=True, recursive=False)
    else:
        argv = rsync_argv([source], str(destination), **options, inplace=False, sparse=True, recursive=False)
    run_rsync(runner, argv, on_progress=task_progress(context, label, start=start, span=span),
              cancel=context.cancel_requested, timeout=TIMEOUT)


def fetch_checked(context: Any, endpoint: Endpoint, point: Any, entry: FileEntry, destination: Path, *,
                  label: str, start: float, span: float) -> None:
    """:func:`fetch` to a file on this machine, then every chunk compared with the manifest.

    :raises RestoreMismatch: a chunk differs (the file is left for the caller to remove).
    """
    fetch(context, endpoint, point, entry, destination, runner=context.runtime.local_runner, device=False,
          label=label, start=start, span=span)
    bad = check_file(destination, entry)
    if bad:
        raise RestoreMismatch(f"{label}: {len(bad)} chunk(s) differ from the manifest (first at chunk {bad[0]})")


def write_disk(context: Any, endpoint: Endpoint, point: Any, entry: FileEntry, volume: Volume, staging: Path, *,
               fresh: bool, label: str, start: float, span: float) -> None:
    """Make disk ``volume`` (on the datastore's host) hold stored disk ``entry`` of ``point``,
    proven equal to the manifest there.

    :param fresh: the disk was just created (a zvol then reads as zeros: zero blocks are skipped).
    :param staging: a private directory on this machine (used when the datastore is elsewhere).
    :raises RestoreMismatch: the point or the written disk differs from the manifest.
    :raises TransferFailed: rsync or the copy to the datastore's host failed.
    """
    runtime = context.runtime
    path = Path(volume.path)
    if datastore_is_here(runtime):
        if volume.device:
            fetch(context, endpoint, point, entry, path, runner=runtime.runner, device=True, label=label,
                  start=start, span=span * 0.8)
            check_on_datastore(context, path, entry, volume.size, label)
            return
        partial = path.with_name(f".{path.name}.restore")
        try:
            fetch_checked(context, endpoint, point, entry, partial, label=label, start=start, span=span)
            os.chmod(partial, int(entry.mode, 8))
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return
    staged = staging / f"disk-{entry.volume}.img"
    try:
        fetch_checked(context, endpoint, point, entry, staged, label=label, start=start, span=span * 0.6)
        context.progress(start + span * 0.6, f"{label}: writing to {runtime.runner.target}")
        if volume.device:
            push(context, staged, str(path), device=True, sparse=fresh, label=label)
            check_on_datastore(context, path, entry, volume.size, label)
        else:
            partial = str(path.with_name(f".{path.name}.restore"))
            try:
                push(context, staged, partial, device=False, sparse=True, label=label)
                runtime.runner.run(["truncate", "-s", str(int(entry.size)), "--", partial], timeout=300)
                check_on_datastore(context, Path(partial), entry, entry.size, label)
                runtime.runner.run(["chmod", entry.mode, partial], timeout=60)
                runtime.runner.run(["mv", "-f", "--", partial, str(path)], timeout=300)
            except BaseException:
                runtime.runner.run(["rm", "-f", "--", partial], check=False, timeout=60)
                raise
    finally:
        staged.unlink(missing_ok=True)


def push(context: Any, local: Path, remote: str, *, device: bool, sparse: bool, label: str) -> None:
    """``dd if=LOCAL`` here | ``dd of=REMOTE conv=[notrunc,][sparse,]fsync`` on the datastore's host."""
    runtime = context.runtime
    # fsync: a write the datastore refuses late (a zvol over its quota, buffered by the OS)
    # fails dd here instead of vanishing after a read-back from the cache.
    sparse = sparse and seeks_over_zeros(runtime.runner)
    conv = ",".join(["notrunc"] * device + ["sparse"] * sparse + ["fsync"])
    writer = ["dd", f"of={remote}", f"bs={BLOCK}", f"conv={conv}"]
    try:
        result = runtime.local_runner.pipe(["dd", f"if={local}", f"bs={BLOCK}"], writer, to=runtime.runner,
                                           check=False, cancel=context.cancel_requested, timeout=TIMEOUT)
    except CommandCancelled as exc:
        raise Cancelled(f"{label}: copy cancelled after {exc.duration:.1f}s") from exc
    if not result.ok:
        error = result.error()
        raise TransferFailed(error.argv, error.returncode, error.stderr, error.duration,
                             reason=f"{label}: writing {remote} on {runtime.runner.target} failed "
                                    f"(exit {error.returncode}): {error.stderr.strip()[-300:]}")


def seeks_over_zeros(runner: Any) -> bool:
    """Whether dd on the runner's host has ``conv=sparse`` (GNU and FreeBSD do; busybox's
    does not: every block is then written, and a pool with compression still stores none of
    the zero ones)."""
    probe = ["dd", "if=/dev/null", "of=/dev/null", "conv=sparse"]
    return runner.run(probe, check=False, timeout=60).returncode == 0


def hash_argv(runner: Any) -> list[str]:
    """The sha256 command on the runner's host: ``sha256 -q`` on FreeBSD (sha256(1)),
    ``sha256sum`` elsewhere (GNU coreutils), chosen by ``uname -s`` (uname(1))."""
    system = runner.run(["uname", "-s"], timeout=60).stdout.strip()
    return ["sha256", "-q"] if system == "FreeBSD" else ["sha256sum"]


def sha256_on_datastore(runner: Any, path: str, size: int, disk_size: int) -> str:
    """sha256 of the first ``size`` bytes of ``path`` on the datastore's host (``disk_size``:
    what the datastore says the disk holds; equal sizes hash the whole disk in one command)."""
    hasher = hash_argv(runner)
    if disk_size == size:
        words = runner.run([*hasher, "--", path], timeout=24 * 3600).stdout.split()
    else:
        result = runner.pipe(["head", "-c", str(int(size)), "--", path], hasher, to=runner, timeout=24 * 3600)
        words = result.consumer.stdout.split()
    if not words or len(words[0]) != 64:
        raise BhypeError(f"{' '.join(hasher)} of {path} printed {' '.join(words)[:80]!r}")
    return words[0]


def check_on_datastore(context: Any, path: Path, entry: FileEntry, disk_size: int, label: str) -> None:
    """Read ``path`` back on the datastore's host and compare it with the manifest's sha256.

    :raises RestoreMismatch: it differs.
    """
    runner = context.runtime.runner
    found = sha256_on_datastore(runner, str(path), entry.size, disk_size)
    if found != entry.sha256:
        raise RestoreMismatch(f"{label}: {path} on {runner.target} reads back as sha256 {found}, "
                              f"the manifest says {entry.sha256}")
    context.log(f"{label}: {path} on {runner.target} checked against the manifest (sha256 {found[:16]}…)")


def install_config(context: Any, store: Any, vm_name: str, local: Path, entry: FileEntry, filename: str) -> None:
    """Install checked file ``local`` (on this machine) as ``filename`` in the VM's directory,
    which is on the datastore's host: copied there first (``.<name>.restore``, checked again)
    when that host is another one, since the datastore installs files from its own host."""
    mode = int(entry.mode, 8)
    if datastore_is_here(context.runtime):
        store.install_vm_file(vm_name, local, filename, mode=mode)
        return
    runner = context.runtime.runner
    partial = str(Path(store.vm_dir(vm_name)) / f".{filename}.restore")
    try:
        push(context, local, partial, device=False, sparse=False, label=filename)
        check_on_datastore(context, Path(partial), entry, entry.size, filename)
        store.install_vm_file(vm_name, Path(partial), filename, mode=mode)
    finally:
        runner.run(["rm", "-f", "--", partial], check=False, timeout=60)
