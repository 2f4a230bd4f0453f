"""``/api/v1/isos``: the ISO library: list, show, upload (streamed), fetch from a URL, delete.

Changes are tasks: an upload is streamed to a staging file here (size-limited, SHA-256 taken
on the way and compared with the one the client gives), then the ``iso.import`` task moves it
into the datastore; ``iso.fetch`` and ``iso.delete`` run entirely in the worker.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from bhype_core.api.deps import RuntimeDep
from bhype_core.api.principal import Principal, PrincipalDep
from bhype_core.checksums import check_digest
from bhype_core.errors import Forbidden, ValidationErrors
from bhype_core.fetch_guard import literal_refusal
from bhype_core.hosts.settings import local_host_name
from bhype_core.iso_fetch import check_url
from bhype_core.isos import (
    TooLarge,
    check_iso_name,
    check_sha256,
    datastore_of,
    ensure_absent,
    iso_settings,
    list_isos,
    read_info,
    upload_path,
    uploads_dir,
)
from bhype_core.vm.services import open_datastore

Datastore = Annotated[str | None, Query(description="datastore; default vm.default_datastore")]


class IsoPublic(BaseModel):
    """One ISO: size, SHA-256 (null when added by hand), where it came from."""

    name: str
    datastore: str
    host: str = Field("", description="the group host whose datastore holds the file (issue 22)")
    size: int
    sha256: str | None = None
    source: str | None = None
    added: str | None = None
    added_by: str | None = None


class IsoList(BaseModel):
    """The ISOs of one datastore, by name."""

    isos: list[IsoPublic]


class IsoFetch(BaseModel):
    """An ISO to download: from ``url``, stored as ``name``, verified against ``sha256``."""

    url: str
    name: str
    sha256: str | None = Field(None, description="expected SHA-256 (64 hex digits); strongly advised")
    sha512: str | None = Field(None, description="expected SHA-512 (128 hex digits), e.g. from Debian's SHA512SUMS")
    datastore: str | None = None


class IsoTask(BaseModel):
    """The task doing the work: follow it under ``/api/v1/tasks/{task_id}``."""

    task_id: str
    kind: str
    iso: str


def _submit(runtime: Any, principal: Principal, kind: str, arguments: dict[str, Any]) -> IsoTask:
    from bhype_core.tasks.service import submit

    task = submit(runtime, principal, kind, arguments)
    return IsoTask(task_id=task.id, kind=kind, iso=arguments["name"])


def make_router() -> APIRouter:
    """Build the ISO router; mounted at ``/api/v1/isos``."""
    router = APIRouter(tags=["isos"])

    @router.get("", response_model=IsoList)
    def list_all(runtime: RuntimeDep, principal: PrincipalDep, datastore: Datastore = None) -> IsoList:
        """Every ISO of a datastore's library."""
        store = open_datastore(runtime, datastore)
        here = local_host_name(runtime)
        return IsoList(isos=[IsoPublic(**info.to_dict(), host=here) for info in list_isos(store)])

    @router.get("/{name}", response_model=IsoPublic)
    def show(name: str, runtime: RuntimeDep, principal: PrincipalDep, datastore: Datastore = None) -> IsoPublic:
        """One ISO."""
        return IsoPublic(**read_info(open_datastore(runtime, datastore), name).to_dict(), host=local_host_name(runtime))

    @router.post("/fetch", status_code=202, response_model=IsoTask)
    def fetch(body: IsoFetch, runtime: RuntimeDep, principal: PrincipalDep) -> IsoTask:
        """Download an ISO from an http(s) URL (a task: progress, resumed after dropped
        connections, checksum verified)."""
        errors = ValidationErrors()
        for check in (lambda: check_url(body.url), lambda: check_iso_name(body.name),
                      lambda: check_sha256(body.sha256), lambda: check_digest(body.sha512, "sha512", "sha512")):
            try:
                check()
            except ValidationErrors as exc:
                errors.extend(exc)
        # An address literal can be refused now; a name is resolved and checked by the worker.
        refusal = "" if errors.errors else literal_refusal(body.url, iso_settings(runtime).fetch_allow)
        if refusal:
            errors.add("url", f"refused: {refusal}")
        errors.raise_if_any()
        ensure_absent(open_datastore(runtime, body.datastore), body.name)
        arguments = {"url": body.url, "name": body.name, "sha256": check_sha256(body.sha256),
                     "datastore": body.datastore}
        if body.sha512:
            arguments["sha512"] = check_digest(body.sha512, "sha512", "sha512")
        return _submit(runtime, principal, "iso.fetch", arguments)

    @router.put("/{name}", status_code=202, response_model=IsoTask,
                openapi_extra={"requestBody": {"content": {"application/octet-stream": {}}, "required": True}})
    async def upload(
        name: str,
        request: Request,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        datastore: Datastore = None,
        sha256: Annotated[str | None, Query(description="expected SHA-256; the upload is refused on mismatch")] = None,
    ) -> IsoTask:
        """Upload an ISO as the raw request body (streamed; at most ``isos.max_size``)."""
        check_iso_name(name)
        expected = check_sha256(sha256)
        ensure_absent(open_datastore(runtime, datastore), name)
        limit = iso_settings(runtime).max_size
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limit:
            raise TooLarge([("body", f"{int(length)} bytes is more than isos.max_size ({limit})")])
        upload_id = secrets.token_hex(16)
        staged = upload_path(runtime, upload_id)
        uploads_dir(runtime).mkdir(mode=0o700, parents=True, exist_ok=True)
        digest, size = hashlib.sha256(), 0
        try:
            with open(staged, "xb") as handle:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge([("body", f"the upload passed isos.max_size ({limit} bytes)")])
                    digest.update(chunk)
                    handle.write(chunk)
            actual = digest.hexdigest()
            if size == 0:
                raise ValidationErrors([("body", "the upload is empty")])
            if expected and actual != expected:
                raise ValidationErrors([("sha256", f"checksum mismatch: expected {expected}, received {actual}")])
            arguments = {"name": name, "upload": upload_id, "sha256": actual, "datastore": datastore}
            return _submit(runtime, principal, "iso.import", arguments)
        except BaseException:
            if staged.exists():
                os.unlink(staged)
            raise

    @router.delete("/{name}", status_code=202, response_model=IsoTask)
    def delete(name: str, runtime: RuntimeDep, principal: PrincipalDep, datastore: Datastore = None) -> IsoTask:
        """Delete an ISO (admins, or whoever added it); refused while a VM attaches it."""
        from bhype_core.isos import vms_using

        store = open_datastore(runtime, datastore)
        info = read_info(store, name)
        if not principal.is_admin and info.added_by != principal.name:
            raise Forbidden("only admins, or whoever added the ISO, may delete it")
        users = vms_using(runtime, datastore_of(store), name)
        if users:
            from bhype_core.errors import Conflict

            raise Conflict(f"ISO {name} is attached to VM(s) {', '.join(users)}: detach it first")
        return _submit(runtime, principal, "iso.delete", {"name": name, "datastore": datastore})

    return router
