"""Stand-ins for the FreeBSD tools of the update workflow on a development host.

``python -m bhype_hostops.update.standin --state DIR TOOL ARGS…`` behaves like ``bectl``,
``freebsd-update``, ``pkg``, ``shutdown`` and ``sysctl`` as their man pages and
the project's references document them (the texts below name their source), against a small
state file ``DIR/state.json`` a test or a developer edits: the boot environments, which one
the loader boots next, the pending base and package updates, whether the base is packaged.

``shutdown -r now`` is the reboot: the loader's choice becomes the booted environment, the boot
time changes, and the bHype worker that asked (this process's parent, as a power cycle would)
is killed; whoever supervises bHype starts it again (rc.d on a real host, the test here).
Nothing here is used on FreeBSD.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_STATE: dict[str, Any] = {
    "environments": [{"name": "default", "space": "2.1G", "created": "2026-01-05 10:00"}],
    "booted": "default",
    "next": "default",
    "boot_sec": 1767607200,
    "version": "14.3-RELEASE-p1",
    "pkgbase": False,
    "pending": {"base": [], "packages": []},
    "fail": {},  # tool name -> message: that tool fails (exit 1) with this message
    # pkg upgrade prints slowly, like a real download: "pace" seconds between progress lines,
    # and with "gate" (a file path) it stops after the first one until that file exists (at
    # most GATE_WAIT seconds, then fails), so a test can see a line arrive while it runs.
    "pace": 0.0,
    "gate": "",
    "log": [],
}


def load(state_dir: Path) -> dict[str, Any]:
    """The stand-in's state (the defaults when the directory has none yet)."""
    path = state_dir / "state.json"
    if not path.exists():
        return json.loads(json.dumps(DEFAULT_STATE))
    return json.loads(path.read_text())


def save(state_dir: Path, state: dict[str, Any]) -> None:
    """Write the state atomically (a killed worker must not leave half a file)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    temporary = state_dir / "state.json.tmp"
    temporary.write_text(json.dumps(state, indent=2))
    os.replace(temporary, state_dir / "state.json")


def _bectl(state: dict[str, Any], args: list[str]) -> int:
    if args == ["list", "-H"]:
        # bectl(8) list -H: name TAB active TAB mountpoint TAB space TAB created.
        for be in state["environments"]:
            flags = ("N" if be["name"] == state["booted"] else "") + ("R" if be["name"] == state["next"] else "")
            mount = "/" if be["name"] == state["booted"] else "-"
            print(f"{be['name']}\t{flags or '-'}\t{mount}\t{be['space']}\t{be['created']}")
        return 0
    if len(args) >= 2 and args[0] == "create":
        name = args[-1]
        if any(be["name"] == name for be in state["environments"]):
            print(f"bectl create: boot environment {name} already exists", file=sys.stderr)
            return 1
        state["environments"].append({"name": name, "space": "8K", "created": time.strftime("%Y-%m-%d %H:%M")})
        return 0
    print(f"bectl: stand-in does not know {' '.join(args)!r}", file=sys.stderr)
    return 2


def _freebsd_update(state: dict[str, Any], args: list[str]) -> int:
    if state["pkgbase"]:  # freebsd-update.sh check_pkgbase (next-features.md "freebsd-update")
        print("freebsd-update is incompatible with the use of packaged base.  Please see")
        print("https://wiki.freebsd.org/PkgBase for more information.")
        return 1
    if args != ["install"]:
        print(f"freebsd-update: stand-in knows only 'install', not {' '.join(args)!r}", file=sys.stderr)
        return 2
    if not state["pending"]["base"]:
        print("No updates are available to install.")
        print("Run 'freebsd-update [options] fetch' first.")
        return 2
    # install_create_be (CreateBootEnv yes, the default), then install_run: "Installing
    # updates..." and " done." on the same line (usr.sbin/freebsd-update/freebsd-update.sh).
    name = f"{state['version']}_{time.strftime('%Y-%m-%d_%H%M%S')}"
    print("Creating snapshot of existing boot environment... done.")
    state["environments"].append({"name": name, "space": "8K", "created": time.strftime("%Y-%m-%d %H:%M")})
    print("Installing updates... done.")
    state["version"] = state["pending"]["base"][-1]
    state["pending"]["base"] = []
    return 0


GATE_WAIT = 120.0  # BHYPE_STANDIN_GATE_WAIT overrides it (a test of the gate never opening)


def _progress(state: dict[str, Any], line: str, first: bool) -> bool:
    """Print one progress line now (flushed, as a terminal would show it), then wait the pace
    and, after the first, for the gate; False when the gate never opened."""
    print(line, flush=True)
    time.sleep(float(state.get("pace") or 0.0))
    gate = state.get("gate") or ""
    if first and gate:
        waited, limit = 0.0, float(os.environ.get("BHYPE_STANDIN_GATE_WAIT", GATE_WAIT))
        while not os.path.exists(gate):
            if waited >= limit:
                print(f"stand-in: gate {gate} never opened", file=sys.stderr, flush=True)
                return False
            time.sleep(0.05)
            waited += 0.05
    return True


def _pkg(state: dict[str, Any], args: list[str]) -> int:
    if args == ["which", "/usr/bin/uname"]:  # pkg-which(8)
        if state["pkgbase"]:
            print("/usr/bin/uname was installed by package FreeBSD-runtime-15.0")
            return 0
        print("/usr/bin/uname was not found in the database")
        return 1
    if args[:2] != ["upgrade", "-y"]:
        print(f"pkg: stand-in knows only 'upgrade -y' and 'which', not {' '.join(args)!r}", file=sys.stderr)
        return 2
    base_only = args[2:] == ["-r", "FreeBSD-base"]
    pending = [p for p in state["pending"]["packages"] if p["name"].startswith("FreeBSD-") == base_only]
    if not pending:
        print("Your packages are up to date.")  # pkg-upgrade(8) / src/upgrade.c
        return 0
    # The work list as pkg-upgrade(8) prints it (next-features.md "pkg upgrade -n"), then one
    # progress line per package (their wording is not parsed by bHype, only kept in the log).
    print(f"The following {len(pending)} package(s) will be affected (of {len(pending) + 40} checked):")
    print("")
    print("Installed packages to be UPGRADED:")
    for package in pending:
        print(f"\t{package['name']}: {package['from']} -> {package['to']}")
    print("")
    print(f"Number of packages to be upgraded: {len(pending)}")
    sys.stdout.flush()
    for number, package in enumerate(pending, 1):
        step, name = f"[{number}/{len(pending)}]", package["name"]
        if not _progress(state, f"{step} Upgrading {name} from {package['from']} to {package['to']}...", number == 1):
            return 1
        _progress(state, f"{step} Extracting {name}-{package['to']}: .......... done", False)
    state["pending"]["packages"] = [p for p in state["pending"]["packages"] if p not in pending]
    return 0


def _sysctl(state: dict[str, Any], args: list[str]) -> int:
    if args != ["-n", "kern.boottime"]:
        print(f"sysctl: unknown oid {' '.join(args)!r}", file=sys.stderr)
        return 1
    stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(state["boot_sec"]))
    print(f"{{ sec = {state['boot_sec']}, usec = 0 }} {stamp}")  # sysctl(8): a struct timeval
    return 0


def _shutdown(state: dict[str, Any], args: list[str], state_dir: Path) -> int:
    if args != ["-r", "now"]:
        print(f"shutdown: stand-in knows only '-r now', not {' '.join(args)!r}", file=sys.stderr)
        return 2
    print("Shutdown NOW!")
    # The "reboot": the loader's choice boots, with a new boot time; then bHype's worker goes
    # down as on a power cycle (it is our parent: the runner started us).
    state["booted"] = state["next"]
    state["boot_sec"] += 3600
    state["log"].append("reboot")
    save(state_dir, state)
    sys.stdout.flush()
    os.kill(os.getppid(), signal.SIGKILL)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run one stand-in tool: ``--state DIR TOOL ARGS…``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 3 or args[0] != "--state":
        print("usage: python -m bhype_hostops.update.standin --state DIR TOOL [ARGS…]", file=sys.stderr)
        return 2
    state_dir, tool, rest = Path(args[1]), args[2], args[3:]
    state = load(state_dir)
    state["log"].append(" ".join([tool, *rest]))
    if tool in state["fail"]:
        print(state["fail"][tool], file=sys.stderr)
        save(state_dir, state)
        return 1
    if tool == "shutdown":
        return _shutdown(state, rest, state_dir)
    handlers = {"bectl": _bectl, "freebsd-update": _freebsd_update, "pkg": _pkg, "sysctl": _sysctl}
    if tool not in handlers:
        print(f"stand-in: no tool {tool!r}", file=sys.stderr)
        return 127
    status = handlers[tool](state, rest)
    save(state_dir, state)
    return status


if __name__ == "__main__":
    sys.exit(main())
