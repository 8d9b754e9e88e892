# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The prune engine: rules and walks, budgets, pacing, the scheduler, the runner that owns the
transactions, and ``run_prune``. Imports ``_common`` only; names no orchestrator."""
