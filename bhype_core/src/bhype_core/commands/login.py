"""``bhype login`` / ``bhype logout``: get an API token with a password, store it, revoke it."""

from __future__ import annotations

import argparse
import getpass
import http.cookiejar
import socket
import sys
import urllib.request
from collections.abc import Callable
from typing import TextIO

from bhype_core.commands.api_client import (
    ApiError,
    Credentials,
    bearer,
    default_url,
    forget_credentials,
    load_credentials,
    request_json,
    save_credentials,
)
from bhype_core.errors import ValidationErrors

CSRF_HEADER = "X-CSRF-Token"
DAY = 86400


def read_password(
    password_stdin: bool, stdin: TextIO | None = None, prompt: Callable[[str], str] = getpass.getpass
) -> str:
    """The password: the first line of stdin (``--password-stdin``, for scripts), else a prompt
    that does not echo."""
    if password_stdin:
        line = (stdin or sys.stdin).readline()
        return line[:-1] if line.endswith("\n") else line
    return prompt("Password: ")


def login(
    url: str,
    username: str,
    password: str,
    token_name: str | None = None,
    expires_days: float | None = None,
) -> Credentials:
    """Log in, create a token from that session, log the session out again; returns the token.

    The session lives only for these three requests: what stays on disk is a token that can be
    listed and revoked (``GET``/``DELETE /api/v1/auth/tokens``), not a password or a cookie.
    """
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    session = request_json(
        opener, "POST", f"{url}/api/v1/auth/login", {"username": username, "password": password}
    )
    csrf = {CSRF_HEADER: session["csrf_token"]}
    name = token_name or f"cli {username}@{socket.gethostname()}"[:100]
    body = {"name": name, "expires_in": None if expires_days is None else int(expires_days * DAY)}
    try:
        created = request_json(opener, "POST", f"{url}/api/v1/auth/tokens", body, csrf)
    finally:
        request_json(opener, "POST", f"{url}/api/v1/auth/logout", headers=csrf)
    return Credentials(
        url=url, user=session["user"]["name"], token=created["token"], token_id=int(created["id"])
    )


def logout(url: str) -> Credentials | None:
    """Revoke the stored token for ``url`` on the server and forget it; ``None`` if none was
    stored. A token the server no longer knows (revoked, expired) is forgotten all the same."""
    credentials = load_credentials(url)
    if credentials is None:
        return None
    opener = urllib.request.build_opener()
    try:
        request_json(
            opener, "DELETE", f"{url}/api/v1/auth/tokens/{credentials.token_id}", headers=bearer(credentials)
        )
    except ApiError as exc:
        if exc.status not in (401, 404):
            raise
    forget_credentials(url)
    return credentials


def cmd_login(args: argparse.Namespace) -> int:
    """``bhype login``."""
    if args.expires_in is not None and args.expires_in <= 0:
        raise ValidationErrors([("--expires-in", "must be a positive number of days")])
    url = (args.url or default_url(args.runtime.settings)).rstrip("/")
    username = args.user or getpass.getuser()
    password = read_password(args.password_stdin)
    credentials = login(url, username, password, args.token_name, args.expires_in)
    path = save_credentials(credentials)
    print(f"logged in to {url} as {credentials.user}; API token {credentials.token_id} stored in {path}")
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    """``bhype logout``."""
    url = (args.url or default_url(args.runtime.settings)).rstrip("/")
    credentials = logout(url)
    if credentials is None:
        print(f"not logged in to {url}")
        return 1
    print(f"logged out of {url}: API token {credentials.token_id} revoked")
    return 0


def configure(sub: argparse._SubParsersAction) -> None:
    """Add ``login`` and ``logout`` to the ``bhype`` parser."""
    parser = sub.add_parser("login", help="log in with your local account and store an API token (0600)")
    parser.add_argument("--url", help="server URL (default: $BHYPE_URL or http://<api.host>:<api.port>)")
    parser.add_argument("--user", help="account name (default: your login name)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    parser.add_argument("--token-name", help="name of the token (default: 'cli <user>@<host>')")
    parser.add_argument(
        "--expires-in", type=float, metavar="DAYS", help="token lifetime (default: until logout)"
    )
    parser.set_defaults(handler=cmd_login)

    parser = sub.add_parser("logout", help="revoke and forget the stored API token")
    parser.add_argument("--url", help="server URL (default: $BHYPE_URL or http://<api.host>:<api.port>)")
    parser.set_defaults(handler=cmd_logout)
