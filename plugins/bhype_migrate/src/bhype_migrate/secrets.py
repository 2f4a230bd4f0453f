"""The worker's private files for peers: each peer's API token, bHype's SSH key, pinned host keys.

All live in ``<data_dir>/migrate`` (0700, the worker's user), written with the core's
:func:`write_secret` (0600, ``O_NOFOLLOW``, renamed into place), so a link planted by anyone
cannot be written through; a token never appears in argv, logs or the API.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import ValidationErrors, read_secret, remove_secret, write_secret

PEER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
KEY_NAME = "id_ed25519"


def check_peer_name(name: str, path: str = "name") -> str:
    """``name`` when it is a valid peer name (lowercase letters, digits, ``_.-``), else 422."""
    if not isinstance(name, str) or not PEER_NAME_RE.match(name):
        raise ValidationErrors([(path, f"{name!r} is not a valid peer name (a-z, 0-9, _ . -; up to 63)")])
    return name


def migrate_dir(runtime: Any) -> Path:
    """``<data_dir>/migrate``, created 0700 (refusing a symlink in its place)."""
    path = Path(runtime.settings.core.data_dir) / "migrate"
    if path.is_symlink():
        raise ValidationErrors([("data_dir", f"{path} is a symlink; refusing to keep secrets there")])
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def token_path(runtime: Any, peer: str) -> Path:
    """Where peer ``peer``'s API token is kept."""
    return migrate_dir(runtime) / f"peer-{check_peer_name(peer)}.token"


def known_hosts_path(runtime: Any, peer: str) -> Path:
    """The pinned host key of peer ``peer`` (an ssh ``UserKnownHostsFile``)."""
    return migrate_dir(runtime) / f"peer-{check_peer_name(peer)}.known_hosts"


def store_known_hosts(runtime: Any, peer: str, text: str) -> None:
    """Pin peer ``peer``'s SSH host keys (known_hosts text)."""
    write_secret(known_hosts_path(runtime, peer), text)


def store_token(runtime: Any, peer: str, token: str) -> None:
    """Keep peer ``peer``'s token (0600, the worker only)."""
    write_secret(token_path(runtime, peer), token)


def load_token(runtime: Any, peer: str) -> str:
    """Peer ``peer``'s token."""
    return read_secret(token_path(runtime, peer)).decode().strip()


def forget_peer_files(runtime: Any, peer: str) -> None:
    """Remove a peer's token and pinned host key (absent is fine)."""
    for path in (token_path(runtime, peer), known_hosts_path(runtime, peer)):
        remove_secret(path)


def ssh_key(context: Any) -> tuple[Path, str]:
    """bHype's SSH key for moves (made once with ``ssh-keygen``): its path and public key line.

    ssh-keygen(1): ``-t ed25519 -N "" -f FILE -C COMMENT -q`` writes FILE (0600) and FILE.pub.
    """
    key = migrate_dir(context.runtime) / KEY_NAME
    if key.is_symlink():
        raise ValidationErrors([("ssh_key", f"{key} is a symlink")])
    if not key.exists():
        # The key stays on this machine (``local_runner``) even when [runner] drives a remote host.
        argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bhype-migrate", "-f", str(key)]
        context.runtime.local_runner.run(argv, timeout=30)
    return key, key.with_suffix(".pub").read_text().strip()
