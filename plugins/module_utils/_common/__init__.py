# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Neutral ground every module stands on: connection, lockfile, errors, reports and metrics files, units,
table facts, and what every module's main() shares. Imports nothing else of pgtidy's."""
