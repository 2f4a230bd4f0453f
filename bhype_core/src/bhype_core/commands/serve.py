"""``bhype serve``: the API under uvicorn, plus an in-process worker on the embedded queue."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

import uvicorn

from bhype_core.commands import served_url
from bhype_core.errors import BhypeError
from bhype_core.runtime import Runtime

log = logging.getLogger("bhype.serve")


class SchemaOutdated(BhypeError):
    """The production database lacks migrations; ``bhype db upgrade`` must run first."""

    code = "schema_outdated"
    http_status = 503


class GracefulServer(uvicorn.Server):
    """uvicorn's server, stopped gracefully by SIGINT or SIGTERM without re-raising the signal.

    uvicorn re-raises a captured signal once it has shut down, which would kill this process
    before ``bhype serve`` stops its in-process worker; here both signals only ask the server
    to exit (a second SIGINT forces it, as in uvicorn), and the caller finishes cleanly.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def prepare_database(runtime: Runtime) -> None:
    """Migrate the embedded SQLite database; refuse an outdated production database.

    The embedded default has no administrator to run ``bhype db upgrade``, so serving applies
    the migrations itself. A configured database (MariaDB) is upgraded deliberately instead:
    serving on an old schema would fail request by request.

    :raises SchemaOutdated: ``core.database_url`` is set and migrations are pending.
    """
    from bhype_core.db.migrate import pending, upgrade

    if not runtime.settings.core.database_url:
        applied = upgrade(runtime)
        if applied:
            log.info("applied %d database migration(s): %s", len(applied), ", ".join(applied))
        return
    missing = pending(runtime)
    if missing:
        raise SchemaOutdated(
            f"the database lacks {len(missing)} migration(s) ({', '.join(missing)}): "
            "run `bhype db upgrade` first"
        )


def wants_in_process_worker(runtime: Runtime) -> bool:
    """Whether ``serve`` runs the worker itself: on the embedded SQLite queue, unless
    ``queue.in_process_worker`` is off (the ``memory`` queue runs tasks at once, Redis has
    separate ``bhype worker`` processes)."""
    return runtime.settings.queue.in_process_worker and runtime.queue.backend == "sqlite"


def proxy_options(trusted_proxies: list[str]) -> dict[str, object]:
    """uvicorn's proxy settings from ``[api] trusted_proxies``.

    Empty (the default): no reverse proxy is assumed and X-Forwarded-* are never believed, so
    a client cannot pick its own address for the login throttle or claim HTTPS. Otherwise
    uvicorn takes the client address from X-Forwarded-For and the scheme from
    X-Forwarded-Proto, only on connections from those addresses (docs/install-freebsd.md, nginx).
    """
    if not trusted_proxies:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": list(trusted_proxies)}


def serve(runtime: Runtime, host: str | None = None, port: int | None = None) -> int:
    """Serve the API until SIGINT/SIGTERM; returns the exit status.

    :param host: listen address (default ``api.host``).
    :param port: listen port (default ``api.port``).
    """
    from bhype_core.api.app import create_app
    from bhype_core.worker import start_in_process_worker

    settings = runtime.settings
    prepare_database(runtime)
    app = create_app(runtime=runtime)
    host, port = host or settings.api.host, port or settings.api.port
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.core.log_level,
        **proxy_options(settings.api.trusted_proxies),
    )
    server = GracefulServer(config)
    worker = start_in_process_worker(runtime) if wants_in_process_worker(runtime) else None
    served_url.record(settings, host, port)  # the CLI finds this server without --url
    try:
        server.run()
    finally:
        served_url.forget(settings)
        if worker is not None:
            log.info("stopping the in-process worker")
            if not worker.stop():
                log.warning("in-process worker still busy at exit; its running tasks are abandoned")
    return 0 if server.started else 1
