"""The stand-in platform through the same code FreeBSD uses (argv, the runner, the parsers):
real processes of :mod:`bhype_hostops.update.standin`, which behaves like the documented tools."""

from __future__ import annotations

import pytest

from bhype_core.host.runner import LocalRunner
from bhype_hostops.update import standin
from bhype_hostops.update.platform import InstallFailed, ToolFailed, UpdatePlatform
from bhype_hostops.update.settings import UpdateSettings


@pytest.fixture
def platform(tmp_path):
    settings = UpdateSettings(platform="standin", standin_dir=str(tmp_path))
    prefix = [__import__("sys").executable, "-m", "bhype_hostops.update.standin", "--state", str(tmp_path)]
    return UpdatePlatform("standin", LocalRunner(), settings, prefix)


def change(platform: UpdatePlatform, function) -> None:
    from pathlib import Path

    state = standin.load(Path(platform.settings.standin_dir))
    function(state)
    standin.save(Path(platform.settings.standin_dir), state)


def test_boot_environments_are_created_and_listed(platform) -> None:
    assert [(be.name, be.active_now, be.active_reboot) for be in platform.boot_environments()] == [
        ("default", True, True)]
    platform.create_boot_environment("bhype-update-1")
    assert [be.name for be in platform.boot_environments()] == ["default", "bhype-update-1"]
    with pytest.raises(ToolFailed, match="^bectl create -r bhype-update-1 exited with status 1: bectl create: "
                                         "boot environment bhype-update-1 already exists$"):
        platform.create_boot_environment("bhype-update-1")
    assert platform.boot_id() == f"{standin.DEFAULT_STATE['boot_sec']}.0"


def test_installers_freebsd_update_then_packages(platform) -> None:
    change(platform, lambda s: s["pending"].update(base=["14.3-RELEASE-p2"], packages=[
        {"name": "curl", "from": "8.4.0", "to": "8.6.0"}]))
    assert platform.base_mode() == "freebsd-update"
    steps = platform.installers("freebsd-update")
    assert [(name, tool) for name, tool, _ in steps] == [
        ("base", ["freebsd-update", "install"]), ("packages", ["pkg", "upgrade", "-y"])]
    base = platform.install(*steps[0])
    assert base.installed and base.lines == ["Creating snapshot of existing boot environment... done.",
                                             "Installing updates... done."]
    packages = platform.install(*steps[1])
    assert packages.installed and "\tcurl: 8.4.0 -> 8.6.0" in packages.lines
    again = [platform.install(*step) for step in steps]  # exit 2 "nothing staged" is no failure
    assert [outcome.installed for outcome in again] == [False, False]
    assert again[0].lines[0] == "No updates are available to install."


def test_pkgbase_is_detected_and_freebsd_update_refuses_there(platform) -> None:
    change(platform, lambda s: s.update(pkgbase=True))
    assert platform.base_mode() == "pkgbase"
    assert platform.installers("pkgbase")[0][1] == ["pkg", "upgrade", "-y", "-r", "FreeBSD-base"]
    with pytest.raises(InstallFailed, match="freebsd-update install exited with status 1: freebsd-update is "
                                            "incompatible with the use of packaged base"):
        platform.install("base", ["freebsd-update", "install"], None)


def test_a_failing_tool_fails_the_install_with_its_message(platform) -> None:
    change(platform, lambda s: s["fail"].update(pkg="pkg: repository unreachable"))
    with pytest.raises(InstallFailed, match="repository unreachable"):
        platform.install("packages", ["pkg", "upgrade", "-y"], None)


def test_suspend_is_detected_not_assumed(platform) -> None:
    assert platform.can_suspend() is False
    change(platform, lambda s: s.update(snapshot_bhyve=True))
    assert platform.can_suspend() is True
