"""The ``hostops_update`` plugin's hook implementations: the host update workflow."""

from __future__ import annotations
