"""Built-in plugin ``core_isos``: the ISO library (issue 5): its task kinds (``iso.fetch``,
``iso.import``, ``iso.delete``), the ``[isos]`` section, ``/api/v1/isos`` and ``bhype iso``;
templates' cloud images in that library (issue 14): ``image.fetch``, the ``[images]`` section,
``/api/v1/templates/{name}/image`` and ``bhype image``.

Registered under its own name (issue 12) so ``bhype plugins`` shows the library apart from the
virtual switches (``core_network``) and a deployment can disable one without the other.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core import iso_staging
from bhype_core.cloud_images import SECTION as IMAGES_SECTION
from bhype_core.cloud_images import ImageSettings, fetch_image, image_lock
from bhype_core.hookspecs import hookimpl
from bhype_core.iso_access import may_delete_iso
from bhype_core.iso_fetch import fetch_iso
from bhype_core.isos import SECTION, IsoSettings, delete_iso_task, import_upload, iso_lock
from bhype_core.registry import CliCommand, PeriodicJob, RouterEntry, SettingsSection, TaskKind, UndoAction

ISO_KINDS: dict[str, tuple[Callable[..., Any], str]] = {
    "iso.fetch": (fetch_iso, "download an ISO from a URL (resumable, checksum verified)"),
    "iso.import": (import_upload, "move an uploaded ISO into the library"),
    "iso.delete": (delete_iso_task, "delete an ISO no VM attaches"),
}


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """The ``[isos]`` section: size limit and fetch retries; ``[images]``: mirrors."""
    register(SettingsSection(name=SECTION, model=IsoSettings))
    register(SettingsSection(name=IMAGES_SECTION, model=ImageSettings))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``iso.*`` (lock ``iso:<name>``) and ``image.fetch``: the shared ISO library, for
    operators too (``image.fetch`` only fetches what an admin's templates and mirrors name);
    ``iso.delete`` only for admins and whoever added the ISO."""
    for name, (run, description) in ISO_KINDS.items():
        authorize = may_delete_iso if name == "iso.delete" else None
        register(TaskKind(name=name, run=run, description=description, locks=iso_lock,
                          role="operator", authorize=authorize))
    register(TaskKind(name="image.fetch", run=fetch_image, locks=image_lock, role="operator",
                      description="fetch a template's cloud image into the library once (checksum file verified)"))
    register(TaskKind(name="iso.clean_uploads", run=iso_staging.clean_uploads_job, role="admin",
                      description="remove staged ISO uploads older than isos.staged_max_age no import names"))


@hookimpl
def bhype_register_undo_actions(register: Callable[[UndoAction], None]) -> None:
    """Recovery of an interrupted ``iso.import``: remove the ``.partial-`` file or the
    unrecorded ISO it left (issue 11)."""
    for action in iso_staging.UNDO_ACTIONS:
        register(action)


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """``iso.clean-uploads`` hourly and at worker start: staged uploads older than
    ``isos.staged_max_age`` that no pending ``iso.import`` names (an API killed mid-upload,
    an import that never ran)."""
    register(PeriodicJob(name="iso.clean-uploads", kind="iso.clean_uploads", minute="17",
                         run_at_start=True, description="remove stale staged ISO uploads"))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """``/api/v1/isos`` and ``/api/v1/templates/{name}/image``."""
    from bhype_core.api.routes import isos, template_images

    register(RouterEntry(name="isos", router=isos.make_router()))
    register(RouterEntry(name="template-images", router=template_images.make_router(), prefix="/api/v1/templates"))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype iso …`` and ``bhype image …``."""
    from bhype_core.commands import image, iso

    register(iso.command())
    register(image.command())
