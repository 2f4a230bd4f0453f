"""Host commands die with the worker: a parent-death signal set in the child before ``exec``.

A ``qemu-img convert``, ``rsync`` or ``zfs send`` the worker started must not keep writing
after a ``kill -9`` of the worker (issue 11: a convert kept running with parent 1, writing into
a disk recovery was about to remove). The kernel can do this for us:

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` (prctl(2)). The signal comes when the *thread*
  that forked the child ends; the runner's calling thread waits for the child, so it ends only
  with the command or with the process.
- FreeBSD ≥ 11.2: ``procctl(P_PID, 0, PROC_PDEATHSIG_CTL, &signum)`` (procctl(2),
  ``sys/sys/procctl.h``: ``PROC_PDEATHSIG_CTL`` is 11, ``P_PID`` is 0), sent when the parent
  process exits.

Both settings survive ``execve`` and are *not* inherited by children of a ``fork``, so a
daemon the command forks (the VM supervisor) is not affected; the supervisor clears its own
setting anyway (:func:`clear_parent_death_signal`), because VMs outlive the worker by design.
On other systems nothing is set (recovery still cleans up what such a child leaves).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # linux/prctl.h
P_PID = 0  # FreeBSD sys/wait.h idtype_t
PROC_PDEATHSIG_CTL = 11  # FreeBSD sys/procctl.h


def _libc() -> ctypes.CDLL | None:
    # dlopen(3) with a NULL file name is the running program with the libraries it loaded,
    # libc among them (Linux and FreeBSD alike). ``ctypes.util.find_library("c")`` would run
    # ``ldconfig -p`` (a subprocess, tens of milliseconds) in every process importing the
    # runner, the VM supervisor on each VM start included (issue 15).
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _setter(platform: str) -> Callable[[int], int] | None:
    """A function setting this process's parent-death signal, resolved now (never in the
    child: a fork of a threaded process must not take locks, and ``dlopen`` does)."""
    libc = _libc()
    if libc is None:
        return None
    if platform.startswith("linux") and hasattr(libc, "prctl"):
        prctl = libc.prctl
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        prctl.restype = ctypes.c_int
        return lambda signum: prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if platform.startswith("freebsd") and hasattr(libc, "procctl"):
        procctl = libc.procctl
        procctl.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int, ctypes.c_void_p]
        procctl.restype = ctypes.c_int
        holder = ctypes.c_int(0)

        def set_signal(signum: int) -> int:
            holder.value = signum
            return procctl(P_PID, 0, PROC_PDEATHSIG_CTL, ctypes.addressof(holder))

        return set_signal
    return None


_SET = _setter(sys.platform)


def supported() -> bool:
    """Whether this system can give a child a parent-death signal."""
    return _SET is not None


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets SIGKILL when this
    process dies. ``None`` where the system cannot do it.

    The parent's pid is taken now; a child whose parent died between ``fork`` and the call
    (it was re-parented already, so no signal would ever come) kills itself.
    """
    setter = _SET
    if setter is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        setter(signal.SIGKILL)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def clear_parent_death_signal() -> None:
    """Clear this process's parent-death signal (a VM supervisor: it outlives the worker)."""
    if _SET is not None:
        _SET(0)
