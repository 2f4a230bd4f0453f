"""A third-party plugin distribution, pip-installed into a fresh virtualenv next to bhype-core:
its hooks take effect (router answers, notifications arrive), ``bhype plugins`` lists it, and
after ``pip uninstall`` both are gone. Incompatible and broken plugins are blocked and shown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bhype_core import __version__ as CORE_VERSION

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FAKE_PLUGINS = REPO / "tests" / "fake_plugins"
# Distributions that must not leak from the developer's environment into the fresh one: the
# editable core and every bHype plugin installed there (their entry points would show up).
HIDDEN_PREFIXES = ("bhype", "__editable__", "_bhype")

APP_SCRIPT = """
import json, sys
from fastapi.testclient import TestClient
from bhype_core.api.app import create_app
from bhype_core.config import load_settings
from bhype_core.events import Event
from bhype_core.runtime import build_runtime
from bhype_core.testing.api_auth import act_as

runtime = build_runtime(load_settings(sys.argv[1], environ={}))  # plugins from entry points
app = create_app(runtime=runtime)
act_as(app, "alice", "operator")  # past the authentication guard, as any logged-in user
with TestClient(app) as client:
    response = client.get("/api/v1/example/hello")
failures = runtime.notify(Event(kind="vm.crashed", message="web1 exited", subject="vm:web1"))
print(json.dumps({
    "status": response.status_code,
    "body": response.json(),
    "failures": [f.plugin for f in failures],
    "unknown_sections": runtime.settings.unknown_sections(),
}))
"""


class Venv:
    """A fresh virtualenv holding a non-editable bhype-core; commands run with a clean environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.python = root / "venv" / "bin" / "python"
        self.bhype = root / "venv" / "bin" / "bhype"
        # No BHYPE_* overrides, PYTHONPATH or active venv from the caller may reach the venv.
        dropped = ("BHYPE_", "PYTHON", "VIRTUAL_ENV")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        self.env = {
            **inherited,
            "HOME": str(root / "home"),
            "XDG_CONFIG_HOME": str(root / "config"),
            "XDG_DATA_HOME": str(root / "data"),
        }

    def run(self, *argv: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv_text = [str(arg) for arg in argv]
        result = subprocess.run(argv_text, capture_output=True, text=True, env=self.env, timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def pip(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return self.run(self.python, "-m", "pip", "--disable-pip-version-check", "--no-input", *args)

    def install(self, *sources: Path) -> None:
        """Build and install distributions without their dependencies (those come from the .pth).

        ``--no-build-isolation``: the venv's own setuptools builds them, which saves creating
        (and filling from the index) one isolated build environment per distribution.
        """
        copies = [self.copy_source(source) for source in sources]
        self.pip("install", "--no-deps", "--no-build-isolation", *copies)

    def copy_source(self, source: Path) -> Path:
        """A copy of a source tree, so building it leaves no egg-info/build dirs in the repository."""
        target = self.root / "src" / source.name
        if not target.exists():
            ignore = shutil.ignore_patterns("*.egg-info", "__pycache__", "build")
            shutil.copytree(source, target, ignore=ignore)
        return target

    def plugins(self, config: Path | None = None) -> dict[str, dict]:
        """``bhype plugins --json`` in the venv, by plugin name (no config: embedded defaults)."""
        options = ["--config", config] if config else []
        listing = json.loads(self.run(self.bhype, *options, "plugins", "--json").stdout)
        return {info["name"]: info for info in listing}


def make_venv(root: Path) -> Venv:
    """Create the virtualenv and install bhype-core into it.

    Speed: bhype-core's own dependencies (FastAPI, pydantic, SQLAlchemy, Alembic, huey, …) would
    take a minute or more to download and install into every fresh venv, and ``venv
    --system-site-packages`` does not help because the base interpreter has none of them. So
    the venv gets bhype-core and the plugins exactly as pip installs them (``--no-deps``), and a
    ``.pth`` file makes the test environment's third-party packages importable. The ``.pth``
    points at a symlink farm of that site-packages *without* any bHype distribution, so nothing
    but what this test installs can provide ``bhype`` entry points.
    """
    venv = Venv(root)
    venv_command = [sys.executable, "-m", "venv", "--without-pip", str(root / "venv")]
    subprocess.run(venv_command, check=True, timeout=120)
    deps = root / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if entry.name.lower().startswith(HIDDEN_PREFIXES) or entry.suffix == ".pth":
            continue
        (deps / entry.name).symlink_to(entry)
    purelib = venv.run(venv.python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout
    Path(purelib.strip(), "_test_dependencies.pth").write_text(f"{deps}\n")
    # The packages declare setuptools>=77 (PEP 639 license strings); the test environment's may
    # be older, and the venv's own site-packages comes before the .pth entries on sys.path.
    venv.pip("install", "setuptools>=77")
    venv.install(REPO / "bhype_core")
    return venv


@pytest.fixture(scope="module")
def venv(tmp_path_factory) -> Venv:
    return make_venv(tmp_path_factory.mktemp("thirdparty"))


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "bhype.toml"
    path.write_text(
        f'[core]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[example]\ngreeting = "hi from the venv"\nevents_file = "{tmp_path / "events.jsonl"}"\n'
    )
    return path


def run_app(venv: Venv, config: Path) -> dict:
    script = config.parent / "run_app.py"
    script.write_text(APP_SCRIPT)
    return json.loads(venv.run(venv.python, script, config).stdout.splitlines()[-1])


def test_the_venv_holds_only_the_installed_core(venv):
    where = venv.run(venv.python, "-c", "import bhype_core; print(bhype_core.__file__)").stdout.strip()
    assert where.startswith(str(venv.root / "venv")), where  # the built distribution, not the work tree
    # Nothing from the developer's environment provides plugins: only the core's built-ins.
    assert {info["distribution"] for info in venv.plugins().values()} == {"bhype-core"}


def test_install_use_and_uninstall_a_third_party_plugin(venv, config):
    events = config.parent / "events.jsonl"
    venv.install(FAKE_PLUGINS / "bhype_example_thirdparty")

    answer = run_app(venv, config)
    assert answer["status"] == 200
    assert answer["body"] == {"message": "hi from the venv", "version": "1.2.3"}
    assert answer["failures"] == [] and answer["unknown_sections"] == []
    (delivered,) = [json.loads(line) for line in events.read_text().splitlines()]
    assert delivered["kind"] == "vm.crashed" and delivered["subject"] == "vm:web1"
    assert delivered["message"] == "web1 exited"

    info = venv.plugins(config)["example"]
    assert info["status"] == "active" and info["version"] == "1.2.3"
    assert info["distribution"] == "bhype-example-thirdparty"
    assert info["hooks"] == ["bhype_notify", "bhype_register_routers", "bhype_register_settings"]

    venv.pip("uninstall", "--yes", "bhype-example-thirdparty")

    answer = run_app(venv, config)
    assert answer["status"] == 404  # the router is gone
    assert answer["unknown_sections"] == ["example"]  # nobody reads [example] any more
    assert len(events.read_text().splitlines()) == 1  # the second event reached nobody
    assert "example" not in venv.plugins(config)


def test_incompatible_and_broken_plugins_are_blocked_with_their_reasons(venv, config):
    # --no-deps: pip would refuse the first one; a core upgraded after the plugin ends up the same.
    venv.install(FAKE_PLUGINS / "bhype_example_incompatible", FAKE_PLUGINS / "bhype_example_broken")
    try:
        plugins = venv.plugins(config)
        table = venv.run(venv.bhype, "--config", config, "plugins").stdout
    finally:
        venv.pip("uninstall", "--yes", "bhype-example-incompatible", "bhype-example-broken")

    future = plugins["future"]
    assert future["status"] == "blocked" and future["hooks"] == []
    assert future["distribution"] == "bhype-example-incompatible"
    assert future["reason"] == (
        f"bhype-example-incompatible 0.1.0 needs bhype-core>=99, this is bhype-core {CORE_VERSION}"
    )

    broken = plugins["broken"]
    assert (broken["status"], broken["distribution"]) == ("blocked", "bhype-example-broken")
    assert broken["reason"] == (
        "failed to load: RuntimeError: libexample.so.3 not found: install the example package"
    )

    # The human listing shows the same reasons: blocked, never silently absent.
    assert "needs bhype-core>=99" in table and "libexample.so.3 not found" in table
