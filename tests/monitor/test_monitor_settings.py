"""The ``[monitor]`` section: defaults, valid values, errors naming the key."""

from __future__ import annotations

import pytest

from bhype_core.errors import ConfigError


def test_defaults(monitor_runtime):
    settings = monitor_runtime().settings.section("monitor")
    assert (settings.history_retention_days, settings.sample_interval_seconds) == (365, 10)


def test_valid_values(monitor_runtime):
    runtime = monitor_runtime(history_retention_days=400, sample_interval_seconds=15)
    settings = runtime.settings.section("monitor")
    assert (settings.history_retention_days, settings.sample_interval_seconds) == (400, 15)


@pytest.mark.parametrize(
    ("values", "key", "why"),
    [
        ({"history_retention_days": 0}, "monitor.history_retention_days", "greater than or equal to 1"),
        ({"history_retention_days": "forever"}, "monitor.history_retention_days", "valid integer"),
        ({"sample_interval_seconds": 1}, "monitor.sample_interval_seconds", "greater than or equal to 2"),
        ({"retention": 5}, "monitor.retention", "Extra inputs are not permitted"),
    ],
)
def test_invalid_values_name_the_key(monitor_runtime, values, key, why):
    with pytest.raises(ConfigError) as caught:
        monitor_runtime(**values)
    assert f"{key}:" in caught.value.message and why in caught.value.message
