"""No input gives a 500 (issue 11): every integer the API accepts is bounded to what the database
stores, JSON bodies are bounded in size and depth before any route parses them, and the OpenAPI
document declares bHype's own error shape for every operation's 4xx answers.

The meta-tests walk the real app (core and every installed plugin), so a future route that
forgets a bound or an error answer fails here."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter, routing
from fastapi.testclient import TestClient
from pydantic import BaseModel

from bhype_core.api.app import OPENAPI_URL, create_app
from bhype_core.api.json_guard import MAX_DEPTH, MAX_JSON_BODY, json_depth
from bhype_core.api.limits import INT64_MAX, event_id
from bhype_core.db.migrate import upgrade
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import RouterEntry
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_core.testing.api_auth import act_as

TOO_BIG = INT64_MAX + 1  # 9223372036854775808, the number of issue 11
ERROR_STATUSES = {"401", "403", "404", "409", "413", "422", "429"}


@pytest.fixture
def real_app(tmp_path) -> Iterator[Any]:
    """The production app with every installed plugin, a migrated database, an admin caller."""
    pm = make_plugin_manager(load_entrypoints=True)
    runtime = build_runtime(make_settings(tmp_path / "data"), pm)
    upgrade(runtime)
    app = create_app(runtime=runtime)
    act_as(app, "root_admin", "admin")
    yield app
    if "engine" in runtime.__dict__:
        runtime.engine.dispose()


@pytest.fixture
def client(real_app) -> Iterator[TestClient]:
    with TestClient(real_app, raise_server_exceptions=False) as test_client:
        yield test_client


def route_contexts(app: Any) -> Iterator[Any]:
    """Every route the app serves, whichever way this FastAPI version nests included routers."""
    walk = getattr(routing, "iter_route_contexts", None)
    yield from (walk(app.routes) if walk else app.routes)


def openapi(app: Any) -> dict:
    return TestClient(app).get(OPENAPI_URL).json()


def _integers(schema: dict, components: dict, where: str, seen: set[str]) -> Iterator[tuple[str, dict]]:
    """Every integer schema reachable from ``schema`` (following $ref, unions, items, maps)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name not in seen:
            seen.add(name)
            yield from _integers(components[name], components, f"{where}({name})", seen)
        return
    if schema.get("type") == "integer":
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            yield from _integers(sub, components, where, seen)
    for name, sub in schema.get("properties", {}).items():
        yield from _integers(sub, components, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _integers(schema[key], components, f"{where}.{key}", seen)


def unbounded_integers(document: dict) -> list[str]:
    """Every integer a client sends (parameter or request body field) lacking a lower or upper bound."""
    components = document.get("components", {}).get("schemas", {})
    problems = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            inputs = [(f"{p['in']}.{p['name']}", p.get("schema", {})) for p in operation.get("parameters", [])]
            for content in operation.get("requestBody", {}).get("content", {}).values():
                inputs.append(("body", content.get("schema", {})))
            for where, schema in inputs:
                for field, integer in _integers(schema, components, where, set()):
                    low = "minimum" in integer or "exclusiveMinimum" in integer
                    high = "maximum" in integer or "exclusiveMaximum" in integer
                    if not (low and high):
                        problems.append(f"{method.upper()} {path} {field}: {integer}")
    return problems


def test_every_integer_the_api_accepts_is_bounded(real_app):
    document = openapi(real_app)
    assert unbounded_integers(document) == []
    # The walk sees integers at all (else it proves nothing).
    components = document["components"]["schemas"]
    seen = [w for p in document["paths"].values() for op in p.values()
            for prm in op.get("parameters", []) for w, _ in _integers(prm["schema"], components, "q", set())]
    assert seen


class SloppyBody(BaseModel):
    """A plugin's request body with an integer nobody bounded."""

    count: int


def test_hidden_routes_bound_their_integers_too(real_app):
    """Pages (``include_in_schema=False``) take query parameters as well: document every route
    in a throw-away schema and walk it the same way."""
    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute

    hidden = []
    for context in route_contexts(real_app):
        route = getattr(context, "original_route", context)
        if isinstance(route, APIRoute) and not route.include_in_schema:
            hidden.append(copy.copy(route))
            hidden[-1].include_in_schema = True
    assert hidden, "no hidden routes found: the walk is broken"
    document = get_openapi(title="all", version="0", routes=hidden)
    assert unbounded_integers(document) == []


def test_the_meta_test_catches_an_unbounded_plugin_integer(tmp_path, plugin_manager):
    class SloppyPlugin:
        @hookimpl
        def bhype_register_routers(self, register):
            router = APIRouter()

            @router.post("/things")
            def things(body: SloppyBody, skip: int = 0) -> dict:
                return {}

            register(RouterEntry(name="sloppy", router=router))

    plugin_manager.register_plugin(SloppyPlugin(), "sloppy")
    app = create_app(runtime=build_runtime(make_settings(tmp_path), plugin_manager))
    problems = unbounded_integers(openapi(app))
    assert len(problems) == 2 and all("/api/v1/sloppy/things" in p for p in problems)


def test_every_integer_parameter_refuses_65_bits_with_a_422(client, real_app):
    """Not only declared: each integer parameter of every operation really answers 422 naming
    itself for 2**63, never a 500."""
    document = openapi(real_app)
    tried = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                schemas = [parameter.get("schema", {}), *parameter.get("schema", {}).get("anyOf", [])]
                if parameter["in"] not in ("query", "path") or not any(s.get("type") == "integer" for s in schemas):
                    continue
                url = re.sub(r"{[^}]+}", "1", path.replace("{" + parameter["name"] + "}", str(TOO_BIG)))
                params = {parameter["name"]: TOO_BIG} if parameter["in"] == "query" else None
                response = client.request(method.upper(), url, params=params)
                assert response.status_code == 422, f"{method} {path} {parameter['name']}: {response.text}"
                fields = {f["path"] for f in response.json()["error"]["fields"]}
                assert f"{parameter['in']}.{parameter['name']}" in fields, f"{method} {path}"
                tried += 1
    assert tried >= 5


def test_every_json_body_is_guarded(client, real_app):
    """Every operation taking a JSON body refuses a too-deep one and a 65-bit integer, whatever
    its model: the guard runs before routing."""
    document = openapi(real_app)
    deep = "[" * 1000 + "]" * 1000
    tried = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if "application/json" not in operation.get("requestBody", {}).get("content", {}):
                continue
            url = re.sub(r"{[^}]+}", "1", path)
            for body in (deep, f'{{"n": {TOO_BIG}}}'):
                response = client.request(method.upper(), url, content=body,
                                          headers={"Content-Type": "application/json"})
                assert response.status_code == 422, f"{method} {path}: {response.text}"
            tried += 1
    assert tried >= 10


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        ("GET", f"/api/v1/tasks?offset={TOO_BIG}", None, "query.offset"),
        ("POST", "/api/v1/webui/notifications/read", {"up_to": TOO_BIG}, "body.up_to"),
        ("GET", f"/api/v1/webui/notifications/stream?after={TOO_BIG}", None, "query.after"),
        ("DELETE", f"/api/v1/auth/tokens/{TOO_BIG}", None, "path.token_id"),
        ("POST", "/api/v1/tasks", {"kind": "core.ping", "arguments": {"sleep": TOO_BIG}}, "body.arguments.sleep"),
        ("POST", "/api/v1/tasks", {"kind": "core.ping", "arguments": {"x": [1, -TOO_BIG - 1]}}, "body.arguments.x.1"),
        ("POST", "/api/v1/switches", {"name": "sw0", "vlan": TOO_BIG}, "body.vlan"),
    ],
)
def test_integers_beyond_64_bits_are_a_422_naming_the_field(client, method, path, body, field):
    response = client.request(method, path, json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in {f["path"] for f in error["fields"]}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_numbers_json_cannot_carry_are_a_422(client, number):
    body = '{"kind": "core.ping", "arguments": {"x": ' + number + "}}"
    response = client.post("/api/v1/tasks", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["fields"] == [{"path": "body.arguments.x", "message": "must be a finite number"}]


def test_a_query_integer_of_thousands_of_digits_is_a_422(client):
    response = client.get("/api/v1/tasks?offset=" + "9" * 5000)
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["path"] == "query.offset"


def test_the_largest_64_bit_integer_is_still_accepted(client):
    assert client.get(f"/api/v1/tasks?offset={INT64_MAX}").json() == {"tasks": []}
    response = client.post("/api/v1/webui/notifications/read", json={"up_to": INT64_MAX})
    assert response.status_code == 200, response.text


def test_a_bad_last_event_id_header_is_ignored_not_a_500():
    assert event_id(str(TOO_BIG)) is None and event_id("9" * 5000) is None
    assert event_id(str(INT64_MAX)) == INT64_MAX and event_id("12") == 12
    assert event_id("١٢") is None and event_id("-1") is None and event_id(None) is None


@pytest.mark.parametrize(
    "method, path, make",
    [
        ("POST", "/api/v1/tasks", lambda deep: {"kind": "core.ping", "arguments": {"a": deep}}),
        ("POST", "/api/v1/vms", lambda deep: {"name": "deep", "spec": {"cloud_init": {"user_data": deep}}}),
        ("PATCH", "/api/v1/vms/deep", lambda deep: {"description": deep}),
    ],
)
def test_deeply_nested_json_is_a_422_before_any_route_parses_it(client, method, path, make):
    for depth in (MAX_DEPTH, 500, 5000, 100_000):
        # Built as text: the client's own JSON encoder recurses too.
        body = json.dumps(make("@")).replace('"@"', "[" * depth + "1" + "]" * depth)
        response = client.request(method, path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 422, (depth, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_error" and f"deeper than {MAX_DEPTH}" in error["message"]


def test_the_depth_check_ignores_brackets_in_strings_and_without_content_type(client):
    text = '{"kind": "core.ping", "arguments": {"echo": "' + "[{" * 1000 + '"}}'
    assert json_depth(text.encode()) == 2
    response = client.post("/api/v1/tasks", content=text, headers={"Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    # No Content-Type: FastAPI still decodes a JSON body, so the guard checks it too.
    deep = "[" * 5000 + "]" * 5000
    response = client.post("/api/v1/tasks", content=deep)
    assert response.status_code == 422 and "deeper than" in response.json()["error"]["message"]


def test_an_oversized_json_body_is_a_413_in_bhypes_shape(client):
    filler = "x" * (MAX_JSON_BODY + 1)
    response = client.post("/api/v1/tasks", json={"kind": "core.ping", "arguments": {"echo": filler}})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_huge_digit_strings_are_a_422(client):
    body = '{"kind": "core.ping", "arguments": {"n": ' + "9" * 5000 + "}}"
    response = client.post("/api/v1/tasks", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


def test_every_operation_documents_bhypes_error_shape(real_app):
    document = openapi(real_app)
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}
    operations = [(m, p, op) for p, item in document["paths"].items() for m, op in item.items()]
    assert len(operations) > 20
    for method, path, operation in operations:
        responses = operation["responses"]
        assert ERROR_STATUSES <= set(responses), f"{method} {path}: {sorted(responses)}"
        for status in ERROR_STATUSES:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, f"{method} {path} {status}"


def test_the_documented_422_is_what_the_api_answers(client, real_app):
    from pydantic import TypeAdapter

    from bhype_core.api.errors import ErrorResponse

    response = client.get("/api/v1/tasks?limit=0")
    assert response.status_code == 422
    parsed = TypeAdapter(ErrorResponse).validate_python(response.json())
    assert parsed.error.fields and parsed.error.fields[0].path == "query.limit"
