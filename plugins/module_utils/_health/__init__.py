# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Health facts and Prometheus metrics. Imports ``_common``; its retention preview (``retention.py``) also
imports ``_engine`` and the orchestrators' rules, because the preview must be the prune's own check mode
(the same rules and the same engine), never a second estimate that could disagree with the next run."""
