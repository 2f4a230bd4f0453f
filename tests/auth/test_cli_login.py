"""``bhype login`` / ``bhype logout`` against a real uvicorn server on loopback (real PAM through
the real daemon): the token lands in a 0600 file, works, and is revoked by logout."""

from __future__ import annotations

import io
import json
import stat
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from bhype_core import cli
from bhype_core.auth.pam import GENERIC_FAILURE
from bhype_core.testing.api_server import served_app
from bhype_core.testing.ports import free_port


@pytest.fixture
def served(make_api) -> Iterator[tuple[object, str]]:
    """An app served by uvicorn in a thread of this process; yields ``(api, url)``."""
    api = make_api()
    with served_app(api.app) as url:
        yield api, url


@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    """A configuration file for the CLI and a private XDG config directory for the token."""
    config = tmp_path / "cli.toml"
    config.write_text(f'[core]\ndata_dir = "{tmp_path / "cli-data"}"\n')
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    return config, tmp_path / "xdg" / "bhype" / "credentials.json"


def run_cli(monkeypatch, config, *args: str, stdin: str = "") -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return cli.main(["--config", str(config), *args])


def test_login_stores_a_working_token_0600_and_logout_revokes_it(
    served, cli_env, daemon_world, monkeypatch, capsys
):
    api, url = served
    config, credentials = cli_env
    user = daemon_world.users(groups=[daemon_world.operators])

    status = run_cli(
        monkeypatch,
        config,
        "login",
        "--url",
        url,
        "--user",
        user.name,
        "--password-stdin",
        stdin=user.password + "\n",
    )
    assert status == 0, capsys.readouterr().err
    assert f"logged in to {url} as {user.name}" in capsys.readouterr().out
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert stat.S_IMODE(credentials.parent.stat().st_mode) == 0o700
    stored = json.loads(credentials.read_text())[url]
    assert stored["user"] == user.name

    client = TestClient(api.app)
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {stored['token']}"})
    assert me.json()["method"] == "token" and me.json()["token_id"] == stored["token_id"]
    # The short session used to create the token was logged out again.
    assert [e.action for e in api.audit()][:3] == ["auth.login", "auth.token_created", "auth.logout"]

    assert run_cli(monkeypatch, config, "logout", "--url", url) == 0
    assert "revoked" in capsys.readouterr().out
    assert json.loads(credentials.read_text()) == {}
    gone = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {stored['token']}"})
    assert gone.status_code == 401

    assert run_cli(monkeypatch, config, "logout", "--url", url) == 1
    assert "not logged in" in capsys.readouterr().out


def test_wrong_password_is_one_line_and_stores_nothing(served, cli_env, daemon_world, monkeypatch, capsys):
    _, url = served
    config, credentials = cli_env
    user = daemon_world.users(groups=[daemon_world.operators])
    status = run_cli(
        monkeypatch, config, "login", "--url", url, "--user", user.name, "--password-stdin", stdin="wrong\n"
    )
    assert status == 1
    assert capsys.readouterr().err == f"bhype: error: {GENERIC_FAILURE}\n"
    assert not credentials.exists()


def test_unreachable_server_is_a_clear_error(cli_env, monkeypatch, capsys):
    config, _ = cli_env
    url = f"http://127.0.0.1:{free_port()}"
    assert (
        run_cli(monkeypatch, config, "login", "--url", url, "--user", "x", "--password-stdin", stdin="x\n")
        == 1
    )
    assert capsys.readouterr().err.startswith(f"bhype: error: cannot reach {url}/api/v1/auth/login")
