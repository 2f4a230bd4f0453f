"""The ``[webui]`` section: defaults, valid values, errors naming the key."""

from __future__ import annotations

import pytest

from bhype_core.errors import ConfigError
from bhype_webui.settings import BUNDLED_ASSETS


def test_defaults_serve_the_bundled_assets(webui_runtime):
    settings = webui_runtime().settings.section("webui")
    assert settings.title == "bHype" and settings.assets_dir is None
    assert settings.effective_assets_dir == BUNDLED_ASSETS


def test_valid_values(webui_runtime, tmp_path):
    runtime = webui_runtime(title="Lab VMs", assets_dir=str(tmp_path), session_timeout_minutes=15)
    settings = runtime.settings.section("webui")
    assert (settings.title, settings.effective_assets_dir, settings.session_timeout_minutes) == (
        "Lab VMs",
        tmp_path,
        15,
    )


@pytest.mark.parametrize(
    ("values", "key", "why"),
    [
        ({"title": ""}, "webui.title", "at least 1 character"),
        ({"title": "x" * 65}, "webui.title", "at most 64 characters"),
        ({"session_timeout_minutes": 0}, "webui.session_timeout_minutes", "greater than or equal to 1"),
        ({"assets_dir": 5}, "webui.assets_dir", "path"),
        ({"theme": "dark"}, "webui.theme", "Extra inputs are not permitted"),
    ],
)
def test_invalid_values_name_the_key(webui_runtime, values, key, why):
    with pytest.raises(ConfigError) as caught:
        webui_runtime(**values)
    assert f"{key}:" in caught.value.message and why.lower() in caught.value.message.lower()
