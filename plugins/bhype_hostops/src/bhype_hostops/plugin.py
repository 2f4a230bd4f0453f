"""The ``hostops`` plugin's hook implementations (services, vulnerability and patch checks)."""

from __future__ import annotations
