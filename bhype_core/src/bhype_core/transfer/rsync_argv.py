"""Argv builders for rsync(1) transfers: local directories, ``rsync://`` daemons, rsync over SSH.

Every option is rsync(1)'s (RsyncProject/rsync rsync.1.md):

* ``-a`` archive (``-rlptgoD``); a Windows target gets ``-rlt`` only (NTFS keeps no POSIX owner,
  group or mode; next-features.md §4) plus ``--modify-window=1`` (FAT's 2 s write times);
* ``--no-whole-file`` turns the delta algorithm on for local copies too (whole-file is the
  default when both ends are local) and ``--inplace`` writes changed blocks into the existing
  file (a large image is not copied to a temporary file first; implies ``--partial``);
* ``--link-dest=DIR`` / ``--copy-dest=DIR`` use a previous point as the basis: unchanged
  files are hard-linked (``link``) or copied locally on the receiver (``copy``, no hard links);
* ``--info=progress2 --info=name0`` one progress line for the whole transfer, no file names;
  ``--stats`` the figures :func:`~bhype_core.transfer.rsync_stats.parse_rsync_stats` reads;
* ``--password-file=FILE`` a daemon's password from a 0600 file (never in argv); the
  ``RSYNC_PASSWORD`` environment variable is the other way (rsync(1) ``--password-file``);
* ``-e COMMAND`` the remote shell: ``ssh -i KEY -o UserKnownHostsFile=PINNED -o
  StrictHostKeyChecking=yes …``; rsync splits COMMAND on spaces and honours single quotes;
* ``--timeout`` (I/O seconds, exit 30) and ``--contimeout`` (daemon connect, exit 35);
* ``--copy-devices`` (sender reads a device as a file; 3.2.4) and ``--write-devices``
  (receiver writes into an existing device; 3.2.0) for zvols.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from bhype_core.errors import ValidationErrors


@dataclass(frozen=True)
class SshTransport:
    """How rsync reaches a host over SSH: a private key, the pinned known_hosts file, a port.

    ``StrictHostKeyChecking=yes`` with a bHype-written ``UserKnownHostsFile``: a changed host
    key fails the connection (ssh(1), ssh_config(5)); ``BatchMode=yes`` never prompts."""

    key_file: str
    known_hosts: str
    port: int = 22
    ssh: str = "ssh"
    connect_timeout: int = 10

    def argv(self) -> list[str]:
        """The ssh command as an argv list (for ``zfs receive`` through the runner, too)."""
        return [
            self.ssh, "-i", self.key_file, "-p", str(self.port),
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", f"ConnectTimeout={self.connect_timeout}",
            "-o", "LogLevel=ERROR",
        ]

    def command(self) -> str:
        """The ``-e`` value: the same words, quoted for rsync's own splitting."""
        for word in self.argv():
            if "'" in word or "\n" in word:
                raise ValidationErrors([("ssh", f"{word!r} must not contain quotes or newlines")])
        return " ".join(shlex.quote(word) for word in self.argv())


def daemon_url(host: str, module: str, path: str = "", *, user: str | None = None, port: int | None = None) -> str:
    """``rsync://[USER@]HOST[:PORT]/MODULE/PATH`` (rsync(1) "USAGE"; IPv6 hosts in brackets)."""
    if not host or not module or "/" in module:
        raise ValidationErrors([("destination", "an rsync daemon URL needs a host and a module")])
    where = f"[{host}]" if ":" in host else host
    if port is not None:
        where += f":{port}"
    if user:
        where = f"{quote(user, safe='')}@{where}"
    tail = "/".join(part for part in (module, path.strip("/")) if part)
    return f"rsync://{where}/{tail}"


def _check_path(value: str, field: str) -> None:
    if not value or value.startswith("-") or "\0" in value or "\n" in value:
        raise ValidationErrors([(field, f"{value!r} is not a usable path (empty, starts with '-' or has NUL/newline)")])


def rsync_argv(
    sources: Sequence[str],
    destination: str,
    *,
    rsync: str = "rsync",
    windows: bool = False,
    delta: bool = True,
    inplace: bool = True,
    sparse: bool = False,
    link_dest: Sequence[str] = (),
    copy_dest: Sequence[str] = (),
    password_file: str | None = None,
    ssh: SshTransport | None = None,
    progress: bool = True,
    stats: bool = True,
    io_timeout: int | None = None,
    connect_timeout: int | None = None,
    copy_devices: bool = False,
    write_devices: bool = False,
    recursive: bool = True,
    extra: Sequence[str] = (),
) -> list[str]:
    """The argv of one rsync run copying ``sources`` to ``destination``.

    :param windows: the receiver is NTFS/FAT: no owner/group/permissions/devices (``-rlt``
        instead of ``-a``) and ``--modify-window=1``.
    :param delta: ``--no-whole-file`` (the delta algorithm even between local paths).
    :param inplace: ``--inplace``: update changed blocks in place (big images).
    :param link_dest: earlier points to hard-link unchanged files from (POSIX receivers).
    :param copy_dest: earlier points to copy unchanged files from on the receiver (no links).
    :param password_file: a daemon password file (0600); never put the password in argv.
    :param ssh: reach an SSH destination (``user@host:path``) with this transport.
    :raises ValidationErrors: an unusable path or a combination rsync refuses.
    """
    if not sources:
        raise ValidationErrors([("sources", "at least one source is needed")])
    for index, source in enumerate(sources):
        _check_path(source, f"sources.{index}")
    _check_path(destination, "destination")
    if write_devices and not inplace:
        raise ValidationErrors([("write_devices", "--write-devices implies --inplace")])
    argv = [rsync]
    if recursive:
        argv.append("-rlt" if windows else "-a")
    else:
        argv.append("-lt" if windows else "-lptgoD")
    if windows:
        argv += ["--no-perms", "--no-owner", "--no-group", "--modify-window=1"]
    if delta:
        argv.append("--no-whole-file")
    if inplace:
        argv.append("--inplace")
    if sparse:
        argv.append("--sparse")
    argv += [f"--link-dest={path}" for path in link_dest]
    argv += [f"--copy-dest={path}" for path in copy_dest]
    if copy_devices:
        argv.append("--copy-devices")
    if write_devices:
        argv.append("--write-devices")
    if password_file is not None:
        argv.append(f"--password-file={password_file}")
    if ssh is not None:
        argv += ["-e", ssh.command()]
    if io_timeout is not None:
        argv.append(f"--timeout={int(io_timeout)}")
    if connect_timeout is not None and destination.startswith("rsync://"):
        argv.append(f"--contimeout={int(connect_timeout)}")
    if progress:
        argv += ["--info=progress2", "--info=name0", "--no-human-readable"]
    if stats:
        argv.append("--stats")
    argv += list(extra)
    argv += [*sources, destination]
    return argv


def ssh_destination(user: str | None, host: str, path: str) -> str:
    """``[USER@]HOST:PATH`` for an SSH destination (IPv6 hosts in brackets)."""
    where = f"[{host}]" if ":" in host else host
    return f"{user}@{where}:{path}" if user else f"{where}:{path}"


def path_arg(path: str | Path, *, contents: bool = False) -> str:
    """A path for rsync: with ``contents`` a trailing ``/`` copies the directory's contents."""
    text = str(path)
    return text.rstrip("/") + "/" if contents else text
