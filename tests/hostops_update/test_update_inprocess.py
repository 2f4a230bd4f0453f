"""The update workflow's API, task and state machine in one process, on a host with no VMs:
the stand-in tools (real processes through the runner), tasks run with the kit's
``run_queued``, a real admin account (the worker reads the owner's role from their groups).
Covers the plan route, the confirmation, admins only, a failing install that stops the run and
is resumed, bringing back without updating, and the events each step delivers."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.builtins import models
from bhype_core.db.migrate import upgrade
from bhype_core.hookspecs import hookimpl
from bhype_core.runtime import build_runtime
from bhype_core.testing import act_as, make_settings
from bhype_core.testing.tasks import run_queued
from bhype_hostops.update import standin

UPDATE = "/api/v1/hostops/update"


class Events:
    """Collects every event delivered through ``bhype_notify``."""

    def __init__(self) -> None:
        self.seen: list = []

    @hookimpl
    def bhype_notify(self, event) -> None:
        self.seen.append(event)


@pytest.fixture
def stack(tmp_path, plugin_manager, register_plugin, bhype_roles):
    import bhype_hostops.update.plugin

    events = Events()
    register_plugin(models, "core_models")
    register_plugin(bhype_hostops.update.plugin, "hostops_update")
    register_plugin(events, "events")
    settings = make_settings(tmp_path / "data", auth=bhype_roles.auth_section(),
                             hostops_update={"platform": "standin", "standin_dir": str(tmp_path / "standin")})
    runtime = build_runtime(settings, plugin_manager)
    upgrade(runtime)
    app = create_app(runtime=runtime)
    admin = bhype_roles.admin()
    act_as(app, admin.name, "admin")
    with TestClient(app) as client:
        yield runtime, client, app, events, tmp_path / "standin", admin.name
    runtime.queue.scheduler.lease.release()
    runtime.engine.dispose()


def run(runtime, client, path, body=None):
    answer = client.post(f"{UPDATE}{path}", json=body)
    assert answer.status_code == 202, answer.text
    run_queued(runtime)
    return client.get(f"/api/v1/tasks/{answer.json()['task_id']}").json()


def test_plan_then_a_failed_install_resumed(stack) -> None:
    runtime, client, app, events, state_dir, _ = stack
    state = standin.load(state_dir)
    state["pending"]["packages"] = [{"name": "curl", "from": "8.4.0", "to": "8.6.0"}]
    state["fail"]["pkg"] = "pkg: repository unreachable"
    standin.save(state_dir, state)

    assert client.get(f"{UPDATE}/plan").status_code == 404
    planned = run(runtime, client, "/plan")
    plan = client.get(f"{UPDATE}/plan").json()["plan"]
    assert planned["result"] == plan
    assert plan["problems"] == [] and plan["vms"] == [] and plan["check_after"] is False
    assert plan["boot_environment"]["booted"] == "default"
    answer = client.post(f"{UPDATE}/run", json={"confirm": False})
    assert answer.status_code == 422 and "confirm" in answer.text

    failed = run(runtime, client, "/run", {"confirm": True})
    assert failed["state"] == "failed"
    first = client.get(f"{UPDATE}/runs").json()[0]
    assert (first["state"], first["step"]) == ("failed", "install")
    assert "pkg upgrade -y exited with status 1: pkg: repository unreachable" in first["error"]
    assert [e.kind for e in events.seen if e.kind.startswith("hostops.update")] == [
        "hostops.update.step", "hostops.update.step", "hostops.update.step", "hostops.update.failed"]
    again = run(runtime, client, "/run", {"confirm": True})  # another run waits for this one
    assert again["state"] == "failed" and f"run {first['id']} is failed at step install" in again["error"]["message"]

    state = standin.load(state_dir)
    state["fail"].clear()
    standin.save(state_dir, state)
    resumed = run(runtime, client, f"/runs/{first['id']}/resume")
    assert resumed["state"] == "succeeded", resumed
    done = client.get(f"{UPDATE}/runs/{first['id']}").json()
    assert done["state"] == "done"
    assert [(s["step"], s["state"]) for s in done["steps"]] == [
        ("boot_environment", "done"), ("stop_vms", "done"), ("stop_services", "done"), ("install", "failed"),
        ("install", "done"), ("reboot", "done"), ("verify_boot_environment", "done"), ("start_vms", "done"),
        ("start_services", "done"), ("check", "skipped")]
    assert done["data"]["installed"] == {"base": False, "packages": True}
    assert standin.load(state_dir)["pending"]["packages"] == []
    assert [line["message"] for line in resumed["log"]].count("packages: \tcurl: 8.4.0 -> 8.6.0") == 1
    assert events.seen[-1].kind == "hostops.update.done"
    be = done["data"]["be_created"]
    assert be.startswith("bhype-update-") and be in [e["name"] for e in standin.load(state_dir)["environments"]]


def test_a_stopped_run_is_brought_back_without_updating(stack) -> None:
    runtime, client, app, events, state_dir, _ = stack
    state = standin.load(state_dir)
    state["pending"]["base"] = ["14.3-RELEASE-p2"]
    state["fail"]["freebsd-update"] = "freebsd-update: securelevel"
    standin.save(state_dir, state)
    assert run(runtime, client, "/run", {"confirm": True})["state"] == "failed"
    stopped = client.get(f"{UPDATE}/runs").json()[0]
    back = run(runtime, client, f"/runs/{stopped['id']}/abort")
    assert back["state"] == "succeeded", back
    final = client.get(f"{UPDATE}/runs/{stopped['id']}").json()
    assert final["state"] == "brought_back"
    assert [(s["step"], s["state"]) for s in final["steps"][3:]] == [
        ("install", "failed"), ("install", "skipped"), ("reboot", "skipped"),
        ("verify_boot_environment", "skipped"), ("start_vms", "done"), ("start_services", "done"),
        ("check", "skipped")]
    assert standin.load(state_dir)["pending"]["base"] == ["14.3-RELEASE-p2"]  # nothing installed
    assert "shutdown -r now" not in standin.load(state_dir)["log"]
    assert client.post(f"{UPDATE}/runs/{stopped['id']}/resume").status_code == 202
    run_queued(runtime)
    assert client.get(f"{UPDATE}/runs/{stopped['id']}").json()["state"] == "brought_back"  # nothing to resume


def test_operators_get_nothing(stack) -> None:
    runtime, client, app, events, state_dir, _ = stack
    act_as(app, "someone", "operator")
    for method, path in (("post", "/plan"), ("get", "/plan"), ("post", "/run"), ("get", "/runs"),
                         ("post", "/runs/1/resume"), ("post", "/runs/1/abort")):
        assert getattr(client, method)(f"{UPDATE}{path}", **({"json": {"confirm": True}} if method == "post" else {})
                                       ).status_code == 403, path


def test_bhype_host_update_nests_under_the_core_host_command(stack) -> None:
    from bhype_core.cli import build_parser

    runtime = stack[0]
    args = build_parser(runtime).parse_args(["host", "update", "resume", "--run", "3", "--json"])
    assert (args.update_action, args.run, args.json) == ("resume", 3, True)
    assert build_parser(runtime).parse_args(["host", "init", "--dry-run"]).dry_run is True


def test_a_two_word_cli_command_must_nest_under_a_core_command(tmp_path, plugin_manager, register_plugin) -> None:
    from bhype_core.cli import build_parser
    from bhype_core.errors import PluginError
    from bhype_core.registry import CliCommand

    class Clash:
        def __init__(self, name: str) -> None:
            self.name = name

        @hookimpl
        def bhype_register_cli_commands(self, register) -> None:
            register(CliCommand(name=self.name, help="x", configure=lambda parser: None, run=lambda args: 0))

    for name, error in (("host init", "which already exists"), ("nosuch thing", "no command 'nosuch'"),
                        ("a b c", "one word, or two")):
        manager = type(plugin_manager)()
        manager.register_plugin(Clash(name), "clash")
        runtime = build_runtime(make_settings(tmp_path / "data"), manager)
        with pytest.raises(PluginError, match=error):
            build_parser(runtime)


def test_windows_are_off_by_default_and_start_a_run_owned_by_the_admin(stack) -> None:
    from datetime import datetime

    from bhype_core.auth.principal import SYSTEM
    from bhype_core.tasks import service
    from bhype_hostops.update.settings import UpdateSettings, update_settings
    from bhype_hostops.update.window import DAYS, KIND, due

    runtime, client, app, events, state_dir, admin = stack
    monday_3 = datetime(2026, 12, 7, 3, 0)  # a Monday
    assert not due(UpdateSettings(window_days=list(DAYS)), monday_3)  # off by default
    assert due(UpdateSettings(window_enabled=True, window_owner="x", window_days=["mon"]), monday_3)
    assert not due(UpdateSettings(window_enabled=True, window_owner="x", window_days=["sun"]), monday_3)
    assert not due(UpdateSettings(window_enabled=True, window_owner="x", window_days=["mon"]),
                   monday_3.replace(hour=4))
    with pytest.raises(ValueError, match="window_enabled needs window_owner"):
        UpdateSettings(window_enabled=True)
    assert runtime.registry.periodic_jobs["hostops.update-window"].kind == KIND

    def window() -> dict:
        task = service.submit(runtime, SYSTEM, KIND, {})
        run_queued(runtime)
        return client.get(f"/api/v1/tasks/{task.id}").json()

    assert window()["result"] == {"started": None, "reason": "update windows are off"}
    settings = update_settings(runtime)
    settings.window_enabled, settings.window_owner, settings.window_days = True, admin, list(DAYS)
    for _ in range(2):  # again if the hour turned while the job ran
        hour = datetime.now().hour
        settings.window_hour = hour
        started = window()
        if datetime.now().hour == hour:
            break
    assert started["state"] == "succeeded", started
    run_task = client.get(f"/api/v1/tasks/{started['result']['started']}").json()
    assert (run_task["kind"], run_task["owner"], run_task["state"]) == ("hostops.update.run", admin, "succeeded")
    assert client.get(f"{UPDATE}/runs").json()[0]["state"] == "done"


def test_a_service_the_service_kinds_refuse_is_a_problem_of_the_plan(tmp_path, plugin_manager, register_plugin,
                                                                     bhype_roles) -> None:
    """The service kinds' own object checks are asked at plan time (ops's allow-list, here a
    stand-in one), so a refused service stops the plan, not a run whose VMs are already down."""
    import bhype_hostops.update.plugin
    from bhype_core.errors import ValidationErrors
    from bhype_core.registry import TaskKind

    def allow_list(principal, arguments, runtime) -> None:
        if arguments["name"] != "rsyncd":
            raise ValidationErrors([("name", f"{arguments['name']} is not in [hostops] services")])

    class Services:
        @hookimpl
        def bhype_register_tasks(self, register) -> None:
            for action in ("stop", "start"):
                register(TaskKind(name=f"service.{action}", run=lambda context, name: {}, role="admin",
                                  authorize=allow_list))

    register_plugin(models, "core_models")
    register_plugin(bhype_hostops.update.plugin, "hostops_update")
    register_plugin(Services(), "services")
    settings = make_settings(tmp_path / "data", auth=bhype_roles.auth_section(),
                             hostops_update={"platform": "standin", "standin_dir": str(tmp_path / "standin"),
                                             "services": ["rsyncd", "nginx"]})
    runtime = build_runtime(settings, plugin_manager)
    upgrade(runtime)
    app = create_app(runtime=runtime)
    act_as(app, bhype_roles.admin().name, "admin")
    with TestClient(app) as client:
        refused = run(runtime, client, "/run", {"confirm": True})
        assert refused["state"] == "failed"
        message = refused["error"]["message"]
        assert "service.stop refuses service nginx: name: nginx is not in [hostops] services" in message
        assert "rsyncd" not in message.split("cannot start: ", 1)[1]
        assert client.get(f"{UPDATE}/runs").json() == []  # nothing was started
    runtime.queue.scheduler.lease.release()
    runtime.engine.dispose()
