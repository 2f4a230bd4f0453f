"""Target destinations: parse what an admin types into kind, host, port, user and path.

The four forms (rsync(1) "USAGE", ssh(1)): ``/path`` (a local or mounted directory),
``rsync://[USER@]HOST[:PORT]/MODULE[/PATH]`` (an rsync daemon), ``ssh://[USER@]HOST[:PORT]/PATH``
or ``[USER@]HOST:PATH`` (rsync over SSH), ``zfs://[USER@]HOST[:PORT]/POOL/DATASET`` (``zfs
receive`` over SSH). No password is ever part of a destination.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from bhype_core.plugin_api import ValidationErrors

_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))$")
_USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_PATH_PART = re.compile(r"^[A-Za-z0-9_.@+-][A-Za-z0-9_.@+ -]*$")
_DATASET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*(?:/[A-Za-z0-9_.:-]+)*$")
KINDS = ("local", "daemon", "ssh", "zfs")


@dataclass(frozen=True)
class Destination:
    """A parsed destination: ``path`` is absolute for local/ssh, ``module/path`` for daemons,
    a dataset for zfs."""

    kind: str
    path: str
    host: str = ""
    port: int | None = None
    user: str | None = None

    @property
    def remote(self) -> bool:
        """Whether bHype reaches it over the network."""
        return self.kind != "local"

    def display(self) -> str:
        """The canonical form (what ``target show`` prints)."""
        if self.kind == "local":
            return self.path
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        scheme = {"daemon": "rsync", "ssh": "ssh", "zfs": "zfs"}[self.kind]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{who}{host}{port}/{self.path.lstrip('/')}"


def _fail(message: str) -> ValidationErrors:
    return ValidationErrors([("destination", message)])


def _check_path(path: str, absolute: bool) -> str:
    parts = [p for p in path.split("/") if p]
    if not parts and not absolute:
        raise _fail("needs a path")
    for part in parts:
        if part in (".", "..") or not _PATH_PART.match(part):
            raise _fail(f"path component {part!r} is not allowed (letters, digits, . _ - + @ and spaces)")
    return ("/" if absolute else "") + "/".join(parts)


def parse_destination(text: str) -> Destination:
    """Parse ``text``; :class:`ValidationErrors` (path ``destination``) for anything else."""
    text = (text or "").strip()
    if not text:
        raise _fail("must not be empty")
    if text.startswith("/"):
        return Destination("local", _check_path(text, absolute=True) or "/")
    scheme = {"rsync://": "daemon", "ssh://": "ssh", "zfs://": "zfs"}
    kind = next((k for prefix, k in scheme.items() if text.startswith(prefix)), None)
    if kind is None:
        if re.match(r"^[^/:@]+@[^/:]+:/", text) or re.match(r"^[^/:@]+:/", text):
            who_host, _, path = text.partition(":")
            text, kind = f"ssh://{who_host}{path}", "ssh"
        else:
            raise _fail("use /path, rsync://[USER@]HOST[:PORT]/MODULE/PATH, ssh://[USER@]HOST[:PORT]/PATH, "
                        "[USER@]HOST:/PATH or zfs://[USER@]HOST[:PORT]/POOL/DATASET")
    parts = urlsplit(text)
    if parts.password is not None:
        raise _fail("never put a password in the destination: give it as the target's secret")
    if parts.query or parts.fragment:
        raise _fail("no ?query or #fragment")
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    if not host or not _HOST.match(host):
        raise _fail(f"{host or '(none)'} is not a host name or address")
    try:
        port = parts.port
    except ValueError:
        raise _fail("the port must be 1-65535") from None
    user = unquote(parts.username) if parts.username else None
    if user is not None and not _USER.match(user):
        raise _fail(f"{user!r} is not a user name")
    path = unquote(parts.path)
    if kind == "zfs":
        dataset = path.strip("/")
        if not _DATASET.match(dataset):
            raise _fail(f"{dataset!r} is not a ZFS dataset name (POOL/DATASET)")
        return Destination("zfs", dataset, host.strip("[]"), port, user)
    checked = _check_path(path, absolute=kind == "ssh")
    if kind == "daemon":
        checked = checked.lstrip("/")
    return Destination(kind, checked, host.strip("[]"), port, user)
