"""Meta-tests: plugins import only the core's public surface (``bhype_core.plugin_api``), and
that surface is what it says it is (every name in ``__all__`` exists and is documented)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import bhype_core.plugin_api as plugin_api

REPO = Path(__file__).resolve().parents[2]
PUBLIC = "bhype_core.plugin_api"
# The five plugins, and the third-party example the docs walk through.
PLUGIN_SOURCES = [*sorted((REPO / "plugins").glob("*/src")),
                  REPO / "tests" / "fake_plugins" / "bhype_example_thirdparty" / "src"]


def private_imports(source: str, filename: str) -> list[str]:
    """``file:line: module`` for every import of a ``bhype_core`` module other than the public
    one (``import bhype_core.x``, ``from bhype_core.x import y``, ``from bhype_core import x``)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] if node.module != "bhype_core" else [
                f"bhype_core.{alias.name}" for alias in node.names]
        for module in modules:
            if (module == "bhype_core" or module.startswith("bhype_core.")) and module != PUBLIC:
                found.append(f"{filename}:{node.lineno}: {module}")
    return found


def test_plugins_import_only_the_plugin_api():
    files = [path for root in PLUGIN_SOURCES for path in sorted(root.rglob("*.py"))]
    assert len({path.parts[len(REPO.parts) + 1] for path in files if "plugins" in path.parts}) >= 5
    problems = [problem for path in files
                for problem in private_imports(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert problems == []


def test_the_import_check_catches_every_form():
    source = (
        "import bhype_core.vm.records\n"
        "from bhype_core.db.session import session\n"
        "from bhype_core import errors\n"
        "def late():\n    from bhype_core.api.cookies import csrf_cookie_name\n"
        "from bhype_core.plugin_api import hookimpl\n"
        "from bhype_core import plugin_api\n"
        "from . import sibling\n"
        "import bhype_zfs.tool\n"
    )
    assert private_imports(source, "p.py") == [
        "p.py:1: bhype_core.vm.records",
        "p.py:2: bhype_core.db.session",
        "p.py:3: bhype_core.errors",
        "p.py:5: bhype_core.api.cookies",
    ]


def test_every_exported_name_exists_and_is_documented():
    missing = [name for name in plugin_api.__all__ if not hasattr(plugin_api, name)]
    assert missing == []
    assert len(plugin_api.__all__) == len(set(plugin_api.__all__))
    undocumented = [
        name for name in plugin_api.__all__
        if (inspect.isfunction(getattr(plugin_api, name)) or inspect.isclass(getattr(plugin_api, name)))
        and not inspect.getdoc(getattr(plugin_api, name))
    ]
    assert undocumented == []
    assert "public" in (plugin_api.__doc__ or "").lower()


def test_task_accepted_is_declared_once():
    """One answer for "your task is queued": no plugin or core route declares its own."""
    declared = []
    for root in [REPO / "bhype_core" / "src", REPO / "plugins"]:
        for path in root.rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            declared += [str(path.relative_to(REPO)) for node in ast.walk(tree)
                         if isinstance(node, ast.ClassDef) and node.name == "TaskAccepted"]
    assert declared == ["bhype_core/src/bhype_core/api/accepted.py"]
