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


def test_installer_lines_arrive_while_it_runs(platform, tmp_path) -> None:
    """The stand-in's pkg stops after its first progress line until a gate file exists; only a
    line delivered while the command runs can open it (otherwise the install fails)."""
    gate = tmp_path / "gate"
    change(platform, lambda s: s.update(gate=str(gate), pace=0.05) or s["pending"].update(packages=[
        {"name": "curl", "from": "8.4.0", "to": "8.6.0"}, {"name": "git", "from": "2.44", "to": "2.45"}]))
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line.startswith("[1/2] Upgrading curl"):
            gate.touch()

    outcome = platform.install("packages", ["pkg", "upgrade", "-y"], None, on_line=on_line)
    assert outcome.installed and seen == outcome.lines  # every non-blank line, once, in order
    assert seen[-2:] == ["[2/2] Upgrading git from 2.44 to 2.45...", "[2/2] Extracting git-2.45: .......... done"]


def test_a_gate_nobody_opens_fails_the_install(platform, tmp_path, monkeypatch) -> None:
    """The other side of the handshake: without the line, the stand-in gives up (the test above
    is not passing by accident)."""
    change(platform, lambda s: s.update(gate=str(tmp_path / "never")) or s["pending"].update(packages=[
        {"name": "curl", "from": "8.4.0", "to": "8.6.0"}]))
    monkeypatch.setenv("BHYPE_STANDIN_GATE_WAIT", "1")
    with pytest.raises(InstallFailed, match="gate .* never opened"):
        platform.install("packages", ["pkg", "upgrade", "-y"], None, on_line=lambda line: None)
