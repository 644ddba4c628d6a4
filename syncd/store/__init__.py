"""The state store: every table syncd keeps, its migrations, and every query.

Only this package imports SQLModel/SQLAlchemy. SQLite (WAL) is the embedded default,
PostgreSQL (``postgresql+psycopg://``) the scale-out store; both run the same
migrations (``syncd/store/migrations``, applied by ``Store.open`` or ``syncd db
upgrade``).

The tables, by what they hold::

    source_batch, source_record, source_state, reject    what each connector said
    desired                                              per serial: combined source hash
    mirror, catalogue_type, catalogue_organization       what the inventory holds
    tombstone                                            orphans waiting out their grace
    sync_run, plan_candidate, change                     runs, and the outbox/audit log
    store_meta                                           small facts (last policy planned)

A run goes: (recovery: ``claimed_changes`` -> ``take_over`` / ``abandon``; ``open_runs`` ->
``close_interrupted`` / ``close_if_final``) -> ``begin_run`` -> ``settled_candidates``
(``candidate_serials``, less those it settles as unchanged) -> ``load_candidates`` ->
engine -> ``record_plan`` -> (``approve_run``) ->
``pending_changes`` / ``claim_change`` / ``record_write`` / ``complete_change`` ->
``finish_run``.

A serial is planned again when its sources or inventory values change, and also
after a change of it failed in a way worth retrying, was abandoned by a dead
process, or sat in a held plan that was not approved (the next run re-plans it and
supersedes the held change); ``force_replan`` does it on demand. A change the API
refused (``complete_change(..., replan=False)``) is not re-sent until its inputs
change.

The audit log stays bounded: ``prune`` exports final change rows and rejects past
their age or count to gzip'd JSON lines and then deletes them, chunk by chunk, and
drops old idle runs; run summaries stay (``syncd.store.retention``).
"""

from syncd.errors import SchemaOutOfDateError
from syncd.store.access import StoreUnavailableError
from syncd.store.planning import RunStateError
from syncd.store.rows import (
    BatchEntry,
    BatchMode,
    BatchStats,
    ChangeRow,
    ChangeStatus,
    MirrorStats,
    RejectEntry,
    RunRow,
    RunStatus,
    combined_hash,
    values_hash,
)
from syncd.store.staging import StagedBatch
from syncd.store.store import Store, VerdictLike, upgrade_database

__all__ = [
    "BatchEntry",
    "BatchMode",
    "BatchStats",
    "ChangeRow",
    "ChangeStatus",
    "MirrorStats",
    "RejectEntry",
    "RunRow",
    "RunStateError",
    "RunStatus",
    "SchemaOutOfDateError",
    "StagedBatch",
    "Store",
    "StoreUnavailableError",
    "VerdictLike",
    "combined_hash",
    "upgrade_database",
    "values_hash",
]
