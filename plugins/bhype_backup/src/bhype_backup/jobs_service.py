"""Backup jobs as records: create (validated), list, show, remove, and which VMs a job selects."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import col, select

from bhype_backup import schedule as cron
from bhype_backup.jobs_models import MODES, BackupJob
from bhype_core.plugin_api import (
    NAME_RE,
    Conflict,
    NotFound,
    RetentionPolicy,
    ValidationErrors,
    list_vms,
    session,
)

_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$")
DRILL_KINDS = ("serial", "vnc", "tcp")


class JobCreate(BaseModel):
    """What ``POST /api/v1/backup/jobs`` and ``bhype backup job add`` take."""

    name: str = Field(max_length=63)
    target: str = Field(max_length=63)
    mode: str = "snapshot"
    schedule: str = Field(default="@daily", max_length=120)
    vms: list[str] = Field(default_factory=list, max_length=1000)
    owners: list[str] = Field(default_factory=list, max_length=100)
    tags: list[str] = Field(default_factory=list, max_length=100)
    retention: str = Field(default="last=7", max_length=200)
    window_minutes: int = Field(default=1440, ge=1, le=60 * 24 * 366)
    enabled: bool = True
    drill_schedule: str = Field(default="", max_length=120)
    drill_check: dict[str, Any] = Field(default_factory=dict)
    drill_timeout: int = Field(default=600, ge=10, le=7200)


class JobUpdate(BaseModel):
    """What ``PATCH /api/v1/backup/jobs/{name}`` takes: only the fields given change (the
    name stays; ``enabled`` alone is ``job enable|disable``)."""

    target: str | None = Field(None, max_length=63)
    mode: str | None = None
    schedule: str | None = Field(None, max_length=120)
    vms: list[str] | None = Field(None, max_length=1000)
    owners: list[str] | None = Field(None, max_length=100)
    tags: list[str] | None = Field(None, max_length=100)
    retention: str | None = Field(None, max_length=200)
    window_minutes: int | None = Field(None, ge=1, le=60 * 24 * 366)
    enabled: bool | None = None
    drill_schedule: str | None = Field(None, max_length=120)
    drill_check: dict[str, Any] | None = None
    drill_timeout: int | None = Field(None, ge=10, le=7200)


class JobPublic(BaseModel):
    """A job as the API shows it."""

    id: int
    name: str
    owner: str
    target: str
    mode: str
    schedule: str
    vms: list[str]
    owners: list[str]
    tags: list[str]
    retention: str
    window_minutes: int
    enabled: bool
    drill_schedule: str
    drill_check: dict[str, Any]
    drill_timeout: int
    last_task: str | None
    last_state: str
    last_error: str
    last_started: Any
    last_finished: Any
    last_success: Any
    overdue_since: Any

    @classmethod
    def of(cls, job: BackupJob) -> JobPublic:
        """The public view of a row."""
        return cls.model_validate(job.model_dump())


def target_names(runtime: Any) -> set[str]:
    """Names of the backup targets a job may name (the target records, and any still in
    ``[backup] targets`` of the settings)."""
    names = {t.name for t in getattr(runtime.settings.section("backup"), "targets", [])}
    try:
        from bhype_backup.models import BackupTarget  # type: ignore[attr-defined]
    except ImportError:  # no target records in this version
        return names
    with session(runtime) as db:
        names.update(db.exec(select(BackupTarget.name)).all())
    return names


def policy_of(job: BackupJob | JobCreate) -> RetentionPolicy:
    """The job's retention policy (the core's one implementation)."""
    return RetentionPolicy.parse(job.retention)


def check_drill(check: dict[str, Any]) -> list[tuple[str, str]]:
    """Problems with a drill's sign of life (``drill_check.<field>``, message)."""
    if not check:
        return []
    kind = check.get("kind")
    if kind not in DRILL_KINDS:
        return [("drill_check.kind", f"must be one of {', '.join(DRILL_KINDS)}")]
    if kind == "serial" and not (isinstance(check.get("text"), str) and 0 < len(check["text"]) <= 200):
        return [("drill_check.text", "the serial console text to wait for (1-200 characters)")]
    problems = []
    if kind == "tcp":
        port = check.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            problems.append(("drill_check.port", "the guest's TCP port that must answer (1-65535)"))
        address = check.get("address")
        if address is not None:
            try:
                ip = ipaddress.ip_address(str(address))
            except ValueError:
                ip = None
            if ip is None or ip.version != 6 or not ip.is_link_local:
                problems.append(("drill_check.address", "the guest's IPv6 link-local address (fe80::…) on the "
                                 "drill switch, or leave it out (derived from the NIC's MAC)"))
    unknown = set(check) - {"kind", "text", "port", "address"}
    problems += [(f"drill_check.{key}", "unknown field") for key in sorted(unknown)]
    return problems


def validate(runtime: Any, data: JobCreate) -> None:
    """Check every field and raise once with all problems.

    :raises ValidationErrors: dotted field names, each with what is wrong.
    """
    errors = ValidationErrors()
    if not NAME_RE.match(data.name or ""):
        errors.add("name", "letters, digits, '-', '_', '.', starting with a letter or digit")
    if data.target not in target_names(runtime):
        errors.add("target", f"no backup target named {data.target!r}")
    if data.mode not in MODES:
        errors.add("mode", f"must be one of {', '.join(MODES)}")
    for field in ("schedule", "drill_schedule"):
        value = getattr(data, field)
        if value or field == "schedule":
            try:
                cron.parse(value)
            except ValueError as exc:
                errors.add(field, str(exc))
    try:
        if not policy_of(data).keeps_anything():
            errors.add("retention", "keeps nothing: give last=N or a period's count")
    except ValueError as exc:
        errors.add("retention", str(exc))
    for i, name in enumerate(data.vms):
        if not NAME_RE.match(name):
            errors.add(f"vms.{i}", "not a VM name")
    for i, tag in enumerate(data.tags):
        if not _TAG.match(tag):
            errors.add(f"tags.{i}", "not a tag")
    for i, owner in enumerate(data.owners):
        if not owner or len(owner) > 64 or not owner.isprintable() or " " in owner:
            errors.add(f"owners.{i}", "not a user name")
    if not (data.vms or data.owners or data.tags):
        errors.add("vms", "select VMs by name (vms), owner (owners) or tag (tags)")
    for path, message in check_drill(data.drill_check):
        errors.add(path, message)
    if data.drill_schedule and not data.drill_check:
        errors.add("drill_check", "a drill needs a sign of life to wait for")
    errors.raise_if_any()


def create_job(runtime: Any, owner: str, data: JobCreate) -> BackupJob:
    """Store a new job; its first run is the first schedule slot after now.

    :raises ValidationErrors: a bad field (all of them, at once).
    :raises Conflict: a job of that name exists.
    """
    from bhype_core.plugin_api import utcnow

    validate(runtime, data)
    with session(runtime, write=True) as db:
        if db.exec(select(BackupJob).where(BackupJob.name == data.name)).first() is not None:
            raise Conflict(f"a backup job named {data.name!r} already exists")
        now = utcnow()
        # The slot that is already past when the job is made does not count as missed.
        row = BackupJob(**data.model_dump(), owner=owner, created=now,
                        last_slot=cron.latest_slot(cron.parse(data.schedule), now),
                        last_drill_slot=cron.latest_slot(cron.parse(data.drill_schedule), now)
                        if data.drill_schedule else None)
        db.add(row)
    return row


def edit_job(runtime: Any, key: str | int, changes: JobUpdate) -> BackupJob:
    """Change the given fields of job ``key`` (name or id), validated as a whole like a new
    job. A new schedule (or drill schedule) starts from now: a slot already past does not
    count as missed.

    :raises NotFound: no such job. :raises ValidationErrors: the job it would become is bad.
    """
    from bhype_core.plugin_api import utcnow

    current = get_job(runtime, key)
    given = changes.model_dump(exclude_unset=True, exclude_none=True)
    merged = JobCreate(**{**current.model_dump(include=set(JobCreate.model_fields)), **given})
    validate(runtime, merged)
    now = utcnow()
    with session(runtime, write=True) as db:
        row = db.get(BackupJob, current.id)
        if row is None:
            raise NotFound(f"no backup job {key!r}")
        for field, value in given.items():
            setattr(row, field, value)
        if "schedule" in given and given["schedule"] != current.schedule:
            row.last_slot = cron.latest_slot(cron.parse(merged.schedule), now)
        if "drill_schedule" in given and given["drill_schedule"] != current.drill_schedule:
            row.last_drill_slot = (cron.latest_slot(cron.parse(merged.drill_schedule), now)
                                   if merged.drill_schedule else None)
        if given.get("enabled") and not current.enabled:
            # Enabled again: what it missed while disabled does not run (nor count as overdue).
            row.last_slot = cron.latest_slot(cron.parse(merged.schedule), now)
            row.overdue_since = None
        db.add(row)
    return get_job(runtime, int(current.id or 0))


def find_job(runtime: Any, key: str) -> BackupJob:
    """A job by name, or by id when ``key`` is all digits and no job has that name.

    :raises NotFound: no such job."""
    try:
        return get_job(runtime, key)
    except NotFound:
        if key.isdigit():
            return get_job(runtime, int(key))
        raise


def list_jobs(runtime: Any) -> list[BackupJob]:
    """Every job, by name."""
    with session(runtime) as db:
        return list(db.exec(select(BackupJob).order_by(col(BackupJob.name))).all())


def get_job(runtime: Any, key: str | int) -> BackupJob:
    """A job by name or id.

    :raises NotFound: no such job.
    """
    with session(runtime) as db:
        query = select(BackupJob).where(BackupJob.id == key if isinstance(key, int) else BackupJob.name == key)
        row = db.exec(query).first()
    if row is None:
        raise NotFound(f"no backup job {key!r}")
    return row


def delete_job(runtime: Any, name: str) -> None:
    """Remove a job (its points stay, listed without a job's retention).

    :raises NotFound: no such job.
    """
    with session(runtime, write=True) as db:
        row = db.exec(select(BackupJob).where(BackupJob.name == name)).first()
        if row is None:
            raise NotFound(f"no backup job {name!r}")
        db.delete(row)


def update_job(runtime: Any, job_id: int, **values: Any) -> None:
    """Set fields of a job's row (run bookkeeping); a job removed meanwhile is left alone."""
    with session(runtime, write=True) as db:
        row = db.get(BackupJob, job_id)
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)
            db.add(row)


def selected_vms(runtime: Any, job: BackupJob) -> list[Any]:
    """The VMs the job selects now (by name, owner or tag), by name."""
    names, owners, tags = set(job.vms), set(job.owners), set(job.tags)
    chosen = []
    for vm in list_vms(runtime):
        vm_tags = set((vm.spec or {}).get("tags") or ())
        if vm.name in names or vm.owner in owners or vm_tags & tags:
            chosen.append(vm)
    return chosen
