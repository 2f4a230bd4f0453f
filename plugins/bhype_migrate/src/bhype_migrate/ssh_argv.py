"""The ssh(1) argv bHype uses to reach a peer: its own key, the peer's pinned host key only.

ssh(1)/ssh_config(5): ``-i`` identity file, ``-p`` port, ``-o BatchMode=yes`` (never prompt),
``-o IdentitiesOnly=yes`` (only that key), ``-o UserKnownHostsFile=FILE`` with
``GlobalKnownHostsFile=/dev/null`` and ``StrictHostKeyChecking=yes`` (only the pinned key is
accepted, a changed key is refused), ``-o ConnectTimeout=N``. ssh-keyscan(1): ``-p PORT -T
TIMEOUT HOST`` prints the host's keys as known_hosts lines (``[host]:port`` when not 22).
"""

from __future__ import annotations

from pathlib import Path


def ssh_options(key: Path, known_hosts: Path, port: int, connect_timeout: int = 15) -> list[str]:
    """The ssh options (after ``ssh``) for a peer; also what rsync's ``-e`` runs."""
    return [
        "-i", str(key), "-p", str(port),
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={connect_timeout}",
        "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
    ]


def ssh_argv(key: Path, known_hosts: Path, port: int, user: str, host: str, *command: str) -> list[str]:
    """``ssh OPTIONS user@host -- command…`` (the remote side joins the words with spaces)."""
    return ["ssh", *ssh_options(key, known_hosts, port), f"{user}@{host}", "--", *command]


def remote_shell(key: Path, known_hosts: Path, port: int) -> str:
    """rsync's ``-e`` value. rsync(1) splits it on spaces itself (no shell), so no path in it
    may contain a space; bHype's data directory paths are checked for that."""
    parts = ["ssh", *ssh_options(key, known_hosts, port)]
    if any(" " in part for part in parts):
        raise ValueError("a path in the ssh command contains a space (rsync -e splits on spaces)")
    return " ".join(parts)


def keyscan_argv(host: str, port: int, timeout: int = 10) -> list[str]:
    """``ssh-keyscan -p PORT -T TIMEOUT HOST``."""
    return ["ssh-keyscan", "-p", str(port), "-T", str(timeout), host]


def pinned_lines(keyscan_output: str) -> str:
    """The known_hosts lines of a keyscan (comments and blank lines dropped), sorted."""
    lines = sorted(line.strip() for line in keyscan_output.splitlines()
                   if line.strip() and not line.startswith("#"))
    return "\n".join(lines) + ("\n" if lines else "")
