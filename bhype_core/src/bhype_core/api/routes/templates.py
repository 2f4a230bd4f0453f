"""``/api/v1/templates``: the OS templates a VM is created from (shipped and admin-added)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bhype_core.api.deps import RuntimeDep
from bhype_core.api.principal import PrincipalDep
from bhype_core.vm.services import template_catalog


class TemplateInfo(BaseModel):
    """One template: what it is for and the spec a VM gets from it before overrides."""

    name: str
    title: str
    os_type: str
    cloud_init: bool
    notes: str
    source: str = Field(description="builtin, or admin (a file in vm.templates_dir)")
    image: dict[str, Any] | None = Field(
        None, description="the distribution's cloud image (url, checksums, name, file, user) as the template "
        "names it, before [images] mirrors; GET /api/v1/templates/{name}/image for its library status")
    defaults: dict[str, Any]


class TemplateList(BaseModel):
    """Templates by name, and admin files that failed to load (path: problem)."""

    templates: list[TemplateInfo]
    errors: dict[str, str]


def make_router() -> APIRouter:
    """Build the templates router (a fresh one per app); mounted at ``/api/v1/templates``."""
    router = APIRouter(tags=["templates"])

    @router.get("", response_model=TemplateList)
    def list_templates(runtime: RuntimeDep, principal: PrincipalDep) -> TemplateList:
        """Every template, with broken admin template files named and explained."""
        catalog = template_catalog(runtime)
        return TemplateList(
            templates=[TemplateInfo(**template.summary()) for template in catalog.list()],
            errors=catalog.errors,
        )

    @router.get("/{name}", response_model=TemplateInfo)
    def show_template(name: str, runtime: RuntimeDep, principal: PrincipalDep) -> TemplateInfo:
        """One template and the spec defaults it gives a new VM."""
        return TemplateInfo(**template_catalog(runtime).get(name).summary())

    return router
