"""nox sessions: each package tested alone, everything together, lint, type checks and docs.

``nox -s "tests(package='bhype_zfs')"`` installs only bhype-core (with its ``test`` extra) and
bhype-zfs into a fresh virtualenv and runs ``tests/zfs``: proof that a plugin installs and works
without the others. ``nox -s "tests(package='bhype_core')"`` runs every core test: each
``tests/`` directory that is no plugin's (``tests/core``, ``auth``, ``vm``, ``network``,
``guest``, ``e2e`` …). ``nox -s "lowest_core(package='bhype_zfs')"`` tests a plugin against
the lowest core its dependency range claims. ``nox -s e2e`` installs everything and runs the
whole suite. Every test session also installs the dev/test-only image builders (``testkit/bhype_testimages``).
"""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
CORE = "bhype_core"
# The test-image builders: development/test only, installed next to the core in every session.
TESTIMAGES = ROOT / "testkit" / "bhype_testimages"
# Directories under tests/ that hold no tests of their own (installable fake plugins).
NOT_TEST_DIRS = {"fake_plugins"}
# Sessions a bare ``nox`` runs; e2e is the README's ``./dev test`` in a fresh environment.
nox.options.sessions = ["lint", "typecheck", "docs", "tests"]
# Test-run tooling the root pytest configuration uses (``timeout``), not a package dependency.
# What the root pytest configuration and the browser tests need beyond each package's [test]
# extra (playwright is only the Python API: the tests drive Debian's chromium, never a download).
PYTEST_TOOLS = ["pytest-timeout>=2.3", "pytest-xdist>=3.8", "playwright>=1.40"]
# The versions the suite last passed with (see the file's header; ./dev lock refreshes it).
CONSTRAINTS = ["-c", str(ROOT / "constraints.txt")]


def package_sources() -> dict[str, Path]:
    """Every distribution in the work tree by package name: the core, then each plugin."""
    plugins = sorted(path.parent for path in ROOT.glob("plugins/*/pyproject.toml"))
    return {CORE: ROOT / CORE, **{path.name: path for path in plugins}}


def plugin_tests_dir(package: str) -> str:
    """A plugin's tests: ``bhype_zfs`` → ``tests/zfs``."""
    return f"tests/{package.removeprefix('bhype_')}"


def tests_dirs(package: str) -> list[str]:
    """A package's test directories. A plugin has ``tests/<name>``; the core has every other
    directory under ``tests/`` (its unit tests in ``tests/core`` and the end-to-end ones in
    ``auth``, ``vm``, ``network``, ``guest``, ``e2e`` …), so a new core test directory is never
    left out of its session (issue 13: ~4,800 lines of core tests were)."""
    if package != CORE:
        return [plugin_tests_dir(package)]
    plugins = {plugin_tests_dir(name) for name in package_sources() if name != CORE}
    found = sorted(f"tests/{path.name}" for path in (ROOT / "tests").iterdir() if path.is_dir())
    return [path for path in found if path not in plugins and path.removeprefix("tests/") not in NOT_TEST_DIRS]


def clean_copy(session: nox.Session, source: Path) -> str:
    """A copy of a distribution's source in the session's temporary directory.

    pip builds in the source tree, and setuptools keeps ``build/`` between builds: a module
    deleted from ``src`` would still be packaged from a stale ``build/lib``. Building a fresh
    copy gives the same wheel a clean checkout would, and leaves the work tree untouched.
    """
    target = Path(session.create_tmp()) / "src" / source.name
    if target.exists():
        shutil.rmtree(target)
    ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    shutil.copytree(source, target, ignore=ignore)
    return str(target)


def install_packages(session: nox.Session, packages: list[str]) -> None:
    """Install bhype-core[test] and ``packages`` (non-editable, as users get them) in one resolve."""
    sources = package_sources()
    requirements = [f"{clean_copy(session, sources[CORE])}[test]"]
    requirements += [clean_copy(session, sources[name]) for name in packages if name != CORE]
    requirements.append(clean_copy(session, TESTIMAGES))
    session.install(*CONSTRAINTS, *requirements, *PYTEST_TOOLS)


@nox.session
@nox.parametrize("package", list(package_sources()))
def tests(session: nox.Session, package: str) -> None:
    """One package alone (core + ``package`` in a fresh venv), running its test directories."""
    install_packages(session, [package])
    session.run("pytest", *tests_dirs(package), *session.posargs)


@nox.session
@nox.parametrize("package", [name for name in package_sources() if name != CORE])
def lowest_core(session: nox.Session, package: str) -> None:
    """A plugin against the lowest bhype-core its ``bhype-core>=X`` claims (issue 12), from the
    release tag ``bhype-core-vX`` (``git archive``), or from this work tree while the core's
    version is still X (unreleased). A claim no source can satisfy fails the session."""
    sources = package_sources()
    lowest = lowest_core_claim(sources[package])
    core = core_source_at(session, lowest)
    session.install(*CONSTRAINTS, f"{core}[test]", clean_copy(session, sources[package]),
                    clean_copy(session, TESTIMAGES), *PYTEST_TOOLS)
    session.run("pytest", *tests_dirs(package), *session.posargs)


def lowest_core_claim(plugin: Path) -> str:
    """The ``X`` of the plugin's ``bhype-core>=X`` dependency."""
    text = (plugin / "pyproject.toml").read_text()
    match = re.search(r'"bhype-core\s*>=\s*([0-9][0-9.]*)', text)
    if match is None:
        raise ValueError(f"{plugin.name}: no 'bhype-core>=X' dependency to test against")
    return match.group(1)


def core_version() -> str:
    """The work tree's bhype-core version (``__version__``, read without importing it)."""
    text = (ROOT / CORE / "src" / CORE / "__init__.py").read_text()
    match = re.search(r'__version__\s*=\s*"([^"]+)"', text)
    assert match is not None, "bhype_core/__init__.py has no __version__"
    return match.group(1)


def same_release(a: str, b: str) -> bool:
    """``0.1`` and ``0.1.0`` name the same release."""
    def parts(version: str) -> list[int]:
        numbers = [int(p) for p in version.split(".")]
        return numbers + [0] * (3 - len(numbers))
    return parts(a) == parts(b)


def core_source_at(session: nox.Session, version: str) -> str:
    """A clean copy of the core at release ``version``: its tag, or this tree if unreleased."""
    tag = f"bhype-core-v{version}"
    tagged = session.run("git", "tag", "--list", tag, external=True, silent=True) or ""
    if tagged.strip() == tag:
        target = Path(session.create_tmp()) / f"core-{version}"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        archive = target.with_suffix(".tar")
        session.run("git", "archive", "--format=tar", f"--output={archive}", tag, CORE, external=True)
        shutil.unpack_archive(archive, target)
        return str(target / CORE)
    if same_release(version, core_version()):
        return clean_copy(session, ROOT / CORE)
    session.error(f"no tag {tag} and the work tree's core is {core_version()}: the claimed lowest "
                  "version cannot be installed, so the claim is untested (raise it, or tag that release)")
    raise AssertionError("unreachable")


@nox.session
def e2e(session: nox.Session) -> None:
    """Every package installed together; the whole test suite."""
    install_packages(session, list(package_sources()))
    session.run("pytest", "tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole work tree (settings in the root pyproject.toml)."""
    session.install(*CONSTRAINTS, "ruff>=0.4")
    session.run("ruff", "check", ".", *session.posargs)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over every package's sources (all packages installed for their dependencies)."""
    install_packages(session, list(package_sources()))
    session.install(*CONSTRAINTS, "mypy>=1.10")
    sources = [str(path / "src" / name) for name, path in package_sources().items()]
    sources.append(str(TESTIMAGES / "src" / TESTIMAGES.name))
    session.run("mypy", *sources, *session.posargs)


@nox.session(venv_backend="none")
def docs(session: nox.Session) -> None:
    """Every hook in docs/plugins.md; every relative Markdown link and #anchor resolves."""
    problems = [f"docs/plugins.md does not mention hook {name}" for name in missing_hooks()]
    problems += broken_links(markdown_files())
    if problems:
        session.error("\n".join(problems))
    session.log(f"docs ok: {len(hook_names())} hooks in the guide, {len(markdown_files())} Markdown files")


# --------------------------------------------------------------------------------------------
# Documentation checks (plain functions: the docs session needs no virtualenv)


def hook_names() -> list[str]:
    """Hook names declared in hookspecs.py (functions decorated with ``@hookspec``), read
    without importing bhype_core."""
    tree = ast.parse((ROOT / CORE / "src" / CORE / "hookspecs.py").read_text())
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(d, ast.Name) and d.id == "hookspec" for d in node.decorator_list)
    ]


def missing_hooks() -> list[str]:
    """Hooks the plugin author's guide never names."""
    guide = (ROOT / "docs" / "plugins.md").read_text()
    return [name for name in hook_names() if not re.search(rf"\b{name}\b", guide)]


def markdown_files() -> list[Path]:
    """The project's Markdown: top-level, docs/ and each package's README/CHANGELOG."""
    patterns = ["*.md", "docs/**/*.md", f"{CORE}/*.md", "plugins/*/*.md", "testkit/*/*.md"]
    return sorted({path for pattern in patterns for path in ROOT.glob(pattern)})


_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def heading_anchors(text: str) -> set[str]:
    """GitHub-style anchors of a Markdown file's headings (lower case, punctuation dropped,
    spaces to hyphens; repeated headings get ``-1``, ``-2``)."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _FENCE.sub("", text), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in anchors:
            n += 1
            candidate = f"{slug}-{n}"
        anchors.add(candidate)
    return anchors


def broken_links(files: list[Path]) -> list[str]:
    """Relative links whose file does not exist or whose ``#anchor`` is no heading there.
    External links (``http:``, ``mailto:``) are not fetched: the CI machine has no network."""
    problems = []
    for file in files:
        text = _FENCE.sub("", file.read_text())
        for target in _LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue
            path_part, _, anchor = target.partition("#")
            linked = (file.parent / path_part).resolve() if path_part else file
            where = f"{file.relative_to(ROOT)}: link {target!r}"
            if not linked.exists():
                problems.append(f"{where}: {path_part} does not exist")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked.read_text()):
                problems.append(f"{where}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    return problems
