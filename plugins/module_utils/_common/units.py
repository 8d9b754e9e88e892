# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Units every part of the collection reads and writes the same way: sizes, durations, and names as SQL shown to
people spells them."""

from __future__ import annotations

import re

from .errors import InvalidRequest

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4,
          "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4,
          "kib": 1024, "mib": 1024 ** 2, "gib": 1024 ** 3, "tib": 1024 ** 4}


def parse_bytes(value, name="size"):
    """'1GiB', '500MB', '1048576' -> bytes. 0 means no limit."""
    if isinstance(value, int):
        number, unit = value, ""
    else:
        text = str(value).strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(digits):]
        try:
            number = float(digits)
        except ValueError:
            raise InvalidRequest("%s must be a size such as '1GiB' or '500MB', not %r" % (name, value))
    if unit not in _UNITS:
        raise InvalidRequest("%s has an unknown unit %r (use B, kB, MB, GB, KiB, MiB, GiB)" % (name, unit))
    result = int(number * _UNITS[unit])
    if result < 0:
        raise InvalidRequest("%s must not be negative" % name)
    return result


# One grammar for every duration given as text. What a bare number is depends on the option: the caller says.
_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|min|h|d)?$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
DURATION_FORMS = "a number and a unit (ms, s, min, h or d; decimals allowed) such as '500ms', '1.5s', '2min' or '1d'"


def parse_duration(value, name="duration", bare=None):
    """'500ms', '1.5s', '2min', '1d' -> seconds (float). ``bare``: the unit of a number without one ('ms' for a
    PostgreSQL setting); None: a unit is required. Anything else raises InvalidRequest naming ``name`` and the forms."""
    text = repr(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value).strip().lower()
    match = _DURATION.match(text)
    if not match or (match.group(2) is None and bare is None):
        bare_text = "; a number without a unit is in %s" % bare if bare else ""
        raise InvalidRequest("%s must be %s%s; not %r" % (name, DURATION_FORMS, bare_text, value))
    number, unit = match.groups()
    return float(number) * _DURATION_UNITS[unit or bare]


def human_bytes(value, missing="unknown"):
    """Bytes for people, in IEC binary units (powers of 1024, named so): '900.0 MiB', '512 B'; ``missing``
    ('unknown' unless the caller prints a table cell, '-') for None. Every figure a module prints comes from
    here, so a size printed is never read back 2.4 % off: parse_bytes reads 'MB' as 1000 ** 2 and 'MiB' as
    1024 ** 2."""
    if value is None:
        return missing
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= size:
            return "%.1f %s" % (value / size, unit)
    return "%d B" % value


def quoted_name(*names):
    """``"My Schema"."Events"``: a (qualified) name as the executed SQL spells it, for SQL shown to people
    (advice, fixes, findings). Exactly what ``psycopg.sql.Identifier(*names).as_string(conn)`` gives on a
    UTF8 connection (libpq's PQescapeIdentifier: every part in double quotes, a double quote in it doubled),
    without needing a connection, so a mixed-case, dotted or spaced name pasted into psql means the object
    it names."""
    return ".".join('"%s"' % str(name).replace('"', '""') for name in names)
