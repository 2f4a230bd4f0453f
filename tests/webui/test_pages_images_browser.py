"""Cloud images in a real browser (issue 14): the Templates page's **Fetch image** button
fetches an image from a loopback mirror (a real ``bhype serve``, PAM login, Debian's chromium),
then the wizard defaults to "boot the cloud image" for that template, and a console password
typed there reaches the VM's cloud-init user data (the page's own JavaScript composes it)."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from browser_kit import ARTIFACTS
from ui_server import BhypeServer

from bhype_core.testing.file_server import FileServer
from bhype_core.testing.users import LocalUsers, require_user_tools

pytestmark = [pytest.mark.guest, pytest.mark.slow]

WAIT = 120_000  # ms: a bound for a loaded machine, not a timing assertion
IMAGE_NAME = "tiny-cloud.qcow2"
API = """async ([method, url]) => {
  const response = await fetch(url, {method, headers: {'Accept': 'application/json'}});
  return {status: response.status, body: await response.json().catch(() => null)};
}"""


class Mirror:
    """A loopback folder with a small qcow2 image and its SHA512SUMS."""

    def __init__(self, tmp_path) -> None:
        raw = tmp_path / "img.raw"
        raw.write_bytes(bytes(range(256)) * 4096)
        image = tmp_path / IMAGE_NAME
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True)
        data = image.read_bytes()
        files = {IMAGE_NAME: data, "SHA512SUMS": f"{hashlib.sha512(data).hexdigest()}  {IMAGE_NAME}\n".encode()}

        self.server = FileServer(files, by_name=True)
        self.url = f"{self.server.url}/cloud/"

    def close(self) -> None:
        self.server.close()


@pytest.fixture(scope="module")
def served(tiny_guest, tmp_path_factory) -> Iterator[tuple[BhypeServer, Any]]:
    require_user_tools()
    mirror = Mirror(tmp_path_factory.mktemp("mirror"))
    with LocalUsers() as users:
        admins, operators = users.group(), users.group()
        alice = users(groups=[operators])
        server = BhypeServer(tiny_guest, pam_service=users.pam_service(), admin_group=admins.name,
                             operator_group=operators.name)
        # An admin template with a cloud image, fetched from the loopback mirror.
        toml = tiny_guest.template_toml("Tiny with a cloud image").replace("disks = []", 'disks = [{ size = "8M" }]')
        toml = toml.replace('os_type = "linux"', 'os_type = "linux"\ncloud_init = true')
        (server.root / "templates" / "tinyimg.toml").write_text(
            toml + f'\n[image]\nurl = "https://images.example.org/cloud/{IMAGE_NAME}"\n'
                   'checksums = "https://images.example.org/cloud/SHA512SUMS"\nuser = "tiny"\n')
        with open(server.config, "a") as config:
            config.write(f'\n[isos]\nfetch_allow = ["127.0.0.1/32"]\n\n[images.mirrors]\n'
                         f'"https://images.example.org/cloud/" = "{mirror.url}"\n')
        server.start()
        try:
            yield server, alice
        finally:
            server.cleanup()
            mirror.close()


def test_fetch_button_then_the_wizard_boots_the_cloud_image(served, browser) -> None:
    server, alice = served
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(server.url + "/ui/templates")
    page.wait_for_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("User name").fill(alice.name)
    page.get_by_label("Password").fill(alice.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/ui/templates$"))

    page.get_by_role("button", name="Fetch the cloud image of Tiny with a cloud image").click()
    page.wait_for_url(re.compile(r"/ui/tasks/[0-9a-f-]+$"))
    page.locator('#task[data-final="true"] .task-state.task-succeeded').wait_for(timeout=WAIT)
    page.goto(server.url + "/ui/templates")
    row = page.locator("#template-tinyimg")
    assert "in the library" in row.inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "webui-templates-images.png"), full_page=True)

    row.get_by_role("link", name="Create VM").click()
    page.wait_for_url(re.compile(r"/ui/vms/new\?template=tinyimg$"))
    assert page.locator('input[value="cloud-image"]').is_checked()
    vm = "img-" + secrets.token_hex(3)
    page.get_by_label("Name", exact=True).fill(vm)
    page.get_by_label("Console password for tiny").fill("s3cret pass")
    page.screenshot(path=str(ARTIFACTS / "webui-wizard-cloud-image.png"), full_page=True)
    page.get_by_role("button", name="Create VM").click()
    page.wait_for_url(re.compile(r"/ui/tasks/[0-9a-f-]+$"))
    page.locator('#task[data-final="true"] .task-state.task-succeeded').wait_for(timeout=WAIT)

    deadline = time.monotonic() + WAIT / 1000
    while (answer := page.evaluate(API, ["GET", f"/api/v1/vms/{vm}"]))["status"] != 200:
        assert time.monotonic() < deadline, answer
        time.sleep(0.3)
    cloud_init = answer["body"]["spec"]["cloud_init"]
    user_data = cloud_init["user_data"]
    assert user_data.startswith("#cloud-config\n")
    assert json.loads(user_data.split("\n", 1)[1]) == {"password": "s3cret pass", "chpasswd": {"expire": False}}
    assert cloud_init["ssh_keys"] == []
