"""``python service_worker.py --config PATH``: a real bHype worker process with every installed
plugin except ``hostops`` (its services and checks), plus :mod:`fake_services` in its place."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fake_services  # noqa: E402

from bhype_core.config import load_settings  # noqa: E402
from bhype_core.plugins import make_plugin_manager  # noqa: E402
from bhype_core.runtime import build_runtime  # noqa: E402
from bhype_core.tasks.worker import configure_logging, run_worker  # noqa: E402


def main() -> None:
    settings = load_settings(Path(sys.argv[2]))
    configure_logging(settings.core.log_level)
    pm = make_plugin_manager(disabled=settings.core.disabled_plugins,
                             plugins=[("test_services", fake_services)])
    run_worker(build_runtime(settings, pm))


if __name__ == "__main__":
    main()
