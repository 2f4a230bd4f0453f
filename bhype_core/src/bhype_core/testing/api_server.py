"""The API served for real (uvicorn on a free loopback port, in a thread) with an in-process
worker: what CLI tests talk to over HTTP."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from bhype_core.api.app import create_app
from bhype_core.tasks.worker import start_in_process_worker

START_DEADLINE = 20.0


@contextmanager
def served_app(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread of this process; yields its base URL.

    The listening socket is bound here, before uvicorn starts, so no other process can take the
    port between choosing it and listening on it (a port picked free and bound later can be)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + START_DEADLINE
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()


@contextmanager
def served_api(runtime: Any) -> Iterator[tuple[Any, str]]:
    """Serve ``create_app(runtime)`` and run a worker for ``runtime``; yields ``(app, base_url)``
    and stops both (worker first, so running tasks finish) on exit."""
    app = create_app(runtime=runtime)
    with served_app(app) as url:
        worker = start_in_process_worker(runtime)
        try:
            yield app, url
        finally:
            worker.stop(timeout=60)


@contextmanager
def served_cli(
    runtime: Any, directory: Path, monkeypatch: Any, users: Sequence[tuple[str, str]], as_user: str
) -> Iterator[dict[str, Any]]:
    """:func:`served_api` plus what a ``bhype`` CLI run needs to talk to it: ``$BHYPE_URL``, a
    private ``$XDG_CONFIG_HOME``, a config file (``cli.toml`` in ``directory``), an API token per
    ``(name, role)`` in ``users``, and ``$BHYPE_TOKEN`` set to ``as_user``'s.

    Yields ``{"config", "tokens", "runtime", "url", "app"}``.
    """
    from bhype_core.testing.api_auth import token_headers

    # The tokens may name made-up accounts (``alice``) and no auth daemon runs: the periodic
    # re-check of a token's account (tested for real in tests/auth) would end them with "auth
    # service unreachable" once a slow run passed ``account_recheck_interval``. Off here.
    runtime.settings.auth.account_recheck_interval = 10.0 ** 9
    with served_api(runtime) as (app, url):
        config = directory / "cli.toml"
        config.write_text(f'[core]\ndata_dir = "{directory / "cli-data"}"\n')
        monkeypatch.setenv("BHYPE_URL", url)
        monkeypatch.setenv("XDG_CONFIG_HOME", str(directory / "xdg"))
        tokens = {name: token_headers(app, name, role)["Authorization"].removeprefix("Bearer ")
                  for name, role in users}
        monkeypatch.setenv("BHYPE_TOKEN", tokens[as_user])
        yield {"config": config, "tokens": tokens, "runtime": runtime, "url": url, "app": app}
