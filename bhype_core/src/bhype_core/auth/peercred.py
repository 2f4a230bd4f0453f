"""Who is on the other end of a Unix socket: the kernel's peer credentials, Linux and FreeBSD."""

from __future__ import annotations

import socket
import struct
import sys
from dataclasses import dataclass

# FreeBSD <sys/un.h> and <sys/ucred.h> (unix(4), getpeereid(3)): getsockopt(SOL_LOCAL,
# LOCAL_PEERCRED) fills a struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups;
# gid_t cr_groups[XU_NGROUPS]; union { void *_cr_unused1; pid_t cr_pid; }; }.
# cr_version must equal XUCRED_VERSION. getpeereid(3) is a libc wrapper over the same option.
FREEBSD_SOL_LOCAL = 0
FREEBSD_LOCAL_PEERCRED = 1
XUCRED_VERSION = 0
XU_NGROUPS = 16
_XUCRED_HEAD = struct.Struct("=IIh")  # cr_version, cr_uid, cr_ngroups (offsets 0, 4, 8)
_XUCRED_SIZE = 128  # sizeof(struct xucred) is 88 on amd64; ask for more, the kernel says how much

# Linux socket(7) SO_PEERCRED: struct ucred { pid_t pid; uid_t uid; gid_t gid; }.
_UCRED = struct.Struct("=iII")


@dataclass(frozen=True)
class PeerCredentials:
    """The peer's effective ids as the kernel recorded them at ``connect(2)``; pid if known."""

    uid: int
    gid: int | None = None
    pid: int | None = None


def parse_ucred(data: bytes) -> PeerCredentials:
    """Decode Linux ``struct ucred`` (socket(7) ``SO_PEERCRED``)."""
    if len(data) < _UCRED.size:
        raise ValueError(f"SO_PEERCRED returned {len(data)} bytes, expected {_UCRED.size}")
    pid, uid, gid = _UCRED.unpack_from(data)
    return PeerCredentials(uid=uid, gid=gid, pid=pid or None)


def parse_xucred(data: bytes) -> PeerCredentials:
    """Decode FreeBSD ``struct xucred`` (unix(4) ``LOCAL_PEERCRED``); ``cr_groups[0]`` is the
    effective gid. Refuses an unknown ``cr_version`` rather than guessing the layout."""
    if len(data) < _XUCRED_HEAD.size + 4:
        raise ValueError(f"LOCAL_PEERCRED returned {len(data)} bytes, too short for struct xucred")
    version, uid, ngroups = _XUCRED_HEAD.unpack_from(data)
    if version != XUCRED_VERSION:
        raise ValueError(f"struct xucred version {version}, expected {XUCRED_VERSION}")
    gid = None
    if ngroups > 0:
        # cr_groups starts at offset 12: cr_ngroups (short) is padded to gid_t's 4-byte alignment.
        (gid,) = struct.unpack_from("=I", data, 12)
    return PeerCredentials(uid=uid, gid=gid)


def peer_credentials(sock: socket.socket, platform: str | None = None) -> PeerCredentials:
    """The credentials of the process connected to the Unix stream socket ``sock``.

    The platform is taken when called (never at import), so both paths are importable anywhere.
    Raises ``OSError`` when the kernel refuses and ``ValueError`` on an unexpected answer.
    """
    platform = platform or sys.platform
    if platform.startswith("linux"):
        return parse_ucred(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    if platform.startswith("freebsd"):
        level = getattr(socket, "SOL_LOCAL", FREEBSD_SOL_LOCAL)
        option = getattr(socket, "LOCAL_PEERCRED", FREEBSD_LOCAL_PEERCRED)
        return parse_xucred(sock.getsockopt(level, option, _XUCRED_SIZE))
    raise OSError(f"peer credentials are not implemented for platform {platform!r}")
