"""The base of every settings section (core and plugins): one validated TOML table.

Its own module so that a section declared beside the code it configures (``[auth]`` in
:mod:`bhype_core.auth.settings`) can be imported by :mod:`bhype_core.config` without an
import cycle (issue 12). :mod:`bhype_core.config` re-exports :class:`Section`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base for every settings section: unknown keys are errors (they are usually typos)."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
