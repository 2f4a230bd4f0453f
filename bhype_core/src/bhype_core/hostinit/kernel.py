"""FreeBSD kernel prerequisites: modules (kld_list), loader tunables and sysctls.

Sources (/work/shared/reference/freebsd-host.md sections 4.1, 4.2, 4.4, 7.2):
- kldstat(8) ``-q -m MODULE`` exits 0 when the module is loaded or compiled in; kldload(8)
  loads it now; ``sysrc kld_list+="…"`` (sysrc(8), rc.conf(5) ``kld_list``) loads it at boot.
- ``kern.racct.enable=1`` is a loader tunable (loader.conf(5)): RACCT is compiled into GENERIC
  but off until set and the host rebooted; rctl(8) usage then feeds monitoring.
- ``net.link.tap.up_on_open=1`` (tap(4)): persisted in sysctl.conf(5), set now with sysctl(8).
sysrc(8) ``-f FILE`` edits loader.conf and sysctl.conf, which share rc.conf's ``name=value``
syntax. On Linux none of this applies: :func:`not_applicable` says so.
"""

from __future__ import annotations

from bhype_core.hostinit.accounts import Ask
from bhype_core.hostinit.parsers import parse_sysrc_value, parse_words
from bhype_core.hostinit.plan import Change, Step

MODULES = ("vmm", "nmdm", "if_bridge", "if_tuntap")
LOADER_CONF = "/boot/loader.conf"
SYSCTL_CONF = "/etc/sysctl.conf"
# (file, name, value, why, runtime-settable)
TUNABLES = (
    (LOADER_CONF, "kern.racct.enable", "1", "per-VM CPU/memory/I/O accounting for monitoring (rctl(8))", False),
    (SYSCTL_CONF, "net.link.tap.up_on_open", "1", "tap(4) interfaces come up when bhyve opens them", True),
)


def plan_modules(ask: Ask) -> Step:
    """Load each module now (kldload) and list it in rc.conf's kld_list for every boot."""
    changes, notes = [], []
    answer = ask(["sysrc", "-n", "kld_list"])
    listed = parse_words(parse_sysrc_value(answer.stdout, answer.returncode))
    missing = [module for module in MODULES if module not in listed]
    if missing:
        changes.append(Change(f"add {' '.join(missing)} to kld_list in rc.conf",
                              (("sysrc", f"kld_list+={' '.join(missing)}"),), "sysrc(8)"))
    else:
        notes.append(f"kld_list has {' '.join(MODULES)}")
    for module in MODULES:
        if ask(["kldstat", "-q", "-m", module]).returncode == 0:
            notes.append(f"{module} is loaded")
        else:
            changes.append(Change(f"load {module} now", (("kldload", module),), "kldload(8)"))
    return Step("kernel modules", "kldstat(8), kldload(8), sysrc(8)", tuple(changes), tuple(notes))


def plan_tunables(ask: Ask) -> Step:
    """Loader tunables and sysctls persisted in their files, and set now where possible."""
    changes, notes, problems = [], [], []
    for path, name, value, why, runtime in TUNABLES:
        page = "loader.conf(5)" if path == LOADER_CONF else "sysctl.conf(5)"
        answer = ask(["sysrc", "-f", path, "-n", name])
        if parse_sysrc_value(answer.stdout, answer.returncode) == value:
            notes.append(f"{name}={value} in {path}")
        else:
            changes.append(Change(f"set {name}={value} in {path} ({why})",
                                  (("sysrc", "-f", path, f"{name}={value}"),), f"sysrc(8), {page}"))
        current = ask(["sysctl", "-n", name])
        if current.returncode == 0 and current.stdout.strip() == value:
            notes.append(f"{name} is {value} now")
        elif runtime:
            changes.append(Change(f"set {name}={value} now", (("sysctl", f"{name}={value}"),), "sysctl(8)"))
        else:
            problems.append(f"{name} takes effect at the next boot (a loader tunable): reboot the host")
    return Step("loader tunables and sysctls", "loader.conf(5), sysctl.conf(5), sysctl(8)",
                tuple(changes), tuple(notes), tuple(problems))


def not_applicable() -> list[Step]:
    """The FreeBSD-only steps, saying why they do not apply on Linux."""
    return [
        Step("kernel modules", "kldload(8)", notes=(
            "not applicable on Linux: KVM and tun/bridge are loaded by the distribution "
            "(bhype doctor checks /dev/kvm)",)),
        Step("loader tunables and sysctls", "sysctl(8)", notes=(
            "not applicable on Linux: QEMU brings its tap devices up itself; no RACCT",)),
    ]
