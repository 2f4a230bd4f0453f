"""The production wheel carries no test-image builders (issue 12 "Tidy", issue 13): they live in
the dev/test-only distribution ``testkit/bhype_testimages``, which the core never depends on."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CORE_SRC = ROOT / "bhype_core" / "src" / "bhype_core"
BUILDERS = ("debian", "guest_cache", "initramfs", "zfs_image", "tiny_image")


def imported_modules(path: Path) -> set[str]:
    """Top-level dotted names a module imports (``import x.y``, ``from x.y import z``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_core_has_no_image_builders() -> None:
    assert [name for name in BUILDERS if (CORE_SRC / "testing" / f"{name}.py").exists()] == []
    package = ROOT / "testkit" / "bhype_testimages" / "src" / "bhype_testimages"
    assert all((package / f"{name}.py").is_file() for name in BUILDERS)


def test_no_core_module_imports_the_builders_at_import_time() -> None:
    # The guest fixtures import them on first use (importlib), so the core installs without them.
    offenders = sorted(
        str(path.relative_to(CORE_SRC))
        for path in CORE_SRC.rglob("*.py")
        if any(name.split(".")[0] == "bhype_testimages" for name in imported_modules(path))
    )
    assert offenders == []


def test_the_core_distribution_does_not_depend_on_the_builders() -> None:
    project = tomllib.loads((ROOT / "bhype_core" / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"], *sum(project["optional-dependencies"].values(), [])]
    assert not [r for r in requirements if "testimages" in r]
