"""The orchestrator histories of a test session, shared by the Airflow and Prefect fixtures: each release's
history is made once per cluster, the first time a test asks for it, and dropped when the session ends.

Not a fixture of ``pg``'s: a test on another cluster does not take the templates of this one away."""
from __future__ import annotations

import contextlib
import shutil


def drop_history(pg, history):
    """Remove a history's home directory and drop its template database (``home`` and ``template``)."""
    shutil.rmtree(history["home"], ignore_errors=True)
    pg.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % history["template"])


def session_histories():
    """Generator for a session fixture: yields {(cluster, release): history}; at the end drops each history
    (``drop_history``)."""
    made = {}
    try:
        yield made
    finally:
        for (server, dummy), history in made.items():
            with contextlib.suppress(Exception):        # the cluster may be gone already: nothing left to drop
                drop_history(server, history)


def history_for(made, pg, release, make):
    """The history of ``release`` on cluster ``pg``, made with ``make(pg, release)`` the first time."""
    key = (pg, release)
    if key not in made:
        made[key] = make(pg, release)
    return made[key]
