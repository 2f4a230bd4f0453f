"""What a hypervisor exit means: bhyve(8) EXIT STATUS as an enum and the supervisor's decision.

bhyve(8) EXIT STATUS (reference freebsd-host.md 1.7): 0 the guest rebooted (reset), 1 powered
off, 2 halted, 3 triple fault, 4 an error in bhyve itself; anything else (64 ``EX_USAGE`` for
bad option values, 71 ``EX_OSERR``, death by a signal) is an error too. The QEMU driver maps
the QMP ``SHUTDOWN`` reason onto the same numbers (``qemu_argv.exit_status_for_shutdown``), so
one supervisor loop serves both hypervisors.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class BhyveExit(IntEnum):
    """bhyve(8) EXIT STATUS values."""

    REBOOT = 0
    POWEROFF = 1
    HALT = 2
    TRIPLE_FAULT = 3
    ERROR = 4


MEANINGS = {
    BhyveExit.REBOOT: "guest rebooted",
    BhyveExit.POWEROFF: "guest powered off",
    BhyveExit.HALT: "guest halted",
    BhyveExit.TRIPLE_FAULT: "guest triple fault",
    BhyveExit.ERROR: "hypervisor error",
}


class Outcome(StrEnum):
    """What the supervisor does after the hypervisor exited."""

    RESTART = "restart"
    STOPPED = "stopped"
    CRASHED = "crashed"


@dataclass(frozen=True)
class Decision:
    """The supervisor's verdict on one exit: ``outcome`` and a human ``meaning``."""

    outcome: Outcome
    meaning: str


def meaning(status: int | None, signal: int | None = None) -> str:
    """A short text for an exit status (``guest powered off``) or a death by ``signal``."""
    if signal is not None:
        return f"killed by signal {signal}"
    if status is None:
        return "exit status unknown"
    if status in {member.value for member in BhyveExit}:
        return MEANINGS[BhyveExit(status)]
    return f"hypervisor error (exit status {status})"


def decide(status: int | None, signal: int | None = None, *, stop_requested: bool = False) -> Decision:
    """Classify one hypervisor exit per bhyve(8) EXIT STATUS.

    0 restarts the guest unless a stop was requested (then the reboot counts as stopped);
    1 and 2 stop; 3, 4, other statuses and death by a signal are crashes, except a signal
    death the stop asked for (the driver killed a hypervisor that ignored ``quit``).
    """
    text = meaning(status, signal)
    if signal is not None or status is None:
        return Decision(Outcome.STOPPED if stop_requested else Outcome.CRASHED, text)
    if status == BhyveExit.REBOOT:
        return Decision(Outcome.STOPPED if stop_requested else Outcome.RESTART, text)
    if status in (BhyveExit.POWEROFF, BhyveExit.HALT):
        return Decision(Outcome.STOPPED, text)
    return Decision(Outcome.CRASHED, text)


def ran_briefly(status: int | None, signal: int | None, stderr_tail: list[str]) -> bool:
    """Whether a hypervisor that exited before it counted as running had run the guest.

    bhyve(8) EXIT STATUS 0 (rebooted) and 2 (halted) come only from a running guest; 1
    (powered off) is also usage(1)'s status, so it counts only with nothing on stderr. Any
    other status or a signal is a failed start.
    """
    if signal is not None or status is None:
        return False
    if status in (BhyveExit.REBOOT, BhyveExit.HALT):
        return True
    return status == BhyveExit.POWEROFF and not stderr_tail
