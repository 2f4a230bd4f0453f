"""The CLI's side of the API: stored per-user credentials (0600) and small JSON requests."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bhype_core.commands.served_url import local_url, served_url
from bhype_core.errors import BhypeError, ConfigError

CREDENTIALS_FILE = "credentials.json"
URL_ENV = "BHYPE_URL"
TIMEOUT = 30.0


class ApiError(BhypeError):
    """The API answered with an error, or could not be reached (``status`` ``None``).

    ``message`` is the server's own message, ``body`` the decoded error answer (``{"error":
    {"code", "message", ...}}``), so callers can map it to the matching bHype error.
    """

    code = "api_error"
    http_status = 502

    def __init__(self, status: int | None, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body

    @property
    def error_code(self) -> str:
        """The API's error code (``login_failed``, ``not_found``, …), or ``""``."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("code", "")) if isinstance(error, dict) else ""


@dataclass(frozen=True)
class Credentials:
    """A stored API token for one server."""

    url: str
    user: str
    token: str
    token_id: int


def credentials_path(environ: Mapping[str, str] = os.environ) -> Path:
    """``$XDG_CONFIG_HOME/bhype/credentials.json`` (default ``~/.config``), on every platform:
    a token belongs to the person who logged in, not to the host's configuration."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "bhype" / CREDENTIALS_FILE


def default_url(settings: Any, environ: Mapping[str, str] = os.environ) -> str:
    """``$BHYPE_URL``, else the running local ``bhype serve`` (whatever port it was given),
    else the local server from ``[api]`` (a wildcard address means loopback)."""
    if environ.get(URL_ENV):
        return environ[URL_ENV].rstrip("/")
    return served_url(settings) or local_url(settings.api.host, settings.api.port)


def _read_all(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable credentials file: {exc}") from None
    return data if isinstance(data, dict) else {}


def _write_all(path: Path, data: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.unlink(missing_ok=True)
    # Created 0600 from the start (O_EXCL, explicit mode), then renamed: the token is never
    # readable by others, not even for a moment.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_credentials(url: str, path: Path | None = None) -> Credentials | None:
    """The token stored for ``url``, or ``None``."""
    url = url.rstrip("/")
    entry = _read_all(path or credentials_path()).get(url)
    if not isinstance(entry, dict):
        return None
    try:
        return Credentials(
            url=url, user=str(entry["user"]), token=str(entry["token"]), token_id=int(entry["token_id"])
        )
    except (KeyError, TypeError, ValueError):
        return None


def save_credentials(credentials: Credentials, path: Path | None = None) -> Path:
    """Store (or replace) the token for ``credentials.url``; returns the file (mode 0600)."""
    path = path or credentials_path()
    data = _read_all(path)
    data[credentials.url.rstrip("/")] = asdict(credentials)
    _write_all(path, data)
    return path


def forget_credentials(url: str, path: Path | None = None) -> None:
    """Remove the token stored for ``url`` (nothing if there is none)."""
    path = path or credentials_path()
    data = _read_all(path)
    if data.pop(url.rstrip("/"), None) is not None:
        _write_all(path, data)


def request_json(
    opener: urllib.request.OpenerDirector,
    method: str,
    url: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = TIMEOUT,
) -> Any:
    """One JSON request through ``opener``; the decoded answer (``None`` when empty).

    :raises ApiError: an error answer (its status, message and body), or the server cannot be
        reached (status ``None``).
    """
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with opener.open(request, timeout=timeout) as answer:
            payload = answer.read()
    except urllib.error.HTTPError as exc:
        raise _api_error(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError(None, f"cannot reach {url}: {getattr(exc, 'reason', exc)}") from None
    return json.loads(payload) if payload else None


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    try:
        decoded = json.loads(exc.read() or b"{}")
    except ValueError:
        decoded = {}
    error = decoded.get("error") if isinstance(decoded, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return ApiError(exc.code, str(message or f"HTTP {exc.code} {exc.reason}"), decoded)


def bearer(credentials: Credentials) -> dict[str, str]:
    """Headers authenticating a request with the stored token."""
    return {"Authorization": f"Bearer {credentials.token}"}
