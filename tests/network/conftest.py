"""Fixtures of the network tests (helpers live in ``_netkit``)."""

from __future__ import annotations

from _netkit import netns, network_runtime  # noqa: F401  (fixtures)
