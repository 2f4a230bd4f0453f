"""Each VM's newest good backup point, for the core's ``bhype_vm_last_backups`` question (the
SNMP VM table's last backup time, issue 20): one grouped query over ``backup_point``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from bhype_backup.models import BackupPoint
from bhype_core.plugin_api import session

# A point whose verification found a mismatch is not a backup one can restore from (verify.py
# sets verify_state "failed"); one not verified yet ("none", "running") counts.
BAD_VERIFY = "failed"
# Up to this many UUIDs go into the query's IN (...); a longer list (a host of thousands of VMs)
# reads every VM's newest point and picks in Python: SQLite caps bound parameters (999 before 3.32).
IN_LIMIT = 500


def last_good_backups(runtime: Any, uuids: list[str] | None = None) -> dict[str, datetime]:
    """``{vm_uuid: created}`` of each VM's newest good point: complete (manifest written last;
    an interrupted or failed run never is) and not failed verification. ``created`` is when
    the run started, the moment the point's data represents. A drill's outcome does not count
    (the data matched; the guest did not boot). ``uuids``: only these VMs (``[]``: none)."""
    if uuids is not None and not uuids:
        return {}
    newest = func.max(col(BackupPoint.created))
    query = (select(col(BackupPoint.vm_uuid), newest)
             .where(col(BackupPoint.complete).is_(True), col(BackupPoint.verify_state) != BAD_VERIFY)
             .group_by(col(BackupPoint.vm_uuid)))
    if uuids is not None and len(uuids) <= IN_LIMIT:
        query = query.where(col(BackupPoint.vm_uuid).in_(uuids))
    with session(runtime) as db:
        rows = db.exec(query).all()
    wanted = None if uuids is None else set(uuids)
    # MAX() keeps the column's type (SQLAlchemy's max returns its argument's type), so the
    # values come back through UTCDateTime: aware UTC on SQLite and MariaDB alike.
    return {uuid: when for uuid, when in rows if when is not None and (wanted is None or uuid in wanted)}
