"""``GET /api/v1/vms`` pages (issue 15): cursor pages in SQL, filters, sorts, the visibility rule
on every page, the same JSON as :class:`VMSummary`, and the CLI following ``next``."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bhype_core.api.app import create_app
from bhype_core.commands.vm_client import all_vms
from bhype_core.spec import validate_spec
from bhype_core.testing.api_auth import token_headers
from bhype_core.vm.models import VM
from bhype_core.vm.public import VMSummary, summary

VMS = "/api/v1/vms"


@pytest.fixture
def runtime(make_vm_runtime):
    runtime = make_vm_runtime()
    rows = []
    for index in range(25):
        data = validate_spec({"name": f"vm{index:02d}", "owner": "alice" if index % 2 else "bob", "boot": "grub",
                              "cpus": 1 + index % 3, "tags": ["t"]}).to_data()
        rows.append(VM(name=data["name"], uuid=data["uuid"], owner=data["owner"], datastore="default", spec=data,
                       state="running" if index % 3 == 0 else "stopped"))
    with Session(runtime.engine) as db:
        db.add_all(rows)
        db.commit()
    return runtime


@pytest.fixture
def client(runtime):
    app = create_app(runtime=runtime)
    with TestClient(app) as test_client:
        test_client.headers.update(token_headers(app, "root", "admin"))
        test_client.app_state = app  # type: ignore[attr-defined]
        yield test_client


def walk(client, **params) -> tuple[list[str], int]:
    names, pages, after = [], 0, None
    while True:
        answer = client.get(VMS, params={**params, **({"after": after} if after else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        names += [vm["name"] for vm in body["vms"]]
        pages += 1
        after = body["next"]
        if after is None:
            return names, pages


def test_default_page_is_100_and_cursor_pages_cover_every_vm_once(client):
    body = client.get(VMS).json()
    assert len(body["vms"]) == 25 and body["next"] is None
    names, pages = walk(client, limit=7)
    assert names == [f"vm{i:02d}" for i in range(25)] and pages == 4


def test_sorted_pages_break_ties_by_name(client, runtime):
    names, _ = walk(client, limit=4, sort="state")
    running = [f"vm{i:02d}" for i in range(25) if i % 3 == 0]
    assert names == running + [f"vm{i:02d}" for i in range(25) if i % 3]
    by_update, _ = walk(client, limit=6, sort="updated")
    assert sorted(by_update) == [f"vm{i:02d}" for i in range(25)] and len(set(by_update)) == 25


def test_filters_and_visibility_apply_on_every_page(client):
    alice = token_headers(client.app_state, "alice", "operator")
    answer = client.get(VMS, params={"limit": 3}, headers=alice).json()
    assert {vm["owner"] for vm in answer["vms"]} == {"alice"}
    after = client.get(VMS, params={"limit": 3, "after": answer["next"], "owner": "bob"}, headers=alice).json()
    assert after["vms"] == []  # an operator's owner filter cannot widen their view
    running, _ = walk(client, state="running", limit=2)
    assert running == [f"vm{i:02d}" for i in range(25) if i % 3 == 0]
    assert walk(client, q="vm1")[0] == [f"vm1{i}" for i in range(10)]


def test_entries_match_the_documented_summary(client, runtime):
    [entry] = client.get(VMS, params={"q": "vm04"}).json()["vms"]
    with Session(runtime.engine) as db:
        row = db.exec(select(VM).where(VM.name == "vm04")).one()
        assert entry == summary(row).model_dump(mode="json")
    assert VMSummary(**entry).cpus == 2


@pytest.mark.parametrize(("params", "field"), [({"after": "not-a-cursor"}, "after"), ({"sort": "size"}, "sort"),
                                               ({"limit": 0}, "limit"), ({"limit": 1001}, "limit")])
def test_bad_page_requests_are_422_naming_the_field(client, params, field):
    answer = client.get(VMS, params=params)
    assert answer.status_code == 422, answer.text
    assert field in answer.text


def test_cli_follows_next_to_the_end(client):
    class Api:
        def request(self, method, path, body=None, **query):
            query = {k: v for k, v in query.items() if v is not None}
            query["limit"] = 10  # small pages, so the loop is exercised
            return client.request(method, path, params=query).json()

    assert [vm["name"] for vm in all_vms(Api())] == [f"vm{i:02d}" for i in range(25)]
    assert [vm["name"] for vm in all_vms(Api(), owner="alice")] == [f"vm{i:02d}" for i in range(1, 25, 2)]
