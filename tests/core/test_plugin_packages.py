"""Every plugin under plugins/ is a complete distribution that fits this core, and no plugin
imports another (read from the work tree: no plugin needs to be installed)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from bhype_core import __version__ as CORE_VERSION

REPO = Path(__file__).resolve().parents[2]
PLUGINS = sorted(path.parent for path in REPO.glob("plugins/*/pyproject.toml"))
EXPECTED = {"bhype_zfs", "bhype_backup", "bhype_monitor", "bhype_webui", "bhype_snmp", "bhype_hostops", "bhype_migrate"}


def imported_modules(source: Path) -> set[str]:
    """Top-level names of every module a Python file imports (absolute imports only)."""
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_five_plugins_exist():
    assert EXPECTED <= {path.name for path in PLUGINS}


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda path: path.name)
def test_plugin_is_a_complete_distribution(plugin: Path):
    package = plugin.name
    project = tomllib.loads((plugin / "pyproject.toml").read_text())["project"]
    assert project["name"] == package.replace("_", "-")
    source = plugin / "src" / package
    version = re.search(r'^__version__ = "([^"]+)"$', (source / "__init__.py").read_text(), re.M)
    assert version, f"{package}/__init__.py has no __version__"
    assert project.get("version", version[1]) == version[1]
    assert version[1] in (plugin / "CHANGELOG.md").read_text()
    assert (plugin / "README.md").read_text().startswith(f"# {project['name']}")

    (core,) = [r for r in map(Requirement, project["dependencies"]) if r.name == "bhype-core"]
    assert core.specifier.contains(Version(CORE_VERSION)), f"{package} refuses bhype-core {CORE_VERSION}"
    # A range, not a floor: a plugin names the core releases it was made for (<0.2).
    assert not core.specifier.contains(Version("99.0")), f"{package} declares no upper bound for bhype-core"

    entry_points = project["entry-points"]["bhype"]
    # One entry point named for the package; a large plugin may register more hook modules of
    # its own (``bhype_hostops.update.plugin``), never another package's.
    assert entry_points[package.removeprefix("bhype_")] == f"{package}.plugin"
    assert all(target.startswith(f"{package}.") for target in entry_points.values()), entry_points
    assert (source / "plugin.py").is_file()


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda path: path.name)
def test_plugins_never_import_each_other(plugin: Path):
    others = {path.name for path in PLUGINS} - {plugin.name}
    offenders = {
        str(source.relative_to(REPO)): sorted(imported_modules(source) & others)
        for source in (plugin / "src").rglob("*.py")
        if imported_modules(source) & others
    }
    assert offenders == {}


def test_the_import_check_sees_imports(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("import bhype_zfs.status\nfrom bhype_backup import api\nfrom . import local\n")
    assert imported_modules(source) == {"bhype_zfs", "bhype_backup"}
