"""SSH host key pinning: fetch a host's keys once (``ssh-keyscan``), keep them, check them later.

ssh-keyscan(1) prints known_hosts lines (``[host]:port keytype base64``; the port form only for
ports other than 22) and ``# host:port SSH-2.0-…`` comments on stderr; ``-T`` is its timeout in
seconds, ``-t`` the key types. The pinned text is written to a bHype-owned known_hosts file that
ssh then uses with ``UserKnownHostsFile=FILE`` and ``StrictHostKeyChecking=yes`` (ssh_config(5)),
so a host whose key changed is refused ("REMOTE HOST IDENTIFICATION HAS CHANGED", exit 255).
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from bhype_core.errors import CommandError, ValidationErrors

KEY_TYPES = "ed25519,ecdsa,rsa"


def keyscan_argv(host: str, port: int = 22, *, timeout: int = 10, program: str = "ssh-keyscan") -> list[str]:
    """``ssh-keyscan -T SECONDS -t TYPES -p PORT -- HOST`` (ssh-keyscan(1))."""
    if not host or host.startswith("-") or any(c.isspace() for c in host):
        raise ValidationErrors([("host", f"{host!r} is not a host name or address")])
    if not 1 <= int(port) <= 65535:
        raise ValidationErrors([("port", f"{port!r} must be 1-65535")])
    return [program, "-T", str(int(timeout)), "-t", KEY_TYPES, "-p", str(int(port)), host]


def parse_known_hosts(text: str) -> list[tuple[str, str, str]]:
    """``(hosts, keytype, base64 key)`` of each key line (comments and blanks skipped).

    :raises ValidationErrors: a line that is not ``HOSTS TYPE BASE64``."""
    keys = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 3:
            raise ValidationErrors([("host_key", f"line {number} is not 'HOSTS TYPE KEY': {line[:80]!r}")])
        try:
            base64.b64decode(fields[2], validate=True)
        except ValueError:
            raise ValidationErrors([("host_key", f"line {number}: the key is not base64")]) from None
        keys.append((fields[0], fields[1], fields[2]))
    return keys


def fingerprint(key_base64: str) -> str:
    """OpenSSH's ``SHA256:…`` fingerprint of a base64 key blob (ssh-keygen(1) ``-l``)."""
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def pin_host_key(host: str, port: int = 22, *, runner: Any = None, timeout: int = 10) -> str:
    """The host's public keys as known_hosts text, fetched now with ``ssh-keyscan`` (through
    ``runner``, default a local one). Store it and use it later with
    :class:`~bhype_core.transfer.rsync_argv.SshTransport` (``known_hosts``).

    :raises CommandError: the host did not answer with any key (unreachable, not SSH).
    """
    if runner is None:
        from bhype_core.host.runner import LocalRunner

        runner = LocalRunner()
    argv = keyscan_argv(host, port, timeout=timeout)
    result = runner.run(argv, timeout=timeout + 5, check=False)
    lines = [line for line in result.stdout.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        raise CommandError(argv, result.returncode, result.stderr, result.duration,
                           reason=f"no SSH host key from {host} port {port} (unreachable or not SSH)")
    text = "\n".join(sorted(lines)) + "\n"
    parse_known_hosts(text)
    return text
