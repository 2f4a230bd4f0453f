"""The README's "Your first VM", followed as a new user would (issue 14).

The commands come from README.md's code block itself, so the test breaks when the README
drifts. What a test may not do on the host is swapped for its hermetic equal, each checked
against the README's line first: ``groupadd``/``useradd`` make the kit's random ``bht_…`` groups
and user (standing in for ``bhype-admin`` and ``alice``); ``./dev serve`` is what the dev script
execs (``bhype serve`` with ``BHYPE_AUTH__BACKEND=in-process``) on a free loopback port with a
test configuration. Every ``.venv/bin/bhype …`` line runs as written (only ``alice`` becomes the
kit's user), as a separate process that finds the server by itself (no ``--url``).

Nothing reaches the internet: ``[images] mirrors`` sends the shipped Debian template's image URL
and SHA512SUMS to an HTTP server on loopback serving a small qcow2 image built here and its
checksum line in Debian's format. An admin template named ``debian`` keeps the shipped template's
``[image]`` but boots the kit's tiny guest kernel (a real cloud image needs a real distribution);
the disk is still written from the fetched image, and the guest takes its hostname from the
cloud-init seed, so the console prompt reads ``first#``.
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bhype_core.templates import load_templates
from bhype_core.testing.file_server import FileServer
from bhype_core.testing.guest_image import READY_MARKER, GuestImage
from bhype_core.testing.ports import free_port
from bhype_core.testing.users import LocalUsers, require_user_tools

pytestmark = [pytest.mark.guest, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
WAIT = 300.0  # seconds: TCG on a loaded 2-core machine; a bound, not a timing assertion
PATTERN = bytes(range(256)) * (2 << 20 >> 8)  # 2 MiB the disk must start with
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFirstVmReadmeTestKeyFirstVmReadmeTestKey0 newcomer@laptop"


def readme_commands() -> list[str]:
    """The command lines of the README's "Your first VM" code block, comments removed."""
    text = README.read_text()
    section = text.split("\n## Your first VM\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README's 'Your first VM' has no ```sh block"
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in block.group(1).splitlines()]
    return [line for line in lines if line]


def debian_template(guest: GuestImage) -> str:
    """An admin ``debian``: the shipped template's [image], the tiny guest's kernel."""
    image = load_templates().get("debian").image
    return f"""\
title = "Debian (tiny guest kernel, for the walkthrough test)"
os_type = "linux"
cloud_init = true

[defaults.disk]
bus = "virtio-blk"

[spec]
cpus = 1
memory = "256M"
disks = [{{ size = "8M" }}]
nics = [{{}}]

[spec.boot]
mode = "grub"
kernel = "{guest.kernel}"
initrd = "{guest.initrd}"
cmdline = "{guest.cmdline}"

[spec.graphics]
vnc = false

[image]
url = "{image.url}"
checksums = "{image.checksums}"
user = "{image.user}"
"""


class Mirror:
    """Debian's cloud image folder on loopback: a qcow2 of :data:`PATTERN` and SHA512SUMS."""

    def __init__(self, folder: Path) -> None:
        raw, image = folder / "image.raw", folder / "image.qcow2"
        raw.write_bytes(PATTERN)
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True)
        self.image = image.read_bytes()
        shipped = load_templates().get("debian").image
        digest = hashlib.sha512(self.image).hexdigest()
        self.files = {
            shipped.file: self.image,
            "SHA512SUMS": f"{hashlib.sha512(b'json').hexdigest()}  debian-13-genericcloud-amd64.json\n"
                          f"{digest}  {shipped.file}\n".encode(),
        }
        self.server = FileServer(self.files, by_name=True)
        self.requests = self.server.requests
        self.url = f"{self.server.url}/debian-cloud/"

    def close(self) -> None:
        self.server.close()


class Host:
    """The machine of the README: a configuration, ``bhype serve``, a home with an SSH key."""

    def __init__(self, root: Path, guest: GuestImage, mirror: Mirror, pam_service: str,
                 admins: str, operators: str) -> None:
        self.root = root
        templates = root / "templates"
        templates.mkdir()
        (templates / "debian.toml").write_text(debian_template(guest))
        self.config = root / "bhype.toml"
        self.config.write_text(f"""\
[core]
data_dir = "{root / 'data'}"
driver = "qemu"

[queue]
backend = "sqlite"

[tasks]
poll_interval = 0.2

[qemu]
accel = "tcg"

[vm]
templates_dir = "{templates}"
stop_timeout = 30

[vm.datastores.default]
path = "{root / 'ds'}"

[auth]
pam_service = "{pam_service}"
admin_groups = ["{admins}"]
operator_groups = ["{operators}"]

[isos]
fetch_allow = ["127.0.0.1/32"]

[images.mirrors]
"https://cloud.debian.org/images/cloud/trixie/latest/" = "{mirror.url}"
""")
        self.home = root / "home"
        (self.home / ".ssh").mkdir(parents=True)
        (self.home / ".ssh" / "id_ed25519.pub").write_text(KEY + "\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BHYPE_")}
        self.env.update(BHYPE_CONFIG=str(self.config), HOME=str(self.home), PYTHONUNBUFFERED="1",
                        XDG_CONFIG_HOME=str(root / "xdg"))
        for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
            self.env.pop(name, None)
        self.server: subprocess.Popen[bytes] | None = None
        self.log = root / "serve.log"

    def serve(self) -> None:
        """What ``./dev serve`` execs, on a free port (the CLI must find it by itself)."""
        env = {**self.env, "BHYPE_AUTH__BACKEND": "in-process"}
        port = free_port()
        with open(self.log, "ab") as log:
            self.server = subprocess.Popen([str(bhype()), "serve", "--host", "127.0.0.1", "--port", str(port)],
                                           stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 90
        while not (self.root / "data" / "served.json").exists():
            assert self.server.poll() is None, self.log.read_text()[-3000:]
            assert time.monotonic() < deadline, "bhype serve did not come up"
            time.sleep(0.2)

    def bhype(self, words: list[str], stdin: str = "", timeout: float = WAIT) -> subprocess.CompletedProcess[str]:
        """One CLI command in a session of its own (no terminal: a password prompt reads stdin)."""
        done = subprocess.run([str(bhype()), *words], input=stdin, capture_output=True, text=True,
                              env=self.env, timeout=timeout, start_new_session=True)
        assert done.returncode == 0, f"bhype {shlex.join(words)}: {done.stdout}{done.stderr}\n{self.server_log()}"
        return done

    def server_log(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.send_signal(signal.SIGINT)
            try:
                self.server.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait(timeout=10)


def bhype() -> Path:
    """``.venv/bin/bhype`` of the environment running the tests."""
    return Path(sys.executable).with_name("bhype")


def console(host: Host, words: list[str], type_first: str, wait_for: str) -> str:
    """Run ``bhype vm console`` as written, type ``type_first``, read until ``wait_for``, then
    detach with the README's ``~.``; returns what the console showed."""
    process = subprocess.Popen([str(bhype()), *words], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, env=host.env, start_new_session=True)
    assert process.stdin and process.stdout
    seen = b""
    try:
        deadline = time.monotonic() + WAIT
        next_type = 0.0
        while wait_for.encode() not in seen:
            assert process.poll() is None, seen.decode(errors="replace")
            assert time.monotonic() < deadline, f"no {wait_for!r} on the console: {seen[-2000:]!r}"
            if time.monotonic() >= next_type:  # the guest may still be booting: ask again
                process.stdin.write(type_first.encode())
                process.stdin.flush()
                next_type = time.monotonic() + 10
            ready, _, _ = select.select([process.stdout], [], [], 0.5)
            if ready:
                seen += os.read(process.stdout.fileno(), 4096)
        process.stdin.write(b"\r~.")
        process.stdin.flush()
        assert process.wait(timeout=30) == 0
        return seen.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def walkthrough(tiny_guest: GuestImage) -> Iterator[tuple[Host, Mirror, Any, Any, Any]]:
    require_user_tools()
    root = Path(tempfile.mkdtemp(prefix="bhfv-", dir="/tmp"))  # unix socket paths stay short
    with LocalUsers() as users:
        admins, operators = users.group(), users.group()  # stand-ins for bhype-admin and bhype
        mirror = Mirror(root)
        host = Host(root, tiny_guest, mirror, users.pam_service(), admins.name, operators.name)
        try:
            yield host, mirror, users, admins, operators
        finally:
            try:
                host.bhype(["vm", "force-stop", "first", "--wait"], timeout=120)
            except (AssertionError, subprocess.TimeoutExpired):
                pass
            host.stop()
            mirror.close()
            import shutil

            shutil.rmtree(root, ignore_errors=True)


def test_readme_first_vm_commands_work_as_written(walkthrough):
    host, mirror, users, admins, operators = walkthrough
    commands = readme_commands()
    assert len(commands) == 8, commands
    groups, account, serve, *cli = commands

    # The host-changing lines, done with the kit's throwaway groups and user instead.
    assert groups == "groupadd bhype-admin && groupadd bhype"
    assert account == "useradd -m -G bhype-admin alice && passwd alice"
    alice = users(groups=[admins])
    # ./dev serve: the dev script still ends in `bhype serve` with the in-process PAM backend.
    assert serve == "./dev serve"
    dev = (ROOT / "dev").read_text()
    assert 'BHYPE_AUTH__BACKEND="${BHYPE_AUTH__BACKEND:-in-process}"' in dev and 'bhype" serve "$@"' in dev
    host.serve()

    outputs: list[str] = []
    for line in cli:
        words = shlex.split(line)
        assert words[0] == ".venv/bin/bhype", line
        words = [alice.name if word == "alice" else word for word in words[1:]]
        if words[:2] == ["image", "fetch"]:  # only Debian's folder is mirrored: never the internet
            assert words[2:] == ["debian"], line
        if words[:2] == ["vm", "console"]:
            shown = console(host, words, "\r", "first#")
            outputs.append(shown)
            continue
        done = host.bhype(words, stdin=alice.password + "\n" if words[0] == "login" else "")
        outputs.append(done.stdout + done.stderr)

    login, fetch, create, start, shown = outputs
    assert f"as {alice.name}" in login
    image = load_templates().get("debian").image
    assert image.name in fetch and "sha512 verified" in fetch
    assert {p.rsplit("/", 1)[-1] for p in mirror.requests} == {"SHA512SUMS", image.file}
    assert "succeeded" in create and "succeeded" in start
    # The guest took its hostname from the cloud-init seed (meta-data local-hostname).
    assert "first#" in shown

    # The disk was written from the fetched image (qcow2 → raw: the pattern at offset 0).
    disks = sorted((host.root / "ds" / "vms" / "first").glob("disk0*"))
    assert disks, list((host.root / "ds" / "vms" / "first").iterdir())
    with open(disks[0], "rb") as handle:
        assert handle.read(len(PATTERN)) == PATTERN
    serial = (host.root / "ds" / "vms" / "first" / "serial.log").read_text(errors="replace")
    assert f"{READY_MARKER} hostname=first" in serial
    # The seed the guest read: the --ssh-key for the image's user, and DHCP on the VM's NIC.
    seed = (host.root / "ds" / "vms" / "first" / "cidata.iso").read_bytes()
    assert KEY.encode() in seed and b'"dhcp4": true' in seed

    # The README's promise: a second fetch is a no-op that says so.
    again = host.bhype(["image", "fetch", "debian"]).stdout
    assert "already in the library" in again
    listing = host.bhype(["image", "list"]).stdout
    assert re.search(rf"debian\s+{re.escape(image.name)}\s+yes\s+debian", listing)
