"""rsync's exit values (rsync(1) "EXIT VALUES", RsyncProject/rsync rsync.1.md) as an enum."""

from __future__ import annotations

from enum import IntEnum


class RsyncExit(IntEnum):
    """What an rsync exit status means."""

    OK = 0
    SYNTAX = 1
    PROTOCOL = 2
    FILE_SELECT = 3
    UNSUPPORTED = 4
    STARTING_PROTOCOL = 5
    SOCKET_IO = 10
    FILE_IO = 11
    STREAM = 12
    DIAGNOSTICS = 13
    IPC = 14
    SIBLING_CRASHED = 15
    SIBLING_KILLED = 16
    SIGUSR1 = 19
    SIGNALLED = 20
    WAITPID = 21
    MEMORY = 22
    PARTIAL = 23
    VANISHED = 24
    MAX_DELETE = 25
    TIMEOUT = 30
    CONNECT_TIMEOUT = 35


_TEXT = {
    RsyncExit.SYNTAX: "syntax or usage error",
    RsyncExit.PROTOCOL: "protocol incompatibility",
    RsyncExit.FILE_SELECT: "errors selecting input/output files or directories",
    RsyncExit.UNSUPPORTED: "action not supported by the other side",
    RsyncExit.STARTING_PROTOCOL: ("error starting the client-server protocol "
                                  "(daemon refused: wrong password or module?)"),
    RsyncExit.SOCKET_IO: "socket I/O error (target unreachable?)",
    RsyncExit.FILE_IO: "file I/O error (target full?)",
    RsyncExit.STREAM: "error in the protocol data stream (the other side died?)",
    RsyncExit.DIAGNOSTICS: "errors with program diagnostics",
    RsyncExit.IPC: "error in IPC code",
    RsyncExit.SIBLING_CRASHED: "sibling process crashed",
    RsyncExit.SIBLING_KILLED: "sibling process killed by a signal",
    RsyncExit.SIGUSR1: "received SIGUSR1",
    RsyncExit.SIGNALLED: "received SIGINT, SIGTERM or SIGHUP",
    RsyncExit.WAITPID: "waitpid() error",
    RsyncExit.MEMORY: "error allocating memory",
    RsyncExit.PARTIAL: "partial transfer due to error",
    RsyncExit.VANISHED: "partial transfer: some source files vanished",
    RsyncExit.MAX_DELETE: "--max-delete stopped deletions",
    RsyncExit.TIMEOUT: "timeout in data send/receive",
    RsyncExit.CONNECT_TIMEOUT: "timeout waiting for the daemon connection",
}


def describe_exit(status: int | None) -> str:
    """A short explanation of an rsync exit status (``exit N`` for unknown ones)."""
    if status is None:
        return "did not exit normally"
    if status == 255:  # rsync passes on its remote shell's failure: ssh(1) exits 255 on its own errors
        return "the remote shell (ssh) failed: host key changed, login refused or host unreachable"
    try:
        return _TEXT.get(RsyncExit(status), "success")
    except ValueError:
        return f"exit status {status}" if status >= 0 else f"killed by signal {-status}"
