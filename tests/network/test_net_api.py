"""``/api/v1/switches`` and ``/api/v1/isos`` through the real app and task queue: validation
answers 422 naming fields, changes are admin-only tasks, uploads are streamed and checksummed.
Switch tasks run their host commands inside a network namespace."""

from __future__ import annotations

import hashlib
import os

import pytest
from _netkit import NetnsRunner, links, run_queued
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.db.task_models import SUCCEEDED
from bhype_core.isos import uploads_dir
from bhype_core.tasks import store
from bhype_core.testing import act_as
from bhype_core.testing.roles import role_account


@pytest.fixture
def client(network_runtime):
    app = create_app(runtime=network_runtime)
    with TestClient(app) as client:
        client.app_ref = app
        yield client


def finished(runtime, answer) -> dict:
    assert answer.status_code == 202, answer.text
    run_queued(runtime)
    task = store.get_task(runtime.engine, answer.json()["task_id"])
    assert task.state == SUCCEEDED, task.error
    return task.result


@pytest.mark.slow
def test_switch_lifecycle_as_admin(client, network_runtime, netns, local_user) -> None:
    host_ns = netns("host")
    network_runtime.__dict__["runner"] = NetnsRunner(host_ns)
    # A real admin: the worker reads the role from the account's groups before it runs a task.
    act_as(client.app_ref, role_account(local_user, network_runtime).name, "admin")

    bad = client.post("/api/v1/switches", json={"name": "a.b", "vlan": 0, "address": "x"})
    assert bad.status_code == 422
    assert {f["path"] for f in bad.json()["error"]["fields"]} == {"name", "vlan", "address"}

    result = finished(network_runtime, client.post("/api/v1/switches", json={"name": "lan", "mtu": 1400}))
    assert result["bridge"] == "vm-lan" and "vm-lan" in links(host_ns)
    listed = client.get("/api/v1/switches").json()["switches"]
    assert [(s["name"], s["bridge"], s["mtu"]) for s in listed] == [("lan", "vm-lan", 1400)]
    assert client.get("/api/v1/switches/lan").json()["vms"] == []
    assert client.post("/api/v1/switches", json={"name": "lan"}).status_code == 409
    assert client.post("/api/v1/switches/lan/uplink", json={"uplink": "bad name"}).status_code == 422

    finished(network_runtime, client.delete("/api/v1/switches/lan"))
    assert "vm-lan" not in links(host_ns)
    assert client.get("/api/v1/switches/lan").status_code == 404


def test_operators_may_list_but_not_change_switches(client) -> None:
    act_as(client.app_ref, "alice", "operator")
    assert client.get("/api/v1/switches").json() == {"switches": []}
    assert client.post("/api/v1/switches", json={"name": "lan"}).status_code == 403
    assert client.delete("/api/v1/switches/lan").status_code == 403


def test_iso_upload_is_streamed_checksummed_and_imported_by_a_task(client, network_runtime) -> None:
    act_as(client.app_ref, "alice", "operator")
    data = os.urandom(1 << 20)
    digest = hashlib.sha256(data).hexdigest()

    wrong = client.put("/api/v1/isos/boot.iso", params={"sha256": "1" * 64}, content=data)
    assert wrong.status_code == 422 and wrong.json()["error"]["fields"][0]["path"] == "sha256"
    assert list(uploads_dir(network_runtime).iterdir()) == []  # nothing staged is left

    result = finished(network_runtime, client.put("/api/v1/isos/boot.iso", params={"sha256": digest}, content=data))
    assert result["sha256"] == digest
    listed = client.get("/api/v1/isos").json()["isos"]
    entries = [(i["name"], i["size"], i["sha256"], i["added_by"]) for i in listed]
    assert entries == [("boot.iso", len(data), digest, "alice")]
    assert list(uploads_dir(network_runtime).iterdir()) == []

    assert client.put("/api/v1/isos/boot.iso", content=b"again").status_code == 409
    assert client.put("/api/v1/isos/..%2Fescape", content=b"x").status_code in (404, 422)
    assert client.put("/api/v1/isos/empty.iso", content=b"").status_code == 422

    act_as(client.app_ref, "bob", "operator")
    assert client.delete("/api/v1/isos/boot.iso").status_code == 403
    act_as(client.app_ref, "alice", "operator")
    finished(network_runtime, client.delete("/api/v1/isos/boot.iso"))
    assert client.get("/api/v1/isos").json() == {"isos": []}


def test_iso_upload_over_the_size_limit_is_refused(client, network_runtime) -> None:
    act_as(client.app_ref, "alice", "operator")
    network_runtime.settings.section("isos").max_size = 1000
    answer = client.put("/api/v1/isos/big.iso", content=b"x" * 1001)  # refused by Content-Length
    assert answer.status_code == 413
    chunks = (b"x" * 400 for _ in range(3))  # chunked, no length: refused while streaming
    answer = client.put("/api/v1/isos/big.iso", content=chunks)
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large"
    assert list(uploads_dir(network_runtime).iterdir()) == []


def test_iso_fetch_request_is_validated_before_queueing(client, network_runtime) -> None:
    act_as(client.app_ref, "alice", "operator")
    answer = client.post("/api/v1/isos/fetch", json={"url": "ftp://x/y.iso", "name": "../y", "sha256": "zz"})
    assert answer.status_code == 422
    assert {f["path"] for f in answer.json()["error"]["fields"]} == {"url", "name", "sha256"}
    # Address literals the worker would refuse are refused at once (issue 11), naming the field.
    for url in ("http://127.0.0.1:9/y.iso", "http://[::1]/y.iso", "http://169.254.169.254/latest/",
                "http://10.1.2.3/y.iso", "http://0.0.0.0/y.iso", "http://224.0.0.1/y.iso"):
        refused = client.post("/api/v1/isos/fetch", json={"url": url, "name": "y.iso"})
        assert refused.status_code == 422, url
        (problem,) = refused.json()["error"]["fields"]
        assert problem["path"] == "url" and "isos.fetch_allow" in problem["message"], url
    # Names are resolved (once, and checked) by the worker only.
    accepted = client.post("/api/v1/isos/fetch", json={"url": "http://mirror.example:9/y.iso", "name": "y.iso"})
    assert accepted.status_code == 202
    task = store.get_task(network_runtime.engine, accepted.json()["task_id"])
    assert (task.kind, task.locks, task.owner) == ("iso.fetch", ["iso:y.iso"], "alice")
