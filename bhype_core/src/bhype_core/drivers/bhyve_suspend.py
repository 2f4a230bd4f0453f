"""bhyve suspend to disk and resume: argv builders and the usage parser (pure functions).

Facts (reference freebsd-host.md §3.4, and the man pages):

* bhyvectl(8) ``--suspend=<filename>``: "Save a snapshot of a virtual machine similar to
  --checkpoint. The virtual machine will terminate after the snapshot has been saved." Guest
  memory goes to ``<filename>``, device and vCPU state to ``<filename>.kern`` (current sources
  add ``<filename>.meta``); bhyve then destroys the VM and exits 0. Exit status: 0 on success
  (``.Ex -std``).
* bhyve(8) ``-r file``: "Resume a guest from a snapshot … the configuration of devices in the
  new VM [must] match the VM from which the snapshot was taken by specifying the same -s and
  -l options." The snapshot format is not stable across releases (bhyvectl(8) COMPATIBILITY).
* Only a userland built ``WITH_BHYVE_SNAPSHOT`` (and a kernel with ``options BHYVE_SNAPSHOT``)
  has either; release media do not. bhyve(8) ``-h`` prints the usage on stderr: its synopsis
  shows ``[-r file]`` on every build, but the line ``-r: path to checkpoint file`` only where
  ``BHYVE_SNAPSHOT`` is defined (usr.sbin/bhyve ``usage()``), so that line is the test.
"""

from __future__ import annotations

import re

_RESTORE_LINE = re.compile(r"^\s*-r:\s", re.MULTILINE)


def bhyve_usage_argv(bhyve: str) -> list[str]:
    """bhyve(8) ``-h``: print the usage (on stderr) and exit."""
    return [bhyve, "-h"]


def usage_lists_restore(usage: str) -> bool:
    """Whether a ``bhyve -h`` output comes from a build that can checkpoint and restore:
    it describes ``-r`` (``-r: path to checkpoint file``), not merely shows it in the synopsis."""
    return _RESTORE_LINE.search(usage) is not None


def bhyvectl_suspend_argv(bhyvectl: str, vm_name: str, path: str) -> list[str]:
    """bhyvectl(8) ``--vm=NAME --suspend=FILE``: save the guest to FILE (+ ``.kern``, ``.meta``)
    and end it."""
    return [bhyvectl, f"--vm={vm_name}", f"--suspend={path}"]


def bhyve_restore_argv(argv: list[str], path: str) -> list[str]:
    """bhyve(8) ``-r FILE`` added to the VM's own command line (the identical ``-s``/``-l``
    device list, as the man page requires), before the VM name (the last operand)."""
    if len(argv) < 2:
        raise ValueError("a bhyve command line ends with the VM name")
    return [*argv[:-1], "-r", path, argv[-1]]
