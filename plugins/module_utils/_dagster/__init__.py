# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Dagster's rules for the prune engine: what may go from a Dagster metadata database, and run retention.
Imports ``_common`` and ``_engine``."""
