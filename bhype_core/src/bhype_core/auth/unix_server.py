"""A root service's Unix socket that appears only once it listens, with the right owner and mode.

The privileged auth daemon and the console broker both serve an unprivileged API process on a
socket in a directory that process may be able to write. The socket is bound under a temporary
name, given its group and mode 0660 there, put to listen(2), and only then renamed into place:
a client that finds the path can connect at once, the path never exists with looser
permissions, and a planted file at the path is replaced by the rename, never followed. At
close, only the socket this server created is removed (never a later server's).
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from pathlib import Path
from typing import Any

SOCKET_MODE = 0o660


def listening(path: Path) -> bool:
    """Whether a server accepts connections on the Unix socket ``path`` now."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


class PublishedUnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A threaded Unix-stream server published as described in the module docstring.

    Subclasses set their own attributes, then call ``super().__init__``; they may override
    :meth:`prepare_path` to refuse what is at the path before anything is bound.
    """

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, socket_path: Path | str, handler: Any, socket_gid: int | None = None) -> None:
        self.socket_path = Path(socket_path)
        self.socket_gid = socket_gid
        self._bound_inode: int | None = None  # set once our socket is in place; only that is removed
        self._temporary = self.socket_path  # the name bound before listen(); set by server_bind
        super().__init__(str(self.socket_path), handler, bind_and_activate=True)

    def prepare_path(self) -> None:
        """Check (and make room at) ``socket_path`` before binding; raise to refuse."""

    def server_bind(self) -> None:
        self.prepare_path()
        path = self.socket_path
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
        temporary.unlink(missing_ok=True)
        self.socket.bind(str(temporary))
        self._temporary = temporary
        try:
            if self.socket_gid is not None:
                os.chown(temporary, -1, self.socket_gid, follow_symlinks=False)
            os.chmod(temporary, SOCKET_MODE)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self.server_address = str(path)

    def server_activate(self) -> None:
        # listen(2) first, then the rename puts the socket in place: a client that finds the
        # path can connect at once (a path that exists before listen() refuses connections).
        temporary = self._temporary
        try:
            super().server_activate()
            os.rename(temporary, self.socket_path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._bound_inode = os.lstat(self.socket_path).st_ino

    def server_close(self) -> None:
        super().server_close()
        try:  # only our own socket, never a later server's
            if self._bound_inode is not None and os.lstat(self.socket_path).st_ino == self._bound_inode:
                self.socket_path.unlink()
        except OSError:
            pass
        self._bound_inode = None
