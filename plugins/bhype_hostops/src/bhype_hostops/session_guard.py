"""Which host services the requesting admin's own session depends on, and the refusal to stop them.

A request that reached the API over loopback may come through an SSH tunnel or from a CLI in an
SSH login (the CLI says so with ``session_hint``, read from ``SSH_CONNECTION``); stopping
sshd would cut that session. Every request goes through the API's front end, if one is
configured (``[hostops] front_end_services``, e.g. nginx). Stopping one of those needs
``confirm_session_loss``. This is a guard against locking oneself out, not an access control:
the caller is an admin and may confirm.
"""

from __future__ import annotations

import ipaddress

from bhype_core.plugin_api import ValidationErrors
from bhype_hostops.settings import HostopsSettings

SESSIONS = ("ssh", "web", "local")
GUARDED_ACTIONS = ("stop",)


def session_from(client: str, hint: str | None) -> str:
    """Classify a request: ``ssh`` (it may depend on sshd), ``local`` (a CLI on the host's own
    console) or ``web`` (from another machine, straight to the API or its front end)."""
    try:
        loopback = ipaddress.ip_address(client).is_loopback
    except ValueError:
        loopback = client in ("localhost", "")
    if hint == "ssh":
        return "ssh"
    if loopback:
        return "local" if hint == "local" else "ssh"  # a loopback browser may be at the end of `ssh -L`
    return "web"


def depends_on(settings: HostopsSettings, session: str | None) -> set[str]:
    """The services a session of that kind needs (``None``: unknown, so assume SSH)."""
    needed = set(settings.front_end_services)
    if session in (None, "ssh"):
        needed.add("sshd")
    return needed


def check_session(settings: HostopsSettings, name: str, action: str, session: str | None, confirmed: bool) -> None:
    """Refuse ``action`` on ``name`` when the requesting session depends on it and nobody confirmed.

    :raises ValidationErrors: at ``confirm_session_loss``, saying which session would be cut.
    """
    if action not in GUARDED_ACTIONS or confirmed or name not in depends_on(settings, session):
        return
    how = {"ssh": "the SSH connection this request may have come over",
           "web": "the web front end this request came through",
           "local": "the web front end this request came through"}.get(session or "ssh", "your session")
    raise ValidationErrors([("confirm_session_loss",
                             f"stopping {name} would cut {how}; set confirm_session_loss to true to stop it anyway")])
