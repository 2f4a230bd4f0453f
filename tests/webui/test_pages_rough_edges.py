"""Issue 14's rough edges in the pages, without a browser (the markup is the point): a favicon,
the Storage card's one figure, task durations and end times, progress numbers as text, the
empty VM list's next steps, the wizard's boot/display/disk controls and their API field errors,
the create task's "go to the VM / start it", the install and rescue starts, and the console
pages' back link, power buttons, display options and serial hint."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import pytest
from pages_env import HTML, PagesEnv
from sqlmodel import Session

from bhype_core.db.task_models import Task
from bhype_core.spec import SpecContext, validate_spec
from bhype_core.tasks import service
from bhype_core.vm.models import VM
from bhype_webui.host_summary import Space
from bhype_webui.views.kit import task_duration

PAGES = ["/ui/", "/ui/vms", "/ui/vms/new", "/ui/isos", "/ui/templates", "/ui/switches", "/ui/tasks",
         "/ui/tokens", "/ui/notifications"]


@pytest.fixture
def env(tmp_path) -> Iterator[PagesEnv]:
    made = PagesEnv(tmp_path)
    yield made
    made.close()


class Attrs(HTMLParser):
    """Every start tag's attributes, as the browser reads them."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **want: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in want.items())]


def add_vm(env: PagesEnv, name: str, owner: str = "alice", **extra) -> str:
    spec = validate_spec({"name": name, "owner": owner, "memory": "256M", "disks": [{"size": "1G"}], **extra},
                         SpecContext(rng=env.rng))
    with Session(env.runtime.engine) as db:
        db.add(VM(name=name, uuid=str(spec.uuid), owner=owner, datastore="default", spec=spec.to_data(),
                  state="stopped"))
        db.commit()
    return name


def finished_task(env: PagesEnv, owner: str, kind: str, arguments: dict, seconds: float, state="succeeded") -> str:
    task = service.submit(env.runtime, _principal(owner), "core.ping", {})
    started = datetime.now(UTC) - timedelta(minutes=5)
    with Session(env.runtime.engine) as db:
        row = db.get(Task, task.id)
        row.kind, row.arguments, row.state, row.progress = kind, arguments, state, 100.0
        row.started, row.finished = started, started + timedelta(seconds=seconds)
        db.add(row)
        db.commit()
    return task.id


def test_every_page_links_a_favicon_that_exists(env):
    add_vm(env, "web1")
    client = env.client("alice")
    for path in [*PAGES, "/ui/vms/web1", "/ui/console/vnc/web1", "/ui/console/serial/web1", "/ui/login"]:
        links = Attrs(client.get(path, headers=HTML).text).find("link", rel="icon")
        assert [link["href"] for link in links] == ["/ui/static/favicon.svg"], path
    icon = client.get("/ui/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert icon.text.lstrip().startswith("<svg")


def test_the_storage_bar_and_its_text_are_one_figure():
    # statvfs: used + free < total by the root reserve; the bar used to show used/total while
    # the text said free of total.
    space = Space("default", "directory", "/d", total=1000, used=500, free=400)
    assert space.in_use == 600 and space.percent == 60
    assert Space("zfs", "zfs", "").percent is None


def test_the_dashboard_storage_card_says_what_its_bar_shows(env):
    page = env.client("root", "admin").get("/ui/", headers=HTML).text
    card = page[page.index("<h3>Storage</h3>"):]
    value = int(re.search(r'aria-label="Datastore default in use">(\d+) %', card).group(1))
    assert re.search(rf"free of [^<]+ \({value} % in use\)", card)


def test_task_tables_have_end_time_duration_and_numbered_progress(env):
    add_vm(env, "web1")
    task_id = finished_task(env, "alice", "vm.start", {"name": "web1"}, 42.4)
    with Session(env.runtime.engine) as db:
        row = db.get(Task, task_id)
        row.target = "vm:web1"
        db.add(row)
        db.commit()
    client = env.client("alice")
    for path in ("/ui/tasks", "/ui/vms/web1"):
        page = client.get(path, headers=HTML).text
        assert '<th scope="col">Ended</th><th scope="col" class="num">Duration</th>' in page, path
        assert '<td class="num">42 s</td>' in page, path
        assert '<span class="num" aria-hidden="true">100 %</span>' in page, path  # the bar's number as text
    detail = client.get(f"/ui/tasks/{task_id}", headers=HTML).text
    assert "<dt>Duration</dt><dd>42 s</dd>" in detail
    assert '<td class="num">42 s</td>' in client.get("/ui/", headers=HTML).text


def test_durations_read_like_people_write_them():
    start = datetime(2026, 1, 1, tzinfo=UTC)

    class T:
        def __init__(self, started, finished):
            self.started, self.finished = started, finished

    assert task_duration(T(None, None)) == ""
    assert task_duration(T(start, start + timedelta(seconds=0.42))) == "0.4 s"
    assert task_duration(T(start, start + timedelta(seconds=185))) == "3 min 05 s"
    assert task_duration(T(start, start + timedelta(hours=2, minutes=7))) == "2 h 07 min"
    assert task_duration(T(start, None), now=start + timedelta(seconds=12)) == "12 s so far"


def test_an_empty_vm_list_says_what_to_do_and_a_filter_does_not(env):
    client = env.client("alice")
    page = Attrs(client.get("/ui/vms", headers=HTML).text)
    hrefs = [a["href"] for a in page.find("a", **{"class": "button primary"})]
    assert "/ui/vms/new" in hrefs
    assert {a["href"] for a in page.find("a", **{"class": "button"})} >= {"/ui/isos", "/ui/templates"}
    assert "No VMs yet" not in client.get("/ui/vms?q=nothing", headers=HTML).text
    add_vm(env, "web1")
    assert "No VMs yet" not in client.get("/ui/vms", headers=HTML).text


def test_the_wizard_has_boot_display_and_disk_controls_whose_api_errors_have_a_place(env):
    client = env.client("alice")
    page = client.get("/ui/vms/new?template=debian", headers=HTML).text
    tags = Attrs(page)
    names = {a.get("name") for t, a in tags.tags if t in ("input", "select", "textarea")}
    assert {"spec.boot.mode", "spec.graphics.vnc", "spec.graphics.wait", "spec.disks.0.bus",
            "spec.disks.1.size"} <= names
    # the template's boot mode is chosen
    chosen = [a["value"] for a in tags.find("option") if "selected" in a and a.get("value") in ("uefi", "grub")]
    assert chosen == ["uefi"]
    spans = {a["data-error-for"] for a in tags.find("span", **{"class": "field-error"})}
    # The library is empty: the ISO choice points to the ISO page.
    assert re.search(r'id="w-iso-empty">The ISO library is empty:\s*<a href="/ui/isos">', page)

    bad = client.post("/api/v1/vms", headers={"X-CSRF-Token": client.csrf}, json={
        "name": "w1", "template": "debian",
        "spec": {"disks": [{"size": "20G", "bus": "scsi"}, {"size": "lots"}], "boot": {"mode": "bios"},
                 "graphics": {"vnc": True, "wait": "sometimes"}}})
    assert bad.status_code == 422
    paths = [field["path"] for field in bad.json()["error"]["fields"]]
    assert {"spec.disks.0.bus", "spec.disks.1.size", "spec.boot.mode"} <= set(paths), paths
    for path in paths:  # app.js puts each next to the span whose path is its longest prefix
        assert any(path == span or path.startswith(span + ".") for span in spans), path


def test_after_a_create_the_task_page_offers_the_vm_and_its_start(env):
    add_vm(env, "web1")
    add_vm(env, "inst1", cdrom="installer.iso")
    plain = finished_task(env, "alice", "vm.create", {"name": "web1"}, 3)
    with_iso = finished_task(env, "alice", "vm.create", {"name": "inst1"}, 3)
    failed = finished_task(env, "alice", "vm.create", {"name": "web1"}, 3, state="failed")
    client = env.client("alice")
    page = Attrs(client.get(f"/ui/tasks/{plain}", headers=HTML).text)
    assert page.find("a", href="/ui/vms/web1", **{"class": "button"})
    (start,) = page.find("button", data_api="POST /api/v1/vms/web1/start")
    assert "data-follow" in start and "disabled" not in start
    assert not page.find("button", data_api="POST /api/v1/vms/web1/start?mode=install")
    iso_page = Attrs(client.get(f"/ui/tasks/{with_iso}", headers=HTML).text)
    assert iso_page.find("button", data_api="POST /api/v1/vms/inst1/start?mode=install")
    assert "is ready" not in client.get(f"/ui/tasks/{failed}", headers=HTML).text
    # An admin sees the same offer for another user's VM.
    assert Attrs(env.client("root", "admin").get(f"/ui/tasks/{plain}", headers=HTML).text).find(
        "button", data_api="POST /api/v1/vms/web1/start")


def test_install_and_rescue_starts_from_the_vm_page_and_the_api(env):
    add_vm(env, "web1")
    add_vm(env, "inst1", cdrom="installer.iso")
    client = env.client("alice")
    assert "Install from ISO" not in client.get("/ui/vms/web1", headers=HTML).text
    page = Attrs(client.get("/ui/vms/inst1", headers=HTML).text)
    (install,) = page.find("button", data_api="POST /api/v1/vms/inst1/start?mode=install")
    assert install["data-confirm"] == "Boot inst1 from installer.iso once, then from its disk?"
    assert page.find("button", data_api="POST /api/v1/vms/inst1/start?mode=rescue")

    headers = {"X-CSRF-Token": client.csrf}
    refused = client.post("/api/v1/vms/web1/start", params={"mode": "install"}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"][0]["path"] == "mode"
    assert "has none: attach one first" in refused.json()["error"]["fields"][0]["message"]
    assert client.post("/api/v1/vms/inst1/start", params={"mode": "sideways"}, headers=headers).status_code == 422
    accepted = client.post("/api/v1/vms/inst1/start", params={"mode": "install"}, headers=headers)
    assert accepted.status_code == 202
    task = service.visible_task(env.runtime, _principal("alice"), accepted.json()["task_id"])
    assert task.kind == "vm.start" and task.arguments == {"name": "inst1", "mode": "install"}


def test_show_command_of_an_install_start_shows_the_boot_without_the_iso(env):
    add_vm(env, "inst1", cdrom="installer.iso", boot="uefi-csm")
    client = env.client("alice")
    plan = client.get("/api/v1/vms/inst1/show-command", params={"platform": "linux", "mode": "install"}).json()
    qemu = [c for c in plan["commands"] if c["argv"][0].startswith("qemu")]
    assert [c["purpose"].split(";")[0] for c in qemu] == [
        "the install boot, with the ISO first", "after the guest's first reboot: the VM without the ISO"]
    assert any("drive=cd0,bootindex=0" in arg for arg in qemu[0]["argv"])
    assert not any("cd0" in arg for arg in qemu[1]["argv"])


def test_console_pages_have_power_back_link_display_options_and_a_serial_hint(env):
    add_vm(env, "web1")
    client = env.client("alice")
    for kind in ("vnc", "serial"):
        page = Attrs(client.get(f"/ui/console/{kind}/web1", headers=HTML).text)
        assert page.find("a", href="/ui/vms/web1", **{"class": "back"}), kind
        powers = {a["data-power"]: a for a in page.find("button") if "data-power" in a}
        assert set(powers) == {"start", "stop", "force-stop"}
        assert powers["force-stop"]["data-confirm"] == "Power web1 off at once, without a guest shutdown?"
        assert powers["stop"]["data-confirm"] == "Ask web1 to shut down (ACPI power button)?"
        assert page.find("button", id="fullscreen")
        assert page.find("script", src="/ui/static/js/console-power.js")
    vnc = Attrs(client.get("/ui/console/vnc/web1", headers=HTML).text)
    assert {a["value"] for a in vnc.find("option")} == {"fit", "remote", "none"}
    assert vnc.find("textarea", id="clipboard") and vnc.find("button", id="clipboard-send")
    serial = client.get("/ui/console/serial/web1", headers=HTML).text
    assert re.search(r'id="serial-hint"[^>]*>Nothing on the screen yet\?.*press Enter', serial, re.S)
    # A name that needs quoting stays one path segment in the back link.
    assert 'href="/ui/vms/a%20b%3F"' in client.get("/ui/console/vnc/a%20b%3F", headers=HTML).text


def _principal(name: str, role: str = "operator"):
    from bhype_core.api.principal import Principal

    return Principal(name, role)  # type: ignore[arg-type]
