"""Every route of the real app (core and every installed plugin) passes the authentication guard
or is explicitly public, and anonymous callers get 401 from every route that is not public."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, WebSocket, routing
from fastapi.testclient import TestClient
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocketDisconnect

from bhype_core.api.app import OPENAPI_URL, create_app
from bhype_core.api.security import authenticate_request, public_route
from bhype_core.db.migrate import upgrade
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import RouterEntry
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings

# Routes anyone may call. Adding one here is a security decision: say why next to it.
EXPECTED_PUBLIC = {
    ("GET", "/api/v1/health"),  # load balancers and monitoring probe it without credentials
    ("POST", "/api/v1/auth/login"),  # how one gets credentials in the first place
    # bhype_webui: scripts and styles, and the console page shell; neither holds data, the page
    # fetches everything through guarded routes with the session cookie and CSRF token.
    ("GET", "/ui/static/{path:path}"),
    ("GET", "/ui/plugins/{name}/static/{path:path}"),  # other plugins' web UI assets (issue 12)
    ("GET", "/ui/console/{kind}/{vm}"),
    # bhype_webui: the login page and its form, which opens a session through the core's login
    # service exactly like POST /api/v1/auth/login.
    ("GET", "/ui/login"),
    ("POST", "/ui/login"),
    # bhype_monitor: Prometheus scrapers have no bHype session; the route itself refuses (403)
    # unless the configured bearer token or an allowed address (closed by default).
    ("GET", "/metrics"),
}
# Public WebSockets carry their own credential; each must close an anonymous handshake (below).
EXPECTED_PUBLIC_WEBSOCKETS = {
    # bhype_webui console: a single-use ticket, issued by the guarded POST .../ticket, is the
    # credential (noVNC cannot send headers); the socket re-checks access while open.
    "/api/v1/webui/console/{kind}",
}
CORE_PUBLIC = {("GET", "/api/v1/health"), ("POST", "/api/v1/auth/login")}
# Plain Starlette routes FastAPI adds itself (no dependencies possible): the API documentation.
PLAIN_PUBLIC = {OPENAPI_URL, "/api/docs", "/docs/oauth2-redirect"}
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def route_contexts(app: Any) -> Iterator[Any]:
    """Every route the app serves, whichever way this FastAPI version nests included routers."""
    walk = getattr(routing, "iter_route_contexts", None)
    yield from (walk(app.routes) if walk else app.routes)


def _uses(dependant: Any, call: Any) -> bool:
    return any(d.call is call or _uses(d, call) for d in dependant.dependencies)


def classify(app: Any) -> tuple[set[tuple[str, str]], set[tuple[str, str]], set[str], list[str]]:
    """``(public, guarded, websockets, problems)``: HTTP (method, path) pairs that are public or
    guarded, WebSocket paths (guarded, or public and reviewed), and every route that is neither."""
    public: set[tuple[str, str]] = set()
    guarded: set[tuple[str, str]] = set()
    websockets: set[str] = set()
    problems: list[str] = []
    for route in route_contexts(app):
        path = route.path
        dependant = getattr(route, "dependant", None)
        methods = getattr(route, "methods", None)
        if dependant is None:
            if path not in PLAIN_PUBLIC:
                problems.append(f"{type(route).__name__} {path}: not an API route, so the guard never runs")
            continue
        if not any(d.call is authenticate_request for d in dependant.dependencies):
            problems.append(f"{path}: the authentication guard is not among its dependencies")
            continue
        if not methods:  # a WebSocket route
            if _uses(dependant, public_route) and path not in EXPECTED_PUBLIC_WEBSOCKETS:
                problems.append(f"WebSocket {path}: public, but not among the reviewed public WebSockets")
            websockets.add(path)
            continue
        for method in methods - {"HEAD", "OPTIONS"}:
            (public if _uses(dependant, public_route) else guarded).add((method, path))
    return public, guarded, websockets, problems


def concrete(path: str) -> str:
    """A path template with every parameter filled in (``{vm_id}`` → ``1``)."""
    return re.sub(r"{[^}]+}", "1", path)


@pytest.fixture
def real_app(tmp_path) -> Iterator[Any]:
    """The production app: every installed plugin (core built-ins, zfs, backup, …)."""
    pm = make_plugin_manager(load_entrypoints=True)
    assert not pm.blocked, pm.blocked
    runtime = build_runtime(make_settings(tmp_path / "data"), pm)
    upgrade(runtime)  # forged tokens and cookies are looked up for real
    yield create_app(runtime=runtime)
    if "engine" in runtime.__dict__:
        runtime.engine.dispose()


def test_every_route_is_guarded_or_explicitly_public(real_app):
    public, guarded, websockets, problems = classify(real_app)
    assert problems == []
    # Plugins that are not installed contribute nothing; the core's own are always there.
    assert CORE_PUBLIC <= public <= EXPECTED_PUBLIC
    assert guarded, "no guarded routes found: the walk is broken"
    # The walk saw everything the OpenAPI document lists.
    schema = TestClient(real_app).get(OPENAPI_URL).json()
    documented = {(m.upper(), p) for p, item in schema["paths"].items() for m in item}
    assert documented <= public | guarded


def test_anonymous_callers_get_401_from_every_guarded_route(real_app):
    _, guarded, websockets, _ = classify(real_app)
    client = TestClient(real_app)
    for method, path in sorted(guarded):
        for headers, code in (
            ({}, "unauthorized"),
            ({"Authorization": "Bearer bhype_" + "A" * 43}, "invalid_token"),
            ({"Cookie": "bhype_session=forged"}, "session_ended"),
        ):
            response = client.request(method, concrete(path), headers=headers)
            assert response.status_code == 401, f"{method} {path} with {headers}: {response.status_code}"
            assert response.json()["error"]["code"] == code, f"{method} {path}"
    for path in sorted(websockets):
        # Guarded ones are refused at the handshake; public ones must refuse without a credential.
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect(concrete(path)) as socket:
            socket.receive_bytes()  # nothing may arrive: the close comes first
        assert closed.value.code == 1008, path


def test_public_routes_answer_anonymous_callers(real_app):
    client = TestClient(real_app)
    assert client.get("/api/v1/health").status_code in (200, 503)
    assert client.post("/api/v1/auth/login", json={}).status_code == 422  # reached the route
    assert client.get("/api/docs").status_code == 200


class CarelessPlugin:
    """A plugin whose routes declare nothing about authentication, plus a WebSocket."""

    @hookimpl
    def bhype_register_routers(self, register):
        router = APIRouter()

        @router.post("/things/{thing_id}")
        def change_thing(thing_id: int) -> dict:
            return {"changed": thing_id}

        @router.websocket("/live")
        async def live(websocket: WebSocket) -> None:
            await websocket.accept()
            await websocket.send_text("hello")
            await websocket.close()

        register(RouterEntry(name="careless", router=router))


def test_a_route_that_forgets_authentication_is_still_guarded(tmp_path, plugin_manager):
    plugin_manager.register_plugin(CarelessPlugin(), "careless")
    app = create_app(runtime=build_runtime(make_settings(tmp_path), plugin_manager))
    public, guarded, websockets, problems = classify(app)
    assert problems == [] and ("POST", "/api/v1/careless/things/{thing_id}") in guarded
    assert websockets == {"/api/v1/careless/live"}
    client = TestClient(app)
    assert client.post("/api/v1/careless/things/7").status_code == 401
    with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/api/v1/careless/live"):
        pass
    assert closed.value.code == 1008


def test_a_mounted_sub_application_is_reported(tmp_path, plugin_manager):
    class MountingPlugin:
        @hookimpl
        def bhype_register_routers(self, register):
            router = APIRouter()
            # Static files (or any ASGI app) mounted this way bypass every dependency.
            router.mount("/files", StaticFiles(directory=str(tmp_path)), name="files")
            register(RouterEntry(name="mounting", router=router))

    plugin_manager.register_plugin(MountingPlugin(), "mounting")
    app = create_app(runtime=build_runtime(make_settings(tmp_path), plugin_manager))
    problems = classify(app)[3]
    assert len(problems) == 1 and "/files" in problems[0] and "guard never runs" in problems[0]
