"""Guest images are built in the background from the start of the session, not inside a test.

A fresh machine needs 5-10 minutes (more under load) to build the ZFS test host. Built inside
the first ZFS test's setup, that counted against pytest-timeout's per-test limit (900 s) and a
busy machine's build was killed half-way, failing every ZFS test (issue 13's clean-clone run).
So once collection shows which guest fixtures the session will use, each needed image starts
building in a thread of its own while the other tests run; a fixture then only waits for the
rest of its build. Under pytest-xdist every worker does the same, and the cache's lock makes
one of them build while the other waits and reuses (:mod:`bhype_testimages.guest_cache`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from bhype_core.testing.parts import excluded_parts

# What a developer installs when the builders are missing (./dev setup does it).
BUILDERS_HINT = "the test-image builders are not installed (pip install -e testkit/bhype_testimages; ./dev setup does)"
# The kit's guest fixtures and the image each needs: (description, "module.function" in
# bhype_testimages).
TINY = ("tiny test guest", "tiny_image.tiny_guest_image")
ZFS = ("ZFS test host image", "zfs_image.zfs_guest_image")
FIXTURE_IMAGES = {"tiny_guest": TINY, "zfs_host": ZFS, "fresh_zfs_host": ZFS}

_builds: dict[str, Future] = {}
_lock = threading.Lock()


def build(what: str, builder: str) -> object:
    """Build (or find in the cache) an image; returns it, or a one-line problem ``str``."""
    module_name, _, function = builder.rpartition(".")
    try:
        module = importlib.import_module(f"bhype_testimages.{module_name}")
    except ImportError as exc:
        return f"{what} could not be built: {BUILDERS_HINT} ({exc})"
    try:
        return getattr(module, function)()
    except Exception as exc:  # noqa: BLE001 - any build failure becomes one clear message
        return f"{what} could not be built: {exc} (see <kind>/build.log in the guest cache)"


def start(what: str, builder: str, run: Callable[[str, str], object] = build) -> Future:
    """The build of ``builder``, started in a thread of its own unless already started."""
    with _lock:
        future = _builds.get(builder)
        if future is None:
            future = _builds[builder] = Future()

            def work() -> None:
                future.set_result(run(what, builder))

            threading.Thread(target=work, name=f"bhype-build-{builder}", daemon=True).start()
        return future


def result(what: str, builder: str) -> object:
    """Wait for the image (started now if collection did not start it)."""
    return start(what, builder).result()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building every image the collected tests' fixtures need (not for --collect-only,
    nor when the run says ``--without guests``)."""
    if session.config.option.collectonly or "guests" in excluded_parts():
        return
    needed = {FIXTURE_IMAGES[name] for item in session.items for name in getattr(item, "fixturenames", ())
              if name in FIXTURE_IMAGES}  # fmt: skip
    for what, builder in sorted(needed):
        start(what, builder)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Let a build still running finish (its result is cached for the next run): a build
    thread killed at exit would leave its compiler processes behind."""
    with _lock:
        running = [future for future in _builds.values() if not future.done()]
    if running:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("bhype: waiting for a guest image build to finish (cached for the next run)")
        for future in running:
            future.result()
