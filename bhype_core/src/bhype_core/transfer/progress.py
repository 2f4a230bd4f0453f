"""Transfer progress: one record, parsed from ``rsync --info=progress2`` or ``zfs send -v -P``.

rsync(1) ``--info=progress2`` (RsyncProject/rsync rsync.1.md; the line is printed by
``rprint_progress`` in progress.c): ``<bytes> <pct>% <rate><unit> <h:mm:ss>`` optionally
followed by ``(xfr#N, to-chk=R/T)`` (``ir-chk`` while the file list is still growing). Bytes
carry thousands separators since 3.1.0; the rate unit is ``kB/s``, ``MB/s``, ``GB/s`` or
``TB/s`` in steps of 1024 (progress.c divides by 1024.0); the time is the remaining time while
running and the elapsed time on a file's last line (we only use it below 100 %).

zfs-send(8) ``-v`` prints one line per second on stderr during a real send; with ``-P``
(parsable) the line is ``<HH:MM:SS>\\t<bytes>\\t<snapshot>`` (``send_progress_thread`` in
libzfs_sendrecv.c), and the estimate lines before it are ``full\\t<snap>\\t<bytes>``,
``incremental\\t<from>\\t<snap>\\t<bytes>`` and ``size\\t<bytes>`` (freebsd-host.md §6.7).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RSYNC = re.compile(
    r"^\s*(?P<bytes>[\d,.']+)\s+(?P<pct>\d+)%\s+(?P<rate>[\d.,]+)(?P<unit>[kMGT]?B)/s\s+"
    r"(?P<h>\d+):(?P<m>\d{2}):(?P<s>\d{2})"
    r"(?:\s+\(xf[er]*#(?P<xfr>\d+),\s+(?:to|ir)-ch(?:ec)?k=(?P<left>\d+)/(?P<files>\d+)\))?\s*$"
)
_UNITS = {"B": 1, "kB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
# OpenZFS 2.x adds a blocks column with -vv: ``HH:MM:SS\tbytes\tblocks\tsnapshot``.
_ZFS_TICK = re.compile(r"^(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})\t(?P<bytes>\d+)(?:\t\d+)?\t(?P<snap>\S+)$")
_ZFS_SIZE = re.compile(r"^size\t(?P<bytes>\d+)$")


@dataclass(frozen=True)
class TransferProgress:
    """How far a transfer is: bytes done, bytes in all (``None`` while unknown), the current
    rate in bytes per second and the estimated seconds left (``None`` while unknown)."""

    bytes_done: int
    bytes_total: int | None
    rate: float
    eta_seconds: float | None

    @property
    def percent(self) -> float:
        """0–100 (0 while the total is unknown)."""
        if not self.bytes_total:
            return 0.0
        return max(0.0, min(100.0, 100.0 * self.bytes_done / self.bytes_total))

    def describe(self) -> str:
        """``1.2 GiB of 4.0 GiB, 85.3 MiB/s, 0:00:33 left`` for task logs."""
        from bhype_core.units import human_size

        text = human_size(self.bytes_done)
        if self.bytes_total is not None:
            text += f" of {human_size(self.bytes_total)}"
        text += f", {human_size(int(self.rate))}/s"
        if self.eta_seconds is not None:
            seconds = int(self.eta_seconds)
            text += f", {seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d} left"
        return text


def _int(text: str) -> int:
    return int(re.sub(r"[,.']", "", text))


def parse_rsync_progress(line: str) -> TransferProgress | None:
    """One ``--info=progress2`` line (split on ``\\r`` and ``\\n`` first) as progress, or
    ``None`` for any other line (file names, warnings, the ``--stats`` block)."""
    match = _RSYNC.match(line)
    if not match:
        return None
    done, pct = _int(match["bytes"]), int(match["pct"])
    rate = float(match["rate"].replace(",", ".")) * _UNITS[match["unit"]]
    total = done if pct >= 100 else (round(done * 100 / pct) if pct > 0 else None)
    if pct >= 100:
        eta: float | None = 0.0
    else:
        eta = int(match["h"]) * 3600 + int(match["m"]) * 60 + int(match["s"])
    return TransferProgress(bytes_done=done, bytes_total=total, rate=rate, eta_seconds=eta)


@dataclass
class ZfsSendProgress:
    """Follows a ``zfs send -v -P`` stderr stream: the ``size`` estimate line gives the total,
    each per-second line the bytes sent so far; :meth:`feed` returns progress for tick lines."""

    bytes_total: int | None = None
    last_bytes: int | None = None
    _last: tuple[int, int] | None = None  # (seconds of day, bytes) of the previous tick

    def feed(self, line: str) -> TransferProgress | None:
        """Read one stderr line; progress for a per-second line, ``None`` for anything else."""
        size = _ZFS_SIZE.match(line.strip("\r\n"))
        if size:
            self.bytes_total = int(size["bytes"])
            return None
        tick = _ZFS_TICK.match(line.strip("\r\n"))
        if not tick:
            return None
        now = int(tick["h"]) * 3600 + int(tick["m"]) * 60 + int(tick["s"])
        done = int(tick["bytes"])
        rate = 0.0
        if self._last is not None:
            elapsed = (now - self._last[0]) % 86400 or 1  # ticks are a second apart; midnight wraps
            rate = max(0.0, (done - self._last[1]) / elapsed)
        self._last = (now, done)
        self.last_bytes = done
        eta = None
        if self.bytes_total is not None and rate > 0:
            eta = max(0.0, (self.bytes_total - done) / rate)
        return TransferProgress(bytes_done=done, bytes_total=self.bytes_total, rate=rate, eta_seconds=eta)
