"""The SNMP tests' kit: standard MIB directories, snmptrapd on a loopback UDP port with BHYPE-MIB
loaded (its decoded output names bHype's objects), free UDP ports, managers, the web UI check.

snmptrapd(8) flags: ``-f`` foreground, ``-Lo`` log to stdout, ``-C`` no default config files,
``-c FILE`` this one, ``-n`` no reverse lookups, ``-M``/``-m`` MIB dirs and modules (snmpcmd(1)),
``--persistentDir`` for its engine boots (snmp.conf(5)). snmptrapd.conf(5): ``authCommunity
log COMMUNITY``, ``authUser log USER priv``, ``createUser [-e ENGINEID] USER SHA-256 KEY AES KEY``.
"""

from __future__ import annotations

import glob
import random
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bhype_core.testing.parts import missing, require_program
from bhype_core.testing.waiting import wait_for
from bhype_snmp import managers
from bhype_snmp.mib import MIB_FILE

ERLANG_MIBS = "/usr/lib/erlang/lib/snmp-*/mibs"  # Debian erlang-snmp: SNMPv2-SMI, -TC, -CONF, -MIB
NET_SNMP_MIBS = "/usr/share/snmp/mibs"  # Debian libsnmp-base: NET-SNMP-MIB (netSnmpPlaypen)


def standard_mib_dirs() -> list[str]:
    """Directories holding the IETF base modules BHYPE-MIB imports, and NET-SNMP-MIB.

    Debian's own copies of the IETF MIBs are in non-free snmp-mibs-downloader; erlang-snmp
    ships SNMPv2-SMI/TC/CONF/MIB (tools/install-test-deps installs it)."""
    erlang = sorted(glob.glob(ERLANG_MIBS))
    if not erlang:
        missing("erlang-snmp", f"no IETF base MIBs in {ERLANG_MIBS} (apt-get install erlang-snmp)")
    if not Path(NET_SNMP_MIBS, "NET-SNMP-MIB.txt").exists():
        missing("libsnmp-base", f"no NET-SNMP-MIB.txt in {NET_SNMP_MIBS}")
    return [erlang[-1], NET_SNMP_MIBS]


def mib_path() -> str:
    """``-M`` value: BHYPE-MIB's package directory first, then the standard ones (no defaults)."""
    return ":".join([str(MIB_FILE.parent), *standard_mib_dirs()])


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 nothing is bound to now, below the ephemeral range."""
    for port in random.sample(range(20000, 32000), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free UDP port")


@dataclass
class Trapd:
    """A running snmptrapd: its port and what it printed so far (one notification per line)."""

    port: int
    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)

    def notifications(self) -> list[str]:
        """The decoded notifications received so far (lines naming snmpTrapOID)."""
        return [line for line in list(self.lines) if "snmpTrapOID.0" in line]

    def wait_notifications(self, count: int, what: str = "notifications") -> list[str]:
        """At least ``count`` notifications (waits for them)."""
        return wait_for(lambda: (found := self.notifications()) and len(found) >= count and found,
                        f"{count} {what} at snmptrapd", timeout=60, detail=lambda: self.lines[-5:])


@contextmanager
def snmptrapd(tmp_path: Path, config: str) -> Iterator[Trapd]:
    """snmptrapd on ``127.0.0.1:<free port>`` with ``config`` (snmptrapd.conf lines), BHYPE-MIB
    loaded; stopped afterwards."""
    program = require_program("snmptrapd", "snmptrapd")
    port = free_udp_port()
    conf = tmp_path / "snmptrapd.conf"
    conf.write_text(config)
    argv = [program, "-f", "-Lo", "-C", "-c", str(conf), "-n", f"--persistentDir={tmp_path / 'trapd-state'}",
            "-M", mib_path(), "-m", "SNMPv2-MIB:BHYPE-MIB", f"udp:127.0.0.1:{port}"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    trapd = Trapd(port, process)

    def read() -> None:
        for line in process.stdout:
            trapd.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any("NET-SNMP version" in line for line in trapd.lines) or process.poll() is not None,
                 "snmptrapd to start", timeout=30)
        assert process.poll() is None, "snmptrapd exited:\n" + "\n".join(trapd.lines)
        yield trapd
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)


def add_manager(runtime, **values):
    """Store a manager (``ManagerCreate`` fields) and return its row."""
    return managers.create_manager(runtime, managers.ManagerCreate(**values))


def require_webui(pm) -> None:
    """The page tests need the web UI plugin installed next to this one (``nox -s
    "tests(package='bhype_snmp')"`` installs only the core and bhype-snmp: run it with
    ``--without webui`` to leave them out by name)."""
    if not pm.has_plugin("webui"):
        missing("webui", "the bhype-webui plugin is not installed (its page hooks render /ui/snmp)")


def snmp_v2c(tool: str, port: int, community: str, *args: str) -> str:
    """``snmptable``/``snmpget`` (snmpcmd(1)) against the agent on ``port``, BHYPE-MIB loaded, v2c."""
    argv = [require_program(tool, "snmp"), "-v2c", "-c", community, "-t", "2", "-r", "2", "-M", mib_path(),
            "-m", "BHYPE-MIB", f"udp:127.0.0.1:{port}", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def vm_table(port: int, community: str) -> dict[str, dict[str, str]]:
    """bhypeVmTable by VM name (snmptable(1): -Cf separator, -Cl left-aligned)."""
    text = snmp_v2c("snmptable", port, community, "-Cf", "|", "-Cl", "BHYPE-MIB::bhypeVmTable")
    lines = [line for line in text.splitlines() if "|" in line]
    header = lines[0].split("|")
    return {row[0]: dict(zip(header, row, strict=True)) for row in (line.split("|") for line in lines[1:])}
