"""The FreeBSD port skeleton (packaging/freebsd) and the files it installs, linted here.

What can be checked without a ports tree: the Makefile variables a Python port needs, each
RUN_DEPENDS ↔ a dependency of the package's pyproject.toml (both ways), origins that exist
(packaging/freebsd/README.md lists those checked against freebsd-ports), rc.d names ↔
USE_RC_SUBR ↔ pkg-message, newsyslog pidfiles/logfiles ↔ the rc.d scripts' defaults, the
sample bhype.toml valid, and the nginx sample carrying WebSockets and HSTS.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bhype_core.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
PORTS = ROOT / "packaging" / "freebsd"
# port directory → the package source it builds
PACKAGES = {
    "sysutils/py-bhype": ROOT / "bhype_core",
    **{f"sysutils/py-bhype-{name}": ROOT / "plugins" / f"bhype_{name}"
       for name in ("zfs", "webui", "backup", "monitor", "snmp")},
}
# Port package names that differ from the PyPI name (the ports tree keeps pydantic 1 and 2 apart).
PORT_NAME_TO_PYPI = {"pydantic2": "pydantic"}
REQUIRED = ("PORTNAME", "DISTVERSION", "CATEGORIES", "MASTER_SITES", "PKGNAMEPREFIX", "MAINTAINER", "COMMENT",
            "WWW", "LICENSE", "USES", "USE_PYTHON", "NO_ARCH")
DEPENDENCY = re.compile(r"\$\{PYTHON_PKGNAMEPREFIX\}(?P<name>[A-Za-z0-9_.-]+?)(?P<spec>[<>=].*)?:(?P<origin>[^@]+)"
                        r"@\$\{PY_FLAVOR\}$")


def makefile_variables(path: Path) -> dict[str, str]:
    """``VAR=\\tvalue`` assignments of a port Makefile, continuation lines joined."""
    text = path.read_text().replace("\\\n", " ")
    variables = {}
    for line in text.splitlines():
        match = re.match(r"^([A-Z_][A-Z0-9_]*)\s*[+?]?=\s*(.*)$", line)
        if match:
            variables[match.group(1)] = " ".join(match.group(2).split())
    return variables


def verified_origins() -> set[str]:
    readme = (PORTS / "README.md").read_text()
    block = readme.split("<!-- verified-origins -->")[1].split("<!-- /verified-origins -->")[0]
    return {line.strip("- ").strip() for line in block.splitlines() if line.strip()}


def all_ports() -> list[str]:
    return sorted(str(path.parent.relative_to(PORTS)) for path in PORTS.glob("*/*/Makefile"))


@pytest.mark.parametrize("port", all_ports())
def test_port_makefile_has_what_a_python_port_needs(port) -> None:
    variables = makefile_variables(PORTS / port / "Makefile")
    missing = [name for name in REQUIRED if name not in variables]
    assert not missing, f"{port}: missing {missing}"
    assert variables["USES"].split()[0] == "python"
    assert {"autoplist", "pep517"} <= set(variables["USE_PYTHON"].split())
    assert variables["PKGNAMEPREFIX"] == "${PYTHON_PKGNAMEPREFIX}"
    assert (PORTS / port / "pkg-descr").read_text().strip()
    assert (PORTS / port / "Makefile").read_text().rstrip().endswith(".include <bsd.port.mk>")


@pytest.mark.parametrize("port", all_ports())
def test_dependencies_name_ports_that_exist(port) -> None:
    variables = makefile_variables(PORTS / port / "Makefile")
    known = verified_origins() | set(all_ports())
    for entry in (variables.get("RUN_DEPENDS", "") + " " + variables.get("BUILD_DEPENDS", "")).split():
        match = DEPENDENCY.match(entry)
        assert match, f"{port}: {entry!r} is not NAME[>=VERSION]:ORIGIN@${{PY_FLAVOR}}"
        assert match.group("origin") in known, f"{port}: {match.group('origin')} not verified in freebsd-ports"


@pytest.mark.parametrize("port", sorted(PACKAGES))
def test_run_depends_match_the_pyproject_both_ways(port) -> None:
    project = tomllib.loads((PACKAGES[port] / "pyproject.toml").read_text())["project"]
    variables = makefile_variables(PORTS / port / "Makefile")
    assert variables["PORTNAME"] == project["name"]
    wanted = {canonicalize_name(Requirement(dep).name): Requirement(dep) for dep in project["dependencies"]}
    declared = {}
    for entry in variables.get("RUN_DEPENDS", "").split():
        match = DEPENDENCY.match(entry)
        name = canonicalize_name(PORT_NAME_TO_PYPI.get(match.group("name"), match.group("name")))
        declared[name] = match.group("spec") or ""
    assert set(declared) == set(wanted), f"{port}: RUN_DEPENDS {sorted(declared)} vs pyproject {sorted(wanted)}"
    for name, requirement in wanted.items():  # the port's lower bound is the pyproject's
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert not lower or f">={lower[0]}" in declared[name], f"{port}: {name} wants >={lower[0]}"


def test_rc_scripts_pkg_message_and_newsyslog_agree() -> None:
    variables = makefile_variables(PORTS / "sysutils/py-bhype/Makefile")
    scripts = sorted(variables["USE_RC_SUBR"].split())
    shipped = sorted(p.name for p in resources.files("bhype_core").joinpath("rc.d").iterdir())
    assert scripts == shipped
    message = (PORTS / "sysutils/py-bhype/pkg-message").read_text()
    for script in scripts:
        assert f"{script}_enable=YES" in message and f"service {script} start" in message
    newsyslog = resources.files("bhype_core").joinpath("freebsd", "newsyslog-bhype.conf").read_text()
    entries = [line.split() for line in newsyslog.splitlines() if line.strip() and not line.startswith("#")]
    assert len(entries) == len(scripts)
    for fields in entries:  # newsyslog.conf(5): file owner:group mode count size when flags pidfile signal
        assert len(fields) == 9 and fields[2] == "600" and fields[8] == "1"
        script = Path(fields[7]).stem
        text = resources.files("bhype_core").joinpath("rc.d", script).read_text()
        assert f"{script}_pidfile:={fields[7]}" in text
        assert f"{script}_logfile:={fields[0]}" in text and "-H" in text  # daemon(8) reopens on SIGHUP


def test_sample_config_is_valid_and_trusts_only_the_local_proxy(tmp_path) -> None:
    sample = resources.files("bhype_core").joinpath("freebsd", "bhype.toml.sample").read_text()
    path = tmp_path / "bhype.toml"
    path.write_text(sample)
    settings = load_settings(path)
    assert settings.api.trusted_proxies == ["127.0.0.1"] and settings.api.host == "127.0.0.1"
    assert settings.queue.in_process_worker is False


def test_nginx_sample_carries_websockets_and_hsts_to_the_configured_port() -> None:
    nginx = resources.files("bhype_core").joinpath("freebsd", "nginx-bhype.conf.sample").read_text()
    assert "proxy_set_header Upgrade $http_upgrade;" in nginx
    assert "proxy_set_header Connection $bhype_connection;" in nginx
    assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in nginx
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in nginx  # replaced, not appended
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in nginx
    assert "server 127.0.0.1:8080;" in nginx and nginx.count("{") == nginx.count("}")
