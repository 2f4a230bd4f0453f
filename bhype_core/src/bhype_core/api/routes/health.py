"""``GET /api/v1/health``: database, queue and Redis state, for people and load balancers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from bhype_core import __version__
from bhype_core.api.deps import RuntimeDep
from bhype_core.api.security import PUBLIC

log = logging.getLogger(__name__)

# A health probe must answer quickly even when Redis is unreachable (a black-holed address
# would otherwise hang the request for the OS connect timeout).
REDIS_TIMEOUT = 1.0


class ComponentHealth(BaseModel):
    """One dependency's state: ``ok`` and a human-readable ``detail`` (plus extra facts)."""

    model_config = ConfigDict(extra="allow")

    ok: bool
    detail: str = ""


class Health(BaseModel):
    """The whole answer; ``redis`` is present only when ``core.redis_url`` is set."""

    status: Literal["ok", "degraded"]
    version: str
    database: ComponentHealth
    queue: ComponentHealth
    redis: ComponentHealth | None = None


def check_redis(url: str, timeout: float = REDIS_TIMEOUT) -> dict[str, Any]:
    """Ping the Redis server at ``url`` with a short timeout; never raises."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    kwargs = client.connection_pool.connection_kwargs
    # Never echo the URL: it may carry a password.
    where = kwargs.get("path") or f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
    try:
        client.ping()
        version = client.info("server").get("redis_version", "?")
        return {"ok": True, "detail": f"Redis {version} at {where}"}
    except Exception as exc:  # reported, never raised: the health answer must always come
        return {"ok": False, "detail": f"{where}: {type(exc).__name__}: {exc}"}
    finally:
        client.close()


def _component(name: str, probe: Callable[[], dict[str, Any]]) -> ComponentHealth:
    """Run one probe; a probe that raises (it should not) still yields an answer."""
    try:
        result = dict(probe())
    except Exception as exc:  # a broken probe is a degraded component, not a 500
        log.exception("health probe %s failed", name)
        return ComponentHealth(ok=False, detail=f"{type(exc).__name__}: {exc}")
    ok = bool(result.pop("ok", result.get("status") == "ok"))
    detail = str(result.pop("detail", ""))
    return ComponentHealth(ok=ok, detail=detail, **result)


def make_router() -> APIRouter:
    """Build the health router (a fresh one per app)."""
    router = APIRouter(tags=["health"])

    # A plain ``def``: the probes block, so FastAPI runs this in its thread pool.
    @router.get(
        "/api/v1/health",
        response_model=Health,
        response_model_exclude_none=True,
        dependencies=[PUBLIC],  # load balancers probe it without credentials
        responses={503: {"model": Health, "description": "a dependency is unavailable"}},
    )
    def health(runtime: RuntimeDep, response: Response) -> Health:
        """Database, queue and (when configured) Redis state; 503 when any is unavailable."""
        from bhype_core.db.engine import check_database

        database = _component("database", lambda: check_database(runtime.engine))
        queue = _component("queue", lambda: runtime.queue.health())
        redis_url = runtime.settings.core.redis_url
        redis = _component("redis", lambda: check_redis(redis_url)) if redis_url else None
        parts = [database, queue] + ([redis] if redis else [])
        status: Literal["ok", "degraded"] = "ok" if all(part.ok for part in parts) else "degraded"
        if status != "ok":
            response.status_code = 503
        return Health(status=status, version=__version__, database=database, queue=queue, redis=redis)

    return router
