# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Value helpers the health sections share: timestamps as ISO text, numbers without a needless
decimal part, and the durations a person reads in the summary (sizes: ``_units.human_bytes``)."""

from __future__ import annotations

import datetime


def iso_or_none(value):
    if value is None:
        return None
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    return str(value)


def plain_number(value):
    if value is None:
        return None
    if isinstance(value, int):
        return value
    value = float(value)
    return int(value) if value.is_integer() else value


def human_seconds(value):
    if value is None:
        return "-"
    value = float(value)
    for limit, unit in ((60, "s"), (3600, "min"), (86400, "h")):
        if value < limit:
            return "%.0f %s" % (value / {"s": 1, "min": 60, "h": 3600}[unit], unit)
    return "%.1f d" % (value / 86400)


def qualified_name(table):
    return "%s.%s" % (table["schema"], table["name"])
