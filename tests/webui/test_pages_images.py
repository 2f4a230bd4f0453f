"""Cloud images on the pages (issue 14): the Templates page offers a fetch button per image not
in the library and says which are there; the wizard's default for a template whose image is in
the library is "boot the cloud image with cloud-init", and without it the wizard links to the
Templates page's button."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

import pytest
from pages_env import HTML, PagesEnv

from bhype_core.vm.services import open_datastore

DEBIAN = "debian-13-genericcloud-amd64.qcow2"


@pytest.fixture
def env(tmp_path) -> Iterator[PagesEnv]:
    made = PagesEnv(tmp_path)
    yield made
    made.close()


def row(page: str, template: str) -> str:
    match = re.search(rf'<tr id="template-{template}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {template}"
    return match.group(1)


def put_in_library(env: PagesEnv, name: str) -> None:
    path = open_datastore(env.runtime).iso_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"QFI\xfb" + bytes(1020))


def test_templates_page_fetch_buttons_and_library_state(env):
    client = env.client("alice")
    page = client.get("/ui/templates", headers=HTML).text
    debian = row(page, "debian")
    assert 'data-api="POST /api/v1/templates/debian/image"' in debian and ">Fetch image<" in debian
    assert DEBIAN in debian
    assert ">Fetch image<" not in row(page, "openbsd") and ">none<" in row(page, "openbsd")

    put_in_library(env, DEBIAN)
    page = client.get("/ui/templates", headers=HTML).text
    assert ">Fetch image<" not in row(page, "debian") and "in the library" in row(page, "debian")
    assert ">Fetch image<" in row(page, "ubuntu")

    # The button's API call: with the image there, a 200 and a message, no task.
    answer = client.post("/api/v1/templates/debian/image", headers={"X-CSRF-Token": client.csrf})
    assert answer.status_code == 200 and answer.json()["task_id"] is None
    assert "already in the library" in answer.json()["message"]


def test_wizard_defaults_to_the_cloud_image_when_the_library_has_it(env):
    client = env.client("alice")
    missing = html.unescape(client.get("/ui/vms/new?template=debian", headers=HTML).text)
    assert 'href="/ui/templates#template-debian"' in missing and "not in the library yet" in missing
    assert 'value="cloud-image"' not in missing
    assert re.search(r'value="none" data-shows="" checked', missing)

    put_in_library(env, DEBIAN)
    page = client.get("/ui/vms/new?template=debian", headers=HTML).text
    assert re.search(r'value="cloud-image" data-shows="w-img-fields" checked', page)
    assert not re.search(r'value="none" data-shows="" checked', page)
    assert f'name="spec.disks.0.source" value="{DEBIAN}"' in page
    fields = re.search(r'<fieldset id="w-img-fields" class="sub">(.*?)</fieldset>', page, re.S).group(1)
    assert 'name="spec.cloud_init.ssh_keys"' in fields and 'name="_password"' in fields
    assert 'name="spec.cloud_init.user_data"' in fields
    assert '/ui/static/js/wizard.js' in page

    # What the form sends for "boot the cloud image with my key": the API accepts it.
    body = {"name": "first", "template": "debian", "spec": {
        "disks": [{"size": "20G", "source": DEBIAN}],
        "cloud_init": {"ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHh0ZXN0a2V5c3R1ZmZzdHVmZnN0dWZmc3R1ZmY x@y"],
                       "user_data": ""}}}
    accepted = client.post("/api/v1/vms", json=body, headers={"X-CSRF-Token": client.csrf})
    assert accepted.status_code == 202, accepted.text

    # A template without an image offers no cloud image and no link.
    other = client.get("/ui/vms/new?template=openbsd", headers=HTML).text
    assert 'value="cloud-image"' not in other and "/ui/templates#" not in other
