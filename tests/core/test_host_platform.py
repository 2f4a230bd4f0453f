"""Platform detection: chosen at call time from the override or the kernel name."""

from __future__ import annotations

import sys

import pytest

from bhype_core.errors import ConfigError
from bhype_core.host.platform import detect_platform


@pytest.mark.parametrize(
    ("system", "expected"),
    [("freebsd13", "freebsd"), ("freebsd14", "freebsd"), ("FreeBSD", "freebsd"), ("linux", "linux"),
     ("Linux", "linux")],
)
def test_detects_from_kernel_name(system: str, expected: str) -> None:
    assert detect_platform(system=system) == expected
    assert detect_platform("auto", system=system) == expected


def test_override_wins_over_the_system() -> None:
    assert detect_platform("freebsd", system="linux") == "freebsd"
    assert detect_platform("linux", system="FreeBSD") == "linux"


def test_this_machine() -> None:
    expected = "freebsd" if sys.platform.startswith("freebsd") else "linux"
    assert detect_platform() == expected


def test_unknown_override_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"core\.platform: 'solaris'"):
        detect_platform("solaris")


def test_unsupported_system_is_refused() -> None:
    with pytest.raises(ConfigError, match="cannot run on 'darwin'"):
        detect_platform(system="darwin")
