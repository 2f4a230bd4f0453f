"""Full copies of a dataset: ``zfs send`` of a snapshot piped into ``zfs receive`` (zfs-send(8), zfs-receive(8)).

The stream goes from one command to the other through an OS pipe on the host
(:meth:`Runner.pipe <bhype_core.host.runner.Runner.pipe>`), never through bHype's memory, so a
copy may be as large as the pool allows. Before anything is sent the stream size is estimated
(``zfs send -n -v -P``) and compared with the space left where the copy goes (``zfs list -Hp -o
avail``): a copy that cannot fit is refused instead of failing half-way. While it runs, ``zfs
send -v -P`` reports the bytes sent every second on stderr; those lines become task progress.
A receive that fails leaves nothing behind (zfs-receive(8) discards a partial non-resumable
receive). Linked clones (``zfs clone``) copy no data and need none of this.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bhype_core.plugin_api import Conflict, human_size
from bhype_zfs import argv
from bhype_zfs.names import check_full_snapshot
from bhype_zfs.parse import parse_send_estimate, parse_send_progress, to_int
from bhype_zfs.tool import ZfsHost

ProgressCallback = Callable[[int, str], Any]


def estimate(host: ZfsHost, snapshot: str, **send_options: Any) -> int:
    """Bytes ``zfs send`` would produce for ``snapshot`` (``-n -v -P``: nothing is sent)."""
    text = host.text(argv.send(host.tools, snapshot, estimate=True, **send_options))
    return parse_send_estimate(text)


def available(host: ZfsHost, dataset: str) -> int | None:
    """Bytes that can still be written below ``dataset`` (``zfs list -Hp -o avail``, zfs-list(8));
    ``None`` when the tool printed no number."""
    text = host.text(argv.list_datasets(host.tools, ["avail"], [dataset], types=("filesystem", "volume")))
    return to_int(text.strip())


def send_receive(
    host: ZfsHost,
    snapshot: str,
    target: str,
    *,
    properties: Mapping[str, str] | None = None,
    replicate: bool = False,
    progress: ProgressCallback | None = None,
    timeout: float | None = None,
) -> int:
    """Send ``snapshot`` and receive it as ``target`` (unmounted); returns the estimated stream size.

    :param replicate: ``-R``: descendants, snapshots and properties come along.
    :param progress: called with ``(percent, message)`` as the stream goes (0-100 of this copy).
    :param timeout: seconds for the whole copy (default the host's task timeout).
    :raises Conflict: ``target`` exists, or the stream is larger than the space left at
        ``target``'s parent (nothing sent).
    :raises CommandError: the send or the receive failed (the receive's own words first).
    """
    check_full_snapshot(snapshot)
    if host.exists(target):
        raise Conflict(f"{target} already exists")
    size = estimate(host, snapshot, replicate=replicate)
    # A thick volume's copy reserves its whole refreservation at once, however little is written.
    reservation = (properties or {}).get("refreservation", "")
    needed = max(size, int(reservation) if reservation.isdigit() else 0)
    parent = target.rsplit("/", 1)[0]
    room = available(host, parent)
    if room is not None and needed > room:
        raise Conflict(
            f"copying {snapshot} needs about {human_size(needed)}, but only {human_size(room)} is free at "
            f"{parent}; free some space or use a linked clone (which copies nothing)"
        )
    if progress is not None:
        progress(0, f"sending {snapshot} to {target} ({human_size(size)})")

    def report(line: str) -> None:
        sent = parse_send_progress(line)
        if sent is not None and progress is not None and size:
            progress(min(99, int(100 * sent / size)), f"sent {human_size(sent)} of {human_size(size)}")

    host.pipe(
        argv.send(host.tools, snapshot, replicate=replicate, verbose=True),
        argv.receive(host.tools, target, properties=properties),
        timeout=timeout,
        on_producer_line=report,
    )
    if progress is not None:
        progress(100, f"received {target}")
    return size


def copy_dataset(
    host: ZfsHost,
    snapshot: str,
    target: str,
    progress: ProgressCallback | None = None,
    properties: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> None:
    """An independent copy of one dataset at ``snapshot`` as ``target``; the snapshot that
    arrives with the stream is destroyed, so the copy shares nothing with the source.

    A volume's copy gets ``volmode=dev``; a thick (non-sparse) volume's copy keeps its
    ``refreservation``, which a stream sent without ``-p`` would not carry (zfs-send(8)), so a
    copy of a VM whose space was guaranteed is guaranteed too.
    """
    props = dict(properties or {})
    kind, reservation = _type_and_reservation(host, snapshot.split("@")[0])
    if kind == "volume":
        props.setdefault("volmode", "dev")
        if reservation:
            props.setdefault("refreservation", str(reservation))
    send_receive(host, snapshot, target, properties=props, progress=progress, timeout=timeout)
    host.run(argv.destroy_snapshots(host.tools, target, [snapshot.split("@")[1]]))


def _type_and_reservation(host: ZfsHost, dataset: str) -> tuple[str, int]:
    """``(filesystem|volume, refreservation in bytes)`` of ``dataset`` (zfs-list(8) ``-Hp``)."""
    text = host.text(argv.list_datasets(host.tools, ["type", "refreservation"], [dataset],
                                        types=("filesystem", "volume")))
    kind, _, reservation = text.strip().partition("\t")
    return kind, to_int(reservation) or 0  # -p prints a number; anything else is a parse error
