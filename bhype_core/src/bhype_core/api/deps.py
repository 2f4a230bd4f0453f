"""Annotated FastAPI dependencies, so routes read as prose (``runtime: RuntimeDep``).

They only read attributes: ``async def`` keeps them on the event loop (a plain ``def``
dependency costs a hop to the thread pool and back per request, issue 15)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bhype_core.config import Settings
from bhype_core.plugins import BhypePluginManager
from bhype_core.registry import Registry
from bhype_core.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    """The runtime :func:`~bhype_core.api.app.create_app` stored on the application."""
    return request.app.state.runtime


async def get_settings(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Settings:
    """The validated settings of this process."""
    return runtime.settings


async def get_plugin_manager(runtime: Annotated[Runtime, Depends(get_runtime)]) -> BhypePluginManager:
    """The plugin manager (for plugin listings and hook calls)."""
    return runtime.pm


async def get_registry(runtime: Annotated[Runtime, Depends(get_runtime)]) -> Registry:
    """Everything plugins registered at start-up."""
    return runtime.registry


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PluginManagerDep = Annotated[BhypePluginManager, Depends(get_plugin_manager)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
