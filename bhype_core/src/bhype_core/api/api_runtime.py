"""The API process's view of the runtime: everything shared, except a runner that refuses."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from bhype_core.errors import BhypeError
from bhype_core.host.runner import Result, Runner

log = logging.getLogger("bhype.api")


class HostCommandRefused(BhypeError):
    """API code tried to run a host command. Host changes are tasks run by the worker, which
    alone holds the privileges (issue 3, "Privilege separation")."""

    code = "host_command_refused"
    http_status = 500


class RefusingRunner(Runner):
    """The runner the API process gets: every :meth:`run` raises :class:`HostCommandRefused`
    before anything starts. Reads, probes and changes alike belong in the worker."""

    @property
    def target(self) -> str:
        return "refused"

    def run(self, argv: Sequence[str], **options: Any) -> Result:  # type: ignore[override]
        program = argv[0] if isinstance(argv, (list, tuple)) and argv else repr(argv)
        log.error("refused a host command in the API process: %r", program)
        raise HostCommandRefused(
            f"the API process does not run host commands (tried {program!r}); submit a task instead"
        )

    def _execute(self, argv: list[str], **options: Any) -> Result:  # type: ignore[override]
        raise HostCommandRefused("the API process does not run host commands")

    def __repr__(self) -> str:
        return "RefusingRunner()"


class ApiRuntime:
    """Wraps the process's :class:`~bhype_core.runtime.Runtime` for API code: every attribute
    (settings, registry, engine, queue, notify, …) is the wrapped runtime's, except
    :attr:`runner`, which refuses.

    ``bhype serve`` on the embedded queue also runs a worker thread in the same process; that
    worker keeps the real runtime and its real runner, while request handlers only ever see
    this wrapper (``app.state.runtime``).
    """

    def __init__(self, base: Any) -> None:
        self.base = base
        self.runner = RefusingRunner()

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found on the wrapper itself: delegate to the runtime.
        return getattr(self.base, name)

    def __repr__(self) -> str:
        return f"ApiRuntime({self.base!r})"


def api_runtime(runtime: Any) -> ApiRuntime:
    """The wrapper for ``runtime`` (an already wrapped one is returned as is)."""
    return runtime if isinstance(runtime, ApiRuntime) else ApiRuntime(runtime)
