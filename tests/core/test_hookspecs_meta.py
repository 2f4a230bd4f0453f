"""Meta-tests: every hook in ``bhype_core.hookspecs`` is documented where it is declared (each
parameter with ``:param name:``) and is named by at least one test."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import pluggy

from bhype_core import hookspecs

TESTS = Path(__file__).resolve().parents[1]
THIS_FILE = Path(__file__).resolve()
SPEC_MARK = f"{hookspecs.PROJECT_NAME}_spec"  # the attribute pluggy's HookspecMarker sets


def hook_specs(module: object) -> dict[str, Callable]:
    """Every function ``module`` marks as a hook specification, by name."""
    return {
        name: function
        for name, function in inspect.getmembers(module, inspect.isfunction)
        if hasattr(function, SPEC_MARK)
    }


def documentation_problems(name: str, function: Callable) -> list[str]:
    """What is missing from one hook's declaration: a docstring with a summary line, and a
    ``:param <name>:`` entry and a type annotation for every parameter."""
    doc = inspect.getdoc(function) or ""
    if not doc.strip():
        return [f"{name}: no docstring"]
    problems = []
    if len(doc.splitlines()[0].strip()) < 10:
        problems.append(f"{name}: the docstring's first line should say what the hook is for")
    for parameter in inspect.signature(function).parameters.values():
        if not re.search(rf"^\s*:param {re.escape(parameter.name)}:\s*\S", doc, re.M):
            problems.append(f"{name}: parameter {parameter.name!r} has no ':param {parameter.name}:' entry")
        if parameter.annotation is inspect.Parameter.empty:
            problems.append(f"{name}: parameter {parameter.name!r} has no type annotation")
    return problems


def collect_test_files(root: Path, exclude: Path) -> list[Path]:
    """The test modules (and conftest files) under ``root``, without ``exclude``."""
    files = [*root.rglob("test_*.py"), *root.rglob("conftest.py")]
    return sorted(path for path in files if path.resolve() != exclude)


def untested_hooks(names: Iterable[str], files: Iterable[Path]) -> list[str]:
    """Hook names that no file in ``files`` mentions as a whole word."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in files)
    return sorted(name for name in names if not re.search(rf"\b{re.escape(name)}\b", text))


def test_hooks_are_prefixed_and_cover_every_grammar():
    names = set(hook_specs(hookspecs))
    assert names and all(name.startswith("bhype_") for name in names)
    assert {"bhype_register_settings", "bhype_register_routers", "bhype_notify"} <= names
    verbs = ("create", "start", "stop", "destroy")
    assert {f"bhype_vm_{when}_{verb}" for when in ("before", "after") for verb in verbs} <= names


def test_every_hook_is_documented_where_it_is_declared():
    specs = hook_specs(hookspecs)
    problems = [p for name, function in specs.items() for p in documentation_problems(name, function)]
    assert problems == []


def test_every_hook_is_named_by_a_test():
    files = collect_test_files(TESTS, THIS_FILE)
    assert files, f"no test files under {TESTS}"
    assert untested_hooks(hook_specs(hookspecs), files) == []


# The checks above must be able to fail: feed them a hook module with gaps.

_spec = pluggy.HookspecMarker(hookspecs.PROJECT_NAME)


class GappyHooks:
    """Stands in for a hookspecs module with one good hook and three flawed ones."""

    @staticmethod
    @_spec
    def bhype_good(vm: object) -> None:
        """Called when something good happens to a VM.

        :param vm: the VM record.
        """

    @staticmethod
    @_spec
    def bhype_undocumented(vm: object) -> None:
        pass

    @staticmethod
    @_spec
    def bhype_half_documented(vm: object, context) -> None:
        """Called with two arguments but documents one.

        :param vm: the VM record.
        """

    @staticmethod
    @_spec
    def bhype_misnamed_param(event: object) -> None:
        """Documents a parameter that does not exist.

        :param evnt: a typo.
        """


def test_the_documentation_check_catches_gaps():
    specs = {name: getattr(GappyHooks, name) for name in dir(GappyHooks) if name.startswith("bhype_")}
    problems = [p for name, function in specs.items() for p in documentation_problems(name, function)]
    assert problems == [
        "bhype_half_documented: parameter 'context' has no ':param context:' entry",
        "bhype_half_documented: parameter 'context' has no type annotation",
        "bhype_misnamed_param: parameter 'event' has no ':param event:' entry",
        "bhype_undocumented: no docstring",
    ]


def test_the_coverage_check_catches_a_hook_nobody_tests(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_x(pm):\n    pm.hook.bhype_good(vm=1)\n")
    # Only whole words count: a longer name that merely starts with the hook's name does not.
    (tmp_path / "conftest.py").write_text("NAMES = ['bhype_undocumented_v2']\n")
    (tmp_path / "helper.py").write_text("bhype_misnamed_param = 1  # not a test file\n")
    names = ["bhype_good", "bhype_undocumented", "bhype_misnamed_param"]
    untested = untested_hooks(names, collect_test_files(tmp_path, THIS_FILE))
    assert untested == ["bhype_misnamed_param", "bhype_undocumented"]
