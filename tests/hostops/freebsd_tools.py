"""Stand-ins for pkg(8), freebsd-update(8) and freebsd-version(1) that replay recorded outputs.

FreeBSD's tools cannot run here, so a test installs executables named like them in a directory
of its own and points ``[hostops] pkg_command`` … at them (the settings a host with the tools
elsewhere would use). Each answers its argv from ``scenario.json`` beside it — the test swaps
the scenario between check runs — and logs every call (with ``PAGER``) to ``calls.log``. An
argv nobody recorded exits 127 naming it, so a changed command cannot pass on stale samples.
Being real processes run by the real runner, they work for a worker in another process too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SAMPLES = Path(__file__).parent / "samples" / "checks"
TOOLS = {"pkg_command": "pkg", "freebsd_update_command": "freebsd-update", "freebsd_version_command": "freebsd-version"}

SCRIPT = """#!{python}
import json, os, sys
from pathlib import Path
here = Path(__file__).resolve().parent
key = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
with open(here / "calls.log", "a") as log:
    log.write(json.dumps({{"argv": key, "pager": os.environ.get("PAGER")}}) + "\\n")
answers = json.loads((here / "scenario.json").read_text())
if key not in answers:
    sys.stderr.write(f"no recorded answer for {{key!r}}\\n")
    sys.exit(127)
code, out, err = answers[key]
sys.stdout.write(out)
sys.stderr.write(err)
sys.exit(code)
"""


def sample(text: str) -> str:
    """``@name`` → the contents of ``samples/checks/name``; other text as is."""
    return (SAMPLES / text[1:]).read_text() if text.startswith("@") else text


def install(directory: Path) -> dict[str, str]:
    """Put the stand-ins in ``directory``; returns the ``[hostops]`` settings naming them."""
    directory.mkdir(parents=True, exist_ok=True)
    settings = {}
    for setting, name in TOOLS.items():
        path = directory / name
        path.write_text(SCRIPT.format(python=sys.executable))
        path.chmod(0o755)
        settings[setting] = str(path)
    (directory / "scenario.json").write_text("{}")
    return settings


def scenario(directory: Path, answers: dict[str, tuple[int, str, str]]) -> None:
    """Make the stand-ins in ``directory`` answer ``answers``
    (``"pkg audit -F -Rjson": (1, "@audit_several.json", "")``)."""
    resolved = {key: [code, sample(out), sample(err)] for key, (code, out, err) in answers.items()}
    (directory / "scenario.json").write_text(json.dumps(resolved))


def calls(directory: Path) -> list[dict[str, str | None]]:
    """Every call so far: ``{"argv": "pkg audit -F -Rjson", "pager": None}``."""
    log = directory / "calls.log"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def classic(audit: tuple[int, str, str], *, fetch: str = "@fu_fetch_none.txt", ready: bool = False,
            upgrade: str = "@pkg_upgrade_none.txt", base: str = "@audit_none.json") -> dict[str, tuple[int, str, str]]:
    """A classic (non-pkgbase) FreeBSD 14.1-RELEASE-p3 host's answers."""
    return {
        "pkg which /usr/bin/uname": (1, "@pkg_which_classic.txt", ""),
        "pkg audit -F -Rjson": audit,
        "freebsd-version -u": (0, "@freebsd_version_u.txt", ""),
        "freebsd-version -k": (0, "@freebsd_version_k.txt", ""),
        "pkg audit -Rjson FreeBSD-14.1_3": (1 if base != "@audit_none.json" else 0, base, ""),
        "pkg audit -Rjson FreeBSD-kernel-14.1_3": (0, "@audit_none.json", ""),
        "freebsd-update --not-running-from-cron fetch": (0, fetch, ""),
        "freebsd-update updatesready": (0, "@fu_ready.txt", "") if ready else (2, "@fu_not_ready.txt", ""),
        "pkg upgrade -n": (0, upgrade, ""),
    }
