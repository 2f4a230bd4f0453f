"""The documentation checks of ``nox -s docs``, run with the suite: every hook is in the plugin
author's guide, and every relative Markdown link and #anchor resolves."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def noxfile():
    """noxfile.py loaded once (loading it registers its sessions with nox)."""
    spec = importlib.util.spec_from_file_location("bhype_noxfile", ROOT / "noxfile.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_hook_is_in_the_plugin_guide():
    assert noxfile().missing_hooks() == []


def test_every_relative_link_resolves():
    checks = noxfile()
    assert checks.broken_links(checks.markdown_files()) == []
