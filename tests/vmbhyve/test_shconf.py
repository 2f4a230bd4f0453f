"""The vm-bhyve config reader never runs or expands anything (issue 21): quoting and comments
as config.sample describes them, ``$var`` and command substitutions kept literally with a
warning, odd lines skipped with a warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from bhype_core.vmbhyve.shconf import parse_shconf, quote


def test_quoting_forms_and_comments() -> None:
    conf = parse_shconf(
        '# comment\n'
        'a="double"\n'
        "b='single # not a comment'\n"
        'c=bare   # trailing comment\n'
        'd="value" # comment after\n'
        'e="has # hash"\n'
        'f=""\n'
        'a="later wins"\n'
    )
    assert conf.values == {"a": "later wins", "b": "single # not a comment", "c": "bare", "d": "value",
                           "e": "has", "f": ""}
    assert conf.warnings == ["line 6: e: unterminated double quote (kept as written)"]


def test_expansions_stay_literal_and_are_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    conf = parse_shconf(f'a="$HOME/x"\nb="$(touch {marker})"\nc=`touch {marker}`\nd=\'$HOME\'\n')
    assert conf.values["a"] == "$HOME/x"
    assert conf.values["b"] == f"$(touch {marker})"
    assert conf.values["d"] == "$HOME"  # single quotes: literal in sh too, no warning
    assert not marker.exists()
    assert [w.split(":")[1].strip() for w in conf.warnings] == ["a", "b", "c", "c"]  # c: unquoted space + expansion


def test_indented_and_foreign_lines_are_skipped_with_a_warning() -> None:
    conf = parse_shconf('  cpu="4"\nexport cpu=8\nrm -rf /\n1abc="x"\nmemory="1G"\n')
    assert conf.values == {"memory": "1G"}
    assert len(conf.warnings) == 4
    assert "indented line ignored" in conf.warnings[0]


def test_quote_refuses_what_would_not_read_back() -> None:
    assert parse_shconf(f"k={quote('a b,c=d')}\n").values == {"k": "a b,c=d"}
    for bad in ('a"b', "a#b", "$x", "a\nb", "`x`"):
        with pytest.raises(ValueError):
            quote(bad)
