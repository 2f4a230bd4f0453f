"""``/api/v1/backup/points``, ``/run`` and ``/points/{id}/restore`` as admins and operators see
them: an operator lists and restores the points of their own VMs only (another's point is
"not found"), runs backups of their own VMs only; targets are for admins."""

from __future__ import annotations

from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.testing.api_auth import act_as


def client_as(world, name, role):
    app = create_app(runtime=world.runtime)
    act_as(app, name, role)
    return TestClient(app)


def test_operators_see_and_restore_only_their_own_points(world, tmp_path, local_user):
    from bhype_core.testing.roles import role_account

    alice = role_account(local_user, world.runtime, "operator")
    (tmp_path / "usb").mkdir()
    world.ok("backup.target_add", {"name": "usb", "destination": str(tmp_path / "usb")})
    world.ok("vm.create", {"name": "mine", "owner": alice.name, "overrides": {"disks": [{"size": "4M"}]}})
    world.create_vm("theirs", disks=["4M"])
    own = world.ok("backup.run", {"vm": "mine", "target": "usb", "mode": "stop", "job": None}, user=alice.name)
    other = world.ok("backup.run", {"vm": "theirs", "target": "usb", "mode": "stop", "job": None})
    with client_as(world, alice.name, "operator") as client:
        answer = client.get("/api/v1/backup/points")
        assert answer.status_code == 200, answer.text
        listed = answer.json()
        assert [p["id"] for p in listed] == [own["point"]]
        assert listed[0]["size"] > 0 and listed[0]["verify_state"] == "none"
        assert client.get(f"/api/v1/backup/points/{other['point']}").status_code == 404
        assert client.post(f"/api/v1/backup/points/{other['point']}/restore", json={"as": "x"}).status_code == 404
        assert client.post("/api/v1/backup/run", json={"vm": "theirs", "target": "usb"}).status_code == 404
        assert client.get("/api/v1/backup/targets").status_code == 403
        accepted = client.post(f"/api/v1/backup/points/{own['point']}/restore", json={"as": "mine2"})
        assert accepted.status_code == 202, accepted.text
    from bhype_core.testing.tasks import run_queued

    run_queued(world.runtime)
    from bhype_core.plugin_api import find_vm

    assert find_vm(world.runtime, "mine2").owner == alice.name
    with client_as(world, world.admin.name, "admin") as client:
        assert {p["id"] for p in client.get("/api/v1/backup/points").json()} == {own["point"], other["point"]}
        assert [p["id"] for p in client.get("/api/v1/backup/points", params={"vm": "theirs"}).json()] == \
            [other["point"]]
        assert client.get("/api/v1/backup/points/999999").status_code == 404
