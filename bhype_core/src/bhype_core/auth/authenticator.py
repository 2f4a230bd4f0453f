"""Who answers the API's identity questions: the privileged daemon, or (development) PAM in-process."""

from __future__ import annotations

import logging
import os
from abc import ABC, abstractmethod

from bhype_core.auth import pam
from bhype_core.auth.identity import AccountStatus, Identity, Role, account_usable, groups_of, role_for
from bhype_core.auth.login import login
from bhype_core.auth.privileged import PrivilegedClient
from bhype_core.auth.settings import AuthSettings

log = logging.getLogger("bhype.auth")


class Authenticator(ABC):
    """The three questions the API asks about a local account. All calls block (PAM, a socket):
    async code runs them in a thread.
    """

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings

    @property
    @abstractmethod
    def name(self) -> str:
        """``daemon`` or ``in-process`` (logs, benchmarks)."""

    @abstractmethod
    def authenticate(self, username: str, password: str) -> Identity:
        """Map the groups to a role and check the password with PAM.

        :raises ~bhype_core.auth.pam.LoginFailed: any failure (an account in no bHype group
            included), after the failure floor.
        :raises ~bhype_core.auth.privileged.PrivilegedUnavailable: the daemon cannot be reached.
        """

    @abstractmethod
    def account_status(self, username: str) -> AccountStatus:
        """The periodic re-check: does the account still exist, unlocked and unexpired?"""

    @abstractmethod
    def groups(self, username: str) -> tuple[str, ...]:
        """The account's groups now; ``KeyError``/``NotFound`` when it no longer exists."""

    def role(self, username: str) -> Role:
        """The role the account's current groups grant (tokens have no "next login" to pick up a
        group change, so their role is refreshed at each re-check).

        :raises ~bhype_core.auth.identity.NotInBhypeGroup: no configured group any more.
        """
        return role_for(self.groups(username), self.settings)


class DaemonAuthenticator(Authenticator):
    """Asks the root daemon over its Unix socket (the production set-up; see docs/identity.md).

    The daemon applies the failure floor itself, so a failed login costs this process only a
    blocked thread, never a PAM call.
    """

    def __init__(self, settings: AuthSettings, client: PrivilegedClient | None = None) -> None:
        super().__init__(settings)
        self.client = client or PrivilegedClient.from_settings(settings)

    @property
    def name(self) -> str:
        return "daemon"

    def authenticate(self, username: str, password: str) -> Identity:
        return self.client.authenticate(username, password)

    def account_status(self, username: str) -> AccountStatus:
        return self.client.account_status(username)

    def groups(self, username: str) -> tuple[str, ...]:
        return self.client.groups(username)


class InProcessAuthenticator(Authenticator):
    """Runs PAM inside the API process. Only for development, where ``bhype serve`` runs as the
    same user (or root) and no daemon is installed; chosen only by ``auth.backend = "in-process"``.

    Unprivileged, PAM can verify only the process's own account (pam_unix reads shadow(5)
    through its setuid helper for the calling user only), and the re-check cannot read the
    shadow file: the account must then satisfy ``pam_acct_mgmt`` alone.
    """

    def __init__(self, settings: AuthSettings, floor: pam.FailureFloor | None = None) -> None:
        super().__init__(settings)
        self.floor = floor
        if os.geteuid() != 0:
            log.warning("auth.backend = in-process without root: only this process's own account can log in")

    @property
    def name(self) -> str:
        return "in-process"

    def authenticate(self, username: str, password: str) -> Identity:
        return login(username, password, self.settings, self.floor)

    def account_status(self, username: str) -> AccountStatus:
        if os.geteuid() == 0:
            return account_usable(username, pam_service=self.settings.pam_service)
        # Unprivileged: shadow(5) is unreadable, so existence plus pam_acct_mgmt must do.
        try:
            groups_of(username)
        except KeyError:
            return AccountStatus(False, "no such user")
        ok, reason = pam.check_account(username, self.settings.pam_service)
        return AccountStatus(ok, reason)

    def groups(self, username: str) -> tuple[str, ...]:
        return groups_of(username)


def make_authenticator(settings: AuthSettings) -> Authenticator:
    """The authenticator ``auth.backend`` names: ``daemon`` (the default on every platform) or
    ``in-process`` (development only; never chosen implicitly)."""
    if settings.backend == "in-process":
        log.warning("auth.backend = in-process: PAM runs inside the API process (development only)")
        return InProcessAuthenticator(settings)
    return DaemonAuthenticator(settings)
