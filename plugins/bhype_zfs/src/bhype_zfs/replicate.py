"""Full copies of a dataset: ``zfs send`` of a snapshot received as a new dataset (zfs-send(8), zfs-receive(8)).

The host runner runs one argv at a time and has no pipe between two commands, so the stream
passes through this process: ``zfs send`` first, its output then fed to ``zfs receive``. The
size is estimated beforehand (``zfs send -n -v -P``) and a copy larger than
``zfs.copy_max_bytes`` is refused before anything is sent. Linked clones (``zfs clone``) do not
copy data and have no such limit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bhype_core.errors import Conflict
from bhype_core.units import human_size
from bhype_zfs import argv
from bhype_zfs.names import check_full_snapshot
from bhype_zfs.parse import parse_send_estimate
from bhype_zfs.tool import ZfsHost


def estimate(host: ZfsHost, snapshot: str, **send_options: Any) -> int:
    """Bytes ``zfs send`` would produce for ``snapshot`` (``-n -v -P``: nothing is sent)."""
    text = host.text(argv.send(host.tools, snapshot, estimate=True, **send_options))
    return parse_send_estimate(text)


def send_receive(
    host: ZfsHost,
    snapshot: str,
    target: str,
    max_bytes: int,
    *,
    properties: Mapping[str, str] | None = None,
    replicate: bool = False,
    progress: Any = None,
) -> int:
    """Send ``snapshot`` and receive it as ``target`` (unmounted); returns the stream size.

    :raises Conflict: the estimate exceeds ``max_bytes``, or ``target`` exists.
    """
    check_full_snapshot(snapshot)
    size = estimate(host, snapshot, replicate=replicate)
    if size > max_bytes:
        raise Conflict(
            f"copying {snapshot} needs a {human_size(size)} send stream, more than zfs.copy_max_bytes "
            f"({human_size(max_bytes)}) allows through the runner; use a linked clone instead, or raise the limit"
        )
    if host.exists(target):
        raise Conflict(f"{target} already exists")
    if progress is not None:
        progress(10, f"sending {snapshot} ({human_size(size)})")
    stream = host.run(argv.send(host.tools, snapshot, replicate=replicate)).stdout_bytes
    if progress is not None:
        progress(60, f"receiving {target}")
    host.run(argv.receive(host.tools, target, properties=properties), input=stream)
    return len(stream)


def copy_dataset(
    host: ZfsHost,
    snapshot: str,
    target: str,
    max_bytes: int,
    progress: Any = None,
    properties: Mapping[str, str] | None = None,
) -> None:
    """An independent copy of one dataset at ``snapshot`` as ``target``; the snapshot that
    arrives with the stream is destroyed, so the copy shares nothing with the source."""
    props = dict(properties or {})
    if _is_volume(host, snapshot):
        props.setdefault("volmode", "dev")
    send_receive(host, snapshot, target, max_bytes, properties=props, progress=progress)
    host.run(argv.destroy_snapshots(host.tools, target, [snapshot.split("@")[1]]))
    if progress is not None:
        progress(100, f"copied to {target}")


def _is_volume(host: ZfsHost, snapshot: str) -> bool:
    dataset = snapshot.split("@")[0]
    text = host.text(argv.list_datasets(host.tools, ["type"], [dataset], types=("filesystem", "volume")))
    return text.strip() == "volume"
