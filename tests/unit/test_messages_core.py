"""Messages that say what happened: the pure helpers behind them (no server needed)."""
from __future__ import annotations

import pytest

from ansible_collections.pgtidy.maintenance.plugins.module_utils._errors import first_line


class Blank(Exception):
    pass


@pytest.mark.parametrize("exc, expected", [
    (Blank(), "Blank"),
    (Blank(""), "Blank"),
    (Blank("   \n  "), "Blank"),
    (ValueError("bad value\nDETAIL: more"), "ValueError: bad value"),
    (OSError(2, "No such file or directory"), "FileNotFoundError: [Errno 2] No such file or directory"),
    (RuntimeError("\n  second line first\nthird"), "RuntimeError: second line first"),
])
def test_first_line_is_safe_on_any_message(exc, expected):
    assert first_line(exc) == expected


def test_error_paths_survive_an_exception_without_a_message():
    """What the health sections do with an error: an empty message used to raise IndexError there."""
    from ansible_collections.pgtidy.maintenance.plugins.module_utils._health_gaps import error_text
    assert error_text(Blank()) == "Blank"
