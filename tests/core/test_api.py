"""The FastAPI application: health, plugin listing, plugin routers, one error shape, OpenAPI."""

from __future__ import annotations

import logging
import time
import uuid

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from bhype_core import __version__
from bhype_core.api.app import create_app
from bhype_core.builtins import tasks as core_tasks
from bhype_core.errors import NotFound, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import RouterEntry
from bhype_core.runtime import build_runtime
from bhype_core.testing import act_as, make_settings
from bhype_core.testing.ports import free_port

SECRET = "secret detail from /etc/shadow"


class Item(BaseModel):
    name: str
    size: int


class FakePlugin:
    """A third-party-like plugin with one router exercising every error path."""

    @hookimpl
    def bhype_register_routers(self, register):
        router = APIRouter()

        @router.get("/hello")
        def hello() -> dict:
            return {"hello": "world"}

        @router.get("/things/{name}")
        def thing(name: str) -> dict:
            raise NotFound(f"no thing named {name!r}")

        @router.post("/items")
        def create_item(item: Item) -> dict:
            errors = ValidationErrors()
            if item.size < 1:
                errors.add("size", "must be at least 1")
            if item.name != item.name.strip():
                errors.add("name", "must not start or end with spaces")
            errors.raise_if_any()
            return item.model_dump()

        @router.get("/boom")
        def boom() -> dict:
            raise RuntimeError(SECRET)

        register(RouterEntry(name="fake", router=router))

        root = APIRouter()

        @root.get("/root-hello")
        def root_hello() -> dict:
            return {"at": "root"}

        register(RouterEntry(name="fake_root", router=root, prefix="/"))


@pytest.fixture
def client(register_plugin, bhype_settings, plugin_manager):
    register_plugin(FakePlugin(), "fake")
    app = create_app(bhype_settings, plugin_manager)
    act_as(app, "alice", "operator")  # the subject here is routing and errors, not authentication
    with TestClient(app) as test_client:
        yield test_client


def test_health_on_embedded_default(client):
    response = client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["database"]["ok"] is True and body["database"]["backend"] == "sqlite"
    assert body["queue"]["ok"] is True and body["queue"]["backend"] == "sqlite"
    assert "redis" not in body  # only reported when core.redis_url is set


def test_health_degraded_when_redis_unreachable(tmp_path, plugin_manager):
    # Nothing listens on the port: the ping fails at once; the database stays healthy.
    settings = make_settings(
        tmp_path, core={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}, queue={"backend": "sqlite"}
    )
    client = TestClient(create_app(settings, plugin_manager))
    response = client.get("/api/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["redis"]["ok"] is False and "ConnectionError" in body["redis"]["detail"]
    assert body["database"]["ok"] is True


@pytest.mark.redis
def test_health_with_real_redis(tmp_path, plugin_manager):
    settings = make_settings(
        tmp_path,
        core={"redis_url": "redis://127.0.0.1:6379/11"},
        queue={"name": f"test-api-{uuid.uuid4().hex}"},
    )
    client = TestClient(create_app(settings, plugin_manager))
    body = client.get("/api/v1/health").json()
    assert body["status"] == "ok"
    assert body["redis"]["ok"] is True and body["redis"]["detail"].startswith("Redis ")
    assert body["queue"]["backend"] == "redis"


def test_plugins_list_and_plugin_router(client, plugin_manager):
    response = client.get("/api/v1/plugins")
    assert response.status_code == 200
    plugins = response.json()["plugins"]
    assert plugins == [info.to_dict() for info in plugin_manager.infos()]
    fake = next(p for p in plugins if p["name"] == "fake")
    assert fake["status"] == "active" and fake["hooks"] == ["bhype_register_routers"]
    assert client.get("/api/v1/fake/hello").json() == {"hello": "world"}
    assert client.get("/root-hello").json() == {"at": "root"}


def test_not_found_error_shape(client):
    response = client.get("/api/v1/fake/things/web1")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "no thing named 'web1'"}}


def test_validation_errors_name_the_fields(client):
    response = client.post("/api/v1/fake/items", json={"name": " x ", "size": 0})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["fields"] == [
        {"path": "size", "message": "must be at least 1"},
        {"path": "name", "message": "must not start or end with spaces"},
    ]


def test_request_validation_uses_the_same_shape(client):
    response = client.post("/api/v1/fake/items", json={"name": 5})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    paths = {field["path"] for field in error["fields"]}
    assert paths == {"body.name", "body.size"}
    assert all(field["message"] for field in error["fields"])
    assert "body.size" in error["message"]


def test_unknown_route_and_method_use_the_shape(client):
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = client.delete("/api/v1/health")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"


def test_unexpected_exception_is_generic_and_logged(client, caplog):
    with caplog.at_level(logging.ERROR, logger="bhype_core.api.errors"):
        response = client.get("/api/v1/fake/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert SECRET not in response.text and "Traceback" not in response.text
    assert any(SECRET in str(record.exc_info) for record in caplog.records)


def test_openapi_and_docs_served(client):
    schema = client.get("/api/openapi.json").json()
    expected = {"/api/v1/health", "/api/v1/plugins", "/api/v1/tasks", "/api/v1/fake/hello"}
    assert expected <= set(schema["paths"])
    assert schema["info"]["version"] == __version__
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and "/api/openapi.json" in docs.text


def test_large_answers_are_compressed_when_the_client_accepts_gzip(client):
    import json

    raw = client.get("/api/openapi.json", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    packed = client.get("/api/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip" and packed.headers["vary"] == "Accept-Encoding"
    # httpx inflates transparently; the bytes on the wire are the compressed ones.
    assert json.loads(packed.content) == raw.json()
    assert int(packed.headers["content-length"]) < len(raw.content) / 3
    small = client.get("/api/v1/health", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # under the minimum size: sent as it is


def test_the_api_only_queues_and_the_worker_runs_the_task(register_plugin, bhype_settings, plugin_manager):
    from bhype_core.builtins import models as core_models
    from bhype_core.db.migrate import upgrade
    from bhype_core.tasks.worker import start_in_process_worker

    register_plugin(core_tasks, "core_tasks")
    register_plugin(core_models, "core_models")
    runtime = build_runtime(bhype_settings, plugin_manager)
    upgrade(runtime)
    app = create_app(runtime=runtime)
    act_as(app, "alice", "operator")
    client = TestClient(app)
    response = client.post("/api/v1/tasks", json={"kind": "core.ping", "arguments": {"echo": "hi"}})
    assert response.status_code == 202
    task_id = response.json()["id"]
    # The API only queued it: nothing ran in this process yet.
    assert client.get(f"/api/v1/tasks/{task_id}").json()["state"] == "queued"
    worker = start_in_process_worker(runtime)
    try:
        deadline = time.monotonic() + 60
        while (task := client.get(f"/api/v1/tasks/{task_id}").json())["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, task
            time.sleep(0.1)
    finally:
        worker.stop()
    assert task["state"] == "succeeded" and task["owner"] == "alice"
    assert task["result"]["pong"] is True and task["result"]["echo"] == "hi"