"""A bHype process that raises events and sends them (run by the tests as its own process, so
its environment, TMPDIR included, is its own): ``python sending_process.py DATA_DIR DATABASE_URL
HOST COUNT``; prints the send results and the temporary directory it used, as JSON."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import bhype_snmp.plugin
from bhype_core.builtins import models
from bhype_core.events import Event
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_snmp.sender import sender_for


def main(data_dir: str, database_url: str, host: str, count: str) -> None:
    plugins = make_plugin_manager(load_entrypoints=False)
    plugins.register_plugin(models, "core_models")
    plugins.register_plugin(bhype_snmp.plugin, "snmp")
    settings = make_settings(Path(data_dir), core={"database_url": database_url}, host={"name": host})
    runtime = build_runtime(settings, plugins)
    for number in range(int(count)):
        runtime.notify(Event(kind="task.failed", message=f"{host} event {number}", severity="error"))
    sender = sender_for(runtime)
    assert sender.flush(60), "the sender did not finish"
    sender.stop()
    runtime.engine.dispose()
    print(json.dumps({"results": [result.to_dict() for result in sender.results], "tempdir": tempfile.gettempdir()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
