"""``bhype config show``: effective settings, where they came from, and unknown sections."""

from __future__ import annotations

import json
import re
from typing import Any

from bhype_core.config import Settings

SECRET_KEY = re.compile(r"password|secret|token", re.IGNORECASE)
# user:password@ inside a URL (mysql+pymysql://bhype:pw@db/bhype, redis://:pw@host)
URL_PASSWORD = re.compile(r"(://[^/@:]*:)[^/@]*@")
MASK = "***"
BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def mask_secrets(value: Any, key: str = "") -> Any:
    """``value`` with passwords replaced by ``***``: values of keys naming a secret, and the
    password part of URLs. Shown settings end up in terminals, logs and bug reports."""
    if isinstance(value, dict):
        return {k: mask_secrets(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(item, key) for item in value]
    if isinstance(value, str):
        if value and SECRET_KEY.search(key):
            return MASK
        return URL_PASSWORD.sub(rf"\g<1>{MASK}@", value)
    return value


def effective_config(settings: Settings) -> dict[str, Any]:
    """``{"source", "sections", "unknown_sections"}`` with secrets masked."""
    return {
        "source": str(settings.source) if settings.source else None,
        "sections": mask_secrets(settings.to_dict()),
        "unknown_sections": settings.unknown_sections(),
    }


def toml_key(key: str) -> str:
    """A bare TOML key when allowed, else a quoted one."""
    return key if BARE_KEY.fullmatch(key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """A JSON-able value written as TOML: JSON strings, numbers, booleans and arrays are TOML
    already; objects become inline tables (their null members are left out: TOML has no null)."""
    if isinstance(value, dict):
        items = [f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    return json.dumps(value)


def render_toml(config: dict[str, Any]) -> str:
    """The effective configuration as a TOML document with the source as a comment; keys
    without a value (TOML has no null) are shown commented out."""
    lines = [f"# source: {config['source'] or 'none (built-in defaults and environment)'}"]
    if config["unknown_sections"]:
        lines.append(f"# unknown sections (ignored): {', '.join(config['unknown_sections'])}")
    for name, values in config["sections"].items():
        lines += ["", f"[{name}]"]
        for key, value in values.items():
            lines.append(f"# {key} = (unset)" if value is None else f"{toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines)


def show_config(settings: Settings, as_json: bool = False) -> str:
    """The text ``bhype config show [--json]`` prints."""
    config = effective_config(settings)
    return json.dumps(config, indent=2) if as_json else render_toml(config)
