"""FreeBSD NIC plumbing (tap per NIC, added to an existing bridge) against a runner that answers
like ifconfig(8): ``ifconfig tap create`` prints the new interface's name (reference 5.1;
sample in samples/ifconfig-tap-create.txt), every other ifconfig call prints nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bhype_core.errors import CommandError
from bhype_core.host.process import Result
from bhype_core.spec import validate_spec
from bhype_core.vm.network import IFCONFIG, TAPS_FILE, create_taps, release_taps, tap_plan

SAMPLE = (Path(__file__).parent / "samples" / "ifconfig-tap-create.txt").read_text()


class IfconfigHost:
    """Records argv; answers ``tap create`` with the next name in the sample's format and fails
    ``addm`` on bridges that do not exist, as ifconfig(8) does (exit 1, message on stderr)."""

    def __init__(self, bridges=("bridge0",)) -> None:
        self.calls: list[list[str]] = []
        self.bridges = set(bridges)
        self.next = int(SAMPLE.strip().removeprefix("tap"))

    def run(self, argv, timeout=None, check=True, **_):
        self.calls.append(list(argv))
        out, err, code = "", "", 0
        if argv[1:] == ["tap", "create"]:
            out = f"tap{self.next}\n"
            self.next += 1
        elif len(argv) > 2 and argv[2] == "addm" and argv[1] not in self.bridges:
            err, code = f"ifconfig: interface {argv[1]} does not exist\n", 1
        result = Result(argv=list(argv), returncode=code, stdout=out, stderr=err,
                        stdout_bytes=out.encode(), stderr_bytes=err.encode(), duration=0.0)
        if check and code:
            raise CommandError(argv, code, err)
        return result


def spec(*switches):
    return validate_spec({"name": "web1", "boot": "uefi", "nics": [{"switch": s} if s else {} for s in switches]})


def test_taps_are_created_described_attached_and_recorded(tmp_path):
    host = IfconfigHost(bridges=("bridge0", "vm-dmz"))
    taps = create_taps(host, spec(None, "vm-dmz"), tmp_path)
    assert taps == ["tap3", "tap4"]
    assert host.calls == [
        [IFCONFIG, "tap", "create"], [IFCONFIG, "tap3", "description", "bhype/web1/0", "up"],
        [IFCONFIG, "bridge0", "addm", "tap3"],
        [IFCONFIG, "tap", "create"], [IFCONFIG, "tap4", "description", "bhype/web1/1", "up"],
        [IFCONFIG, "vm-dmz", "addm", "tap4"],
    ]
    assert json.loads((tmp_path / TAPS_FILE).read_text()) == ["tap3", "tap4"]
    assert release_taps(host, tmp_path) == ["tap3", "tap4"]
    assert host.calls[-2:] == [[IFCONFIG, "tap3", "destroy"], [IFCONFIG, "tap4", "destroy"]]
    assert not (tmp_path / TAPS_FILE).exists()


def test_a_missing_bridge_destroys_the_taps_made_so_far(tmp_path):
    host = IfconfigHost(bridges=("bridge0",))
    with pytest.raises(CommandError, match="vm-nope does not exist"):
        create_taps(host, spec(None, "vm-nope"), tmp_path)
    destroyed = [c for c in host.calls if c[-1] == "destroy"]
    assert destroyed == [[IFCONFIG, "tap3", "destroy"], [IFCONFIG, "tap4", "destroy"]]
    assert not (tmp_path / TAPS_FILE).exists()


def test_plan_names_placeholders():
    lines = [" ".join(c.argv) for c in tap_plan(spec("vm-dmz"))]
    assert lines == [f"{IFCONFIG} tap create", f"{IFCONFIG} <tap of nics.0> description bhype/web1/0 up",
                     f"{IFCONFIG} vm-dmz addm <tap of nics.0>"]
