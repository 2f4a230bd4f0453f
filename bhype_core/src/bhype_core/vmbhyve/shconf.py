"""A safe reader for vm-bhyve's sh-style ``key="value"`` files (never sourced, never run).

vm-bhyve reads its files with ``sysrc -f`` (lib/vm-config ``config::load``), so they hold
plain assignments: ``key=value``, ``key="value"`` or ``key='value'``, one per line, ``#``
comments. vm-bhyve's config.sample says a line with whitespace before the name is ignored and
that ``#`` starts a comment even inside double quotes. This reader follows that and never
expands anything: ``$var``, ``${var}`` and command substitutions are kept literally and
reported as a warning, so a file can never make bHype run or read anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
_EXPANSION_RE = re.compile(r"\$[{(A-Za-z_0-9]|`")


@dataclass
class ShConf:
    """The assignments of one file (later lines win, as in sh) and what was odd about it."""

    values: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def get(self, key: str, default: str = "") -> str:
        """The value of ``key`` (``default`` when absent)."""
        return self.values.get(key, default)


def _unquote(raw: str, line_no: int, warnings: list[str], key: str) -> str:
    text = raw.strip()
    if text.startswith("'"):
        end = text.find("'", 1)
        if end < 0:
            warnings.append(f"line {line_no}: {key}: unterminated single quote (kept as written)")
            return text[1:]
        return text[1:end]  # single quotes: literal, nothing expands in sh either
    if text.startswith('"'):
        # config.sample: '#' starts a comment even within double quotes.
        body = text[1:].split("#", 1)[0]
        end = body.find('"')
        if end < 0:
            warnings.append(f"line {line_no}: {key}: unterminated double quote (kept as written)")
            value = body.rstrip()
        else:
            value = body[:end]
        value = value.replace('\\"', '"')
    else:
        value = text.split("#", 1)[0].strip()
        if " " in value or "\t" in value:
            warnings.append(f"line {line_no}: {key}: unquoted value with spaces (sh would run it as a command); "
                            "kept as written")
    if _EXPANSION_RE.search(value):
        warnings.append(f"line {line_no}: {key}: {value!r} has a shell expansion; kept literally (never expanded)")
    return value


def parse_shconf(text: str) -> ShConf:
    """Parse the assignments in ``text``; other lines are skipped with a warning."""
    conf = ShConf()
    for line_no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            # vm-bhyve ignores indented options (config.sample): so do we, but say so.
            conf.warnings.append(f"line {line_no}: indented line ignored (vm-bhyve ignores it too)")
            continue
        match = KEY_RE.match(line)
        if not match:
            conf.warnings.append(f"line {line_no}: not a key=value assignment, ignored: {line[:60]!r}")
            continue
        key, raw = match.groups()
        conf.values[key] = _unquote(raw, line_no, conf.warnings, key)
    return conf


def quote(value: str) -> str:
    """``value`` as vm-bhyve writes it (``"value"``); refuses what cannot round-trip."""
    if any(c in value for c in '"#\n\\$`'):
        raise ValueError(f"{value!r} cannot be written to a vm-bhyve file (quote, '#', '$', '`' or newline)")
    return f'"{value}"'
