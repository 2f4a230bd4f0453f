"""``/api/v1/templates/{name}/image``: a template's official cloud image, and fetching it once.

``GET`` says which image the template names (mirrors applied) and whether the datastore's
library has it; ``POST`` queues ``image.fetch`` (202) or, when the library already has the
image, answers 200 without a task: fetching is done once.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from bhype_core.api.deps import RuntimeDep
from bhype_core.api.principal import Principal, PrincipalDep
from bhype_core.cloud_images import image_status
from bhype_core.hosts.placement import hosts_holding
from bhype_core.hosts.settings import local_host_name

Datastore = Annotated[str | None, Query(description="datastore; default vm.default_datastore")]


class TemplateImage(BaseModel):
    """A template's cloud image and whether the library has it."""

    template: str
    datastore: str
    host: str = Field("", description="the group host whose library was looked at (this API's host, issue 22)")
    hosts: list[str] = Field(default_factory=list,
                             description="the group hosts whose library holds the image (placement needs one of them)")
    present: bool = Field(description="the library holds a file of this name")
    size: int | None = None
    url: str = Field(description="where the image is fetched from (after [images] mirrors)")
    checksums: str = Field(description="the distribution's checksum file")
    name: str = Field(description="file name in the library (a disk source for new VMs)")
    file: str = Field(description="the image's name in the checksum file")
    user: str = Field(description="the image's default account (SSH keys go there)")
    compression: str | None = None


class ImageFetchAnswer(BaseModel):
    """``task_id`` of the queued ``image.fetch``, or none when the image is already there."""

    template: str
    image: str
    datastore: str
    present: bool
    task_id: str | None = None
    kind: str | None = None
    message: str


def _submit(runtime: Any, principal: Principal, arguments: dict[str, Any]) -> Any:
    from bhype_core.tasks.service import submit

    return submit(runtime, principal, "image.fetch", arguments)


def make_router() -> APIRouter:
    """Build the router; mounted at ``/api/v1/templates`` beside the templates router."""
    router = APIRouter(tags=["templates"])

    @router.get("/{name}/image", response_model=TemplateImage)
    def show(name: str, runtime: RuntimeDep, principal: PrincipalDep, datastore: Datastore = None) -> TemplateImage:
        """The template's cloud image and whether the datastore's library has it."""
        status = image_status(runtime, name, datastore)
        return TemplateImage(**status, host=local_host_name(runtime), hosts=hosts_holding(runtime, status["datastore"],
                                                                                         status["name"]))

    @router.post("/{name}/image", status_code=202, response_model=ImageFetchAnswer,
                 responses={200: {"model": ImageFetchAnswer, "description": "already in the library"}})
    def fetch(name: str, response: Response, runtime: RuntimeDep, principal: PrincipalDep,
              datastore: Datastore = None) -> ImageFetchAnswer:
        """Fetch the template's cloud image into the library once: checksum file first, then the
        image (progress, resume, verified); a no-op (200, no task) when it is already there."""
        status = image_status(runtime, name, datastore)
        answer = {"template": name, "image": status["name"], "datastore": status["datastore"]}
        if status["present"]:
            response.status_code = 200
            return ImageFetchAnswer(**answer, present=True, message=(
                f"{status['name']} is already in the library of datastore {status['datastore']}: nothing to do"))
        task = _submit(runtime, principal, {"template": name, "name": status["name"], "datastore": datastore})
        return ImageFetchAnswer(**answer, present=False, task_id=task.id, kind="image.fetch",
                                message=f"fetching {status['name']} from {status['url']}")

    return router
