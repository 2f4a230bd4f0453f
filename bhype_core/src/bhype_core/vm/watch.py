"""VM crashes and power-offs noticed within seconds: the worker watches the supervisors' state files.

Each VM's supervisor rewrites ``<vm_dir>/state.json`` (atomically, so as a new file) whenever
its VM changes state: running, rebooted, powered off, crashed. The minutely
``vm.reconcile-states`` job asks the driver about every VM; between its runs the watcher
``vm.state-files`` stats every VM's state file every few seconds and, for the VMs whose file
changed, asks the driver at once (:func:`~bhype_core.vm.reconcile.refresh_states`). A crash
becomes a ``vm.crashed`` event (the driver's crash listener, once per crash however many
processes look), the cached state is corrected and the taps are unplugged, seconds after
the supervisor wrote it. A tick costs one database query and one ``stat`` per VM that is not
stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import or_
from sqlmodel import col, select

from bhype_core.db.session import session
from bhype_core.drivers.state import VMFiles
from bhype_core.hosts.settings import local_host_name
from bhype_core.vm.models import VM
from bhype_core.vm.reconcile import refresh_states
from bhype_core.vm.services import open_datastore

log = logging.getLogger("bhype.vm")

INTERVAL = 2.0  # seconds between ticks

Signature = tuple[int, int] | None  # (mtime in ns, inode) of a state file; None: none yet


class StateFileWatch:
    """The tick of the ``vm.state-files`` watcher for one runtime; call it to check once."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.seen: dict[str, Signature] = {}
        # A VM's state file does not move while it exists; working the path out again (the
        # datastore confines it with realpath) would be most of a tick's cost.
        self.paths: dict[tuple[str, str], Path] = {}

    def __call__(self) -> list[str]:
        """Refresh the VMs whose state file changed since the last call (the first call only
        looks); returns their names."""
        current = self.signatures()
        changed = sorted(name for name, signature in current.items()
                         if name in self.seen and self.seen[name] != signature)
        self.seen = current
        if changed:
            refresh_states(self.runtime, _log, names=changed)
        return changed

    def signatures(self) -> dict[str, Signature]:
        """Every VM's state-file signature."""
        with session(self.runtime) as db:
            # A stopped VM has no supervisor to write its state file (a start task sets the row
            # going first): 200 running VMs among 10,000 records cost 200 stats (issue 15).
            # Two ranges around "stopped" rather than "!=": both read the state index (issue 15).
            # The host is compared here, not in SQL: with it there, SQLite chose the host index
            # (one value on a single host) and read all 10,000 rows, specs and all, every tick.
            query = select(VM.name, VM.datastore, VM.host).where(
                or_(col(VM.state) < "stopped", col(VM.state) > "stopped"))
            here = (local_host_name(self.runtime), "")  # this group host's VMs (issue 22)
            rows = [(name, datastore) for name, datastore, host in db.exec(query).all() if host in here]
        present = set(rows)
        self.paths = {key: path for key, path in self.paths.items() if key in present}  # forget destroyed VMs
        signatures: dict[str, Signature] = {}
        for name, datastore in rows:
            try:
                path = self.paths.get((name, datastore)) or self._state_file(name, datastore)
                stat = path.stat()
            except Exception:  # no file yet, or a datastore that is gone: nothing to compare
                signatures[name] = None
                continue
            signatures[name] = (stat.st_mtime_ns, stat.st_ino)
        return signatures

    def _state_file(self, name: str, datastore: str) -> Path:
        path = VMFiles(open_datastore(self.runtime, datastore).vm_dir(name)).state
        self.paths[(name, datastore)] = path
        return path


def _log(message: str, level: str = "info") -> None:
    log.log(logging.getLevelName(level.upper()), "state files: %s", message)
