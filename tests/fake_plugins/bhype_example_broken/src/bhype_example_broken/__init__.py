"""A plugin whose import fails, like one built against a library the host lacks."""

from __future__ import annotations

raise RuntimeError("libexample.so.3 not found: install the example package")
