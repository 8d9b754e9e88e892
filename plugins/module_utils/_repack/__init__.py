# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pg_repack where it pays, and a clean skip with the reason where it cannot. Imports ``_common`` only. ``repack.run_repack``
runs it from ``options`` (the Plan), ``catalog`` (what the database says), ``estimate``, ``client`` (pg_repack) and ``report``."""
