# -*- coding: utf-8 -*-
# Copyright: (c) 2026, pgtidy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each tested Airflow release's metadata schema looks like, as far as the rules read or delete it.

One ``Release`` per tested schema revision (``alembic_version``): its tables, the columns a dag run is ordered
and dated by, its run types, and how the rows a dag run owns are found, each through an index of that release.
``rules.py`` and ``runs.py`` read the release of the database at hand (``release_for``) instead of asking the
schema piecemeal.

- Airflow 3 keys a task instance by a uuid ``id``; the rows that hang off it carry ``ti_id``. A run is due at
  ``run_after`` and asset-triggered runs consume ``asset_event`` rows.
- Airflow 2.11 keys a task instance by (dag_id, task_id, run_id, map_index), the key of every row that hangs off
  it. A run is dated by ``execution_date`` only (the scheduler orders, and floors a dataset-triggered run's
  events, by it); ``dataset_*`` tables hold what Airflow 3 calls assets.
"""

from __future__ import annotations

from dataclasses import dataclass

from .options import AIRFLOW_2_REVISION, AIRFLOW_3_REVISION

# How a child row of a task instance is found (``runs.DagRunRetention._delete``):
# "ti_id": the task instance's uuid in ``column``; "ti_key": (dag_id, task_id, run_id, map_index);
# "run_pair": (dag_id, run_id); "run_id": dag_run.id in ``column``; "tih": task_instance_history.task_instance_id
# in ``column``.


@dataclass(frozen=True)
class Release:
    name: str                   # "Airflow 3.3.2"
    revision: str               # alembic_version.version_num of its ``airflow db migrate``
    logical_date: str           # the dag_run column the newest scheduled run is found by
    run_after: str              # the dag_run column a run is due at: grid order, asset event floor
    asset_triggered: str        # dag_run.run_type of a run an asset (dataset) event triggered
    asset_event: str            # the asset (dataset) event table, and its links to runs, schedules and aliases
    asset_link: str
    asset_schedule: str
    asset_alias_link: str
    asset_id: str               # the column naming an event's (and a schedule reference's) asset
    partitions: bool            # asset_event.partition_key and dag_run.partition_key exist
    ti_id: bool                 # task_instance has a uuid ``id``
    ti_children: tuple          # (table, how, column), deleted before the task instances (see above)
    run_children: tuple         # (table, column holding dag_run.id), deleted after them
    unindexed: str = ""         # child links without an index (the rule's note)

    @property
    def run_tables(self):
        """Every table a dag run's rows are deleted from, children first."""
        return (tuple(t for t, _h, _c in self.ti_children) + ("task_instance",)
                + tuple(t for t, _c in self.run_children) + ("dag_run",))

    def table(self, name):
        """The table of this release for a table name of Airflow 3 (``asset_event`` is ``dataset_event`` on 2.11)."""
        return {"asset_event": self.asset_event, "dagrun_asset_event": self.asset_link}.get(name, name)

    def required_columns(self):
        """The tables and columns the rules rely on; a database without them is not of this release."""
        key = ("dag_id", "task_id", "run_id", "map_index", "state", "queued_by_job_id")
        ti = (("id",) if self.ti_id else ()) + key
        run = ("id", "dag_id", "run_id", "state", "run_type", self.logical_date, self.run_after, "end_date")
        return {
            "dag_run": tuple(dict.fromkeys(run)),
            "task_instance": ti,
            "xcom": ("dag_run_id", "dag_id", "task_id", "run_id", "map_index"),
            "log": ("id", "dttm"),
            "job": ("id", "job_type", "state", "latest_heartbeat"),
            "import_error": ("id", "timestamp"),
            self.asset_event: ("id", self.asset_id, "timestamp") + (("partition_key",) if self.partitions else ()),
            self.asset_link: ("dag_run_id", "event_id"),
            self.asset_schedule: (self.asset_id, "dag_id"),
            self.asset_alias_link: ("event_id",),
        }


AIRFLOW_3 = Release(
    name="Airflow 3.3.2", revision=AIRFLOW_3_REVISION, logical_date="logical_date", run_after="run_after",
    asset_triggered="asset_triggered", asset_event="asset_event", asset_link="dagrun_asset_event",
    asset_schedule="dag_schedule_asset_reference", asset_alias_link="asset_alias_asset_event", asset_id="asset_id",
    partitions=True, ti_id=True,
    ti_children=(
        ("task_reschedule", "ti_id", "ti_id"),
        ("task_instance_note", "ti_id", "ti_id"),
        ("hitl_detail", "ti_id", "ti_id"),
        ("hitl_detail_history", "tih", "ti_history_id"),
        ("task_instance_history", "run_pair", None),
        ("xcom", "run_id", "dag_run_id"),
        ("rendered_task_instance_fields", "ti_key", None),
        ("task_map", "ti_key", None),
    ),
    run_children=(
        ("dag_run_note", "dag_run_id"),
        ("dagrun_asset_event", "dag_run_id"),
        ("task_state_store", "dag_run_id"),
        ("deadline", "dagrun_id"),
        ("asset_partition_dag_run", "created_dag_run_id"),
    ),
    unindexed="deadline.dagrun_id and asset_partition_dag_run.created_dag_run_id have no index in Airflow 3.3:"
              " their rows are deleted with one scan of each table per batch")

# Every child of a 2.11 task instance is indexed by the task instance's key (task_instance_history by its
# unique key, task_fail and task_reschedule by their own index of it), and xcom by its primary key's dag_run_id.
AIRFLOW_2 = Release(
    name="Airflow 2.11.2", revision=AIRFLOW_2_REVISION, logical_date="execution_date", run_after="execution_date",
    asset_triggered="dataset_triggered", asset_event="dataset_event", asset_link="dagrun_dataset_event",
    asset_schedule="dag_schedule_dataset_reference", asset_alias_link="dataset_alias_dataset_event",
    asset_id="dataset_id", partitions=False, ti_id=False,
    ti_children=(
        ("task_reschedule", "ti_key", None),
        ("task_instance_note", "ti_key", None),
        ("task_fail", "ti_key", None),
        ("task_instance_history", "ti_key", None),
        ("xcom", "run_id", "dag_run_id"),
        ("rendered_task_instance_fields", "ti_key", None),
        ("task_map", "ti_key", None),
    ),
    run_children=(
        ("dag_run_note", "dag_run_id"),
        ("dagrun_dataset_event", "dag_run_id"),
    ))

RELEASES = (AIRFLOW_3, AIRFLOW_2)
NEWEST = AIRFLOW_3


def described_tables():
    """Every table some release's rules rely on (``release_for`` reads their columns)."""
    return sorted({table for release in RELEASES for table in release.required_columns()})


def release_for(revision, columns):
    """The release of a schema: the one tested at ``revision``; for another revision, the release whose tables and
    columns the schema has (``columns``: table -> set of its columns), so that an untested schema run anyway
    (allow_untested_schema) is read the way its shape says; the newest when none fits (the schema check says what
    is missing)."""
    for release in RELEASES:
        if release.revision == revision:
            return release
    for release in RELEASES:
        if all(set(cols) <= columns.get(table, set()) for table, cols in release.required_columns().items()):
            return release
    return NEWEST
