"""Building the FastAPI application: core routers, plugin routers, one error shape."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.middleware.gzip import GZipMiddleware

from bhype_core import __version__
from bhype_core.api.api_runtime import api_runtime
from bhype_core.api.auth_setup import install_auth
from bhype_core.api.errors import ERROR_RESPONSES, install_error_handlers
from bhype_core.api.json_guard import JsonGuardMiddleware
from bhype_core.api.routes import audit, auth, health, plugins, tasks
from bhype_core.api.security import authenticate_request
from bhype_core.config import Settings
from bhype_core.plugins import BhypePluginManager
from bhype_core.runtime import Runtime, build_runtime

DOCS_URL = "/api/docs"
OPENAPI_URL = "/api/openapi.json"
# Responses smaller than this go out as they are: compressing them saves less than it costs.
GZIP_MINIMUM_SIZE = 1024

# Core routers, in mounting order; each module's ``make_router()`` builds a fresh router.
CORE_ROUTERS = (health, auth, plugins, audit, tasks)


def create_app(
    settings: Settings | None = None,
    pm: BhypePluginManager | None = None,
    runtime: Runtime | None = None,
) -> FastAPI:
    """Build the bHype API application.

    :param settings: validated settings; loaded from the default file when omitted.
    :param pm: the plugin manager; built from entry points when omitted (tests pass an empty
        manager with the fake plugins they registered).
    :param runtime: an already assembled runtime (wins over ``settings`` and ``pm``), e.g. the
        one ``bhype serve`` also hands to its in-process worker.
    :returns: the app, with ``app.state.runtime`` set, core routers under ``/api/v1``, each
        plugin's routers at their ``mount_prefix`` (``/api/v1/<name>``), Swagger UI at
        ``/api/docs`` and the schema at ``/api/openapi.json``.
    """
    runtime = runtime or build_runtime(settings, pm)
    app = FastAPI(
        title="bHype",
        version=__version__,
        description="bhyve (FreeBSD) and QEMU (Linux) VM host: REST API",
        docs_url=DOCS_URL,
        openapi_url=OPENAPI_URL,
        redoc_url=None,
        # The one authentication guard, on every route of every router (core and plugins): a
        # route answers anonymously only if it declares ``dependencies=[PUBLIC]``.
        dependencies=[Depends(authenticate_request)],
        # bHype's error shape for every operation's 4xx answers, core and plugins alike.
        responses=ERROR_RESPONSES,
    )
    # Request handlers get a runtime whose runner refuses host commands (the worker runs them).
    app.state.runtime = api_runtime(runtime)
    # Inside the error middleware (added first = innermost): JSON bodies too big, too deep or
    # with out-of-range integers are refused before any route parses them.
    app.add_middleware(JsonGuardMiddleware)
    install_error_handlers(app)
    install_auth(app, runtime)
    # Pages, JSON lists and the consoles' scripts compress 4-5x; Starlette leaves event streams
    # (task logs, live VM state) uncompressed so every event is flushed as it happens, and
    # WebSockets (consoles) never pass through HTTP middleware.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE)
    for module in CORE_ROUTERS:
        app.include_router(module.make_router())
    for name in runtime.registry.routers.names():
        entry = runtime.registry.routers[name]
        plugin = runtime.registry.routers.plugin_of(name)
        # FastAPI wants "" rather than "/" for a router mounted at the root (the web UI).
        prefix = entry.mount_prefix.rstrip("/")
        app.include_router(entry.router, prefix=prefix, tags=[plugin] if not entry.router.tags else None)
    return app
