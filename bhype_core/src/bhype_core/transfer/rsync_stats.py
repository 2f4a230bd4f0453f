"""``rsync --stats`` output as numbers (rsync(1) ``--stats``; RsyncProject/rsync rsync.1.md).

The block printed by ``--stats`` (same as ``--info=stats2``) names each figure on its own
line: ``Number of files: 3 (reg: 2, dir: 1)``, ``Total file size: 50,000,003 bytes``,
``Literal data`` (bytes the sender really had to send), ``Matched data`` (rebuilt from the
receiver's basis file), ``Total bytes sent``/``Total bytes received`` (wire bytes, client to
server and back). Thousands separators are commas since 3.1.0 (or the locale's).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^(?P<name>[A-Z][A-Za-z ]+?):\s+(?P<value>[\d,.']+)(?:\s+bytes)?\b")
_FIELDS = {
    "Number of files": "files",
    "Number of created files": "created_files",
    "Number of deleted files": "deleted_files",
    "Number of regular files transferred": "files_transferred",
    "Total file size": "total_size",
    "Total transferred file size": "transferred_size",
    "Literal data": "literal_bytes",
    "Matched data": "matched_bytes",
    "File list size": "file_list_size",
    "Total bytes sent": "bytes_sent",
    "Total bytes received": "bytes_received",
}


@dataclass(frozen=True)
class RsyncStats:
    """The ``--stats`` figures (0 for a figure rsync did not print)."""

    files: int = 0
    created_files: int = 0
    deleted_files: int = 0
    files_transferred: int = 0
    total_size: int = 0
    transferred_size: int = 0
    literal_bytes: int = 0
    matched_bytes: int = 0
    file_list_size: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0

    @property
    def wire_bytes(self) -> int:
        """Bytes that crossed the connection both ways (protocol overhead included)."""
        return self.bytes_sent + self.bytes_received


def parse_rsync_stats(text: str) -> RsyncStats:
    """The figures of the ``--stats`` block in ``text`` (rsync's whole stdout will do).

    :raises ValueError: ``text`` holds no ``--stats`` block (no ``Total bytes sent`` line).
    """
    values: dict[str, int] = {}
    for raw in text.replace("\r", "\n").splitlines():
        match = _LINE.match(raw.strip())
        if match and match["name"] in _FIELDS:
            values[_FIELDS[match["name"]]] = int(re.sub(r"[,.']", "", match["value"]))
    if "bytes_sent" not in values:
        raise ValueError("no rsync --stats block found (no 'Total bytes sent' line)")
    return RsyncStats(**values)
