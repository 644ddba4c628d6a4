"""The store's tables, declared as SQLModel classes.

The classes declare the schema (the migrations create exactly this, and a test
compares the two); the store's queries use SQLAlchemy Core over
``Class.__table__`` so that bulk paths stay set-based and fast.

Two columns carry the "what changed since the last plan" bookkeeping that makes
candidate selection cheap: ``desired.synced_hash`` (the combined source hash the
serial was last planned from) and ``mirror.synced_values_hash`` (the inventory
values hash it was last planned from). A partial index on each inequality lets the
store find the serials that need planning without scanning the unchanged ones.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from syncd.store.types import BigId, UTCDateTime

metadata = SQLModel.metadata


def _col(type_: Any, *args: Any, nullable: bool = False, **kwargs: Any) -> Any:
    """A column with an explicit SQL type (SQLModel's inferred types differ per backend)."""
    return Field(sa_column=sa.Column(type_, *args, nullable=nullable, **kwargs))


def _pk(type_: Any, **kwargs: Any) -> Any:
    return Field(sa_column=sa.Column(type_, primary_key=True, **kwargs))


class SourceBatch(SQLModel, table=True):
    """One batch a connector delivered (stored or refused), with its counts."""

    __tablename__ = "source_batch"

    id: int | None = _pk(BigId, autoincrement=True)
    connector: str = _col(sa.String())
    origin: str = _col(sa.Text())
    mode: str = _col(sa.String())
    run_id: int | None = _col(BigId, nullable=True)
    received_at: datetime = _col(UTCDateTime())
    records: int = _col(sa.Integer())
    rejects: int = _col(sa.Integer())
    accepted: bool = _col(sa.Boolean())
    reason: str = _col(sa.Text())
    inserted: int = _col(sa.Integer())
    updated: int = _col(sa.Integer())
    removed: int = _col(sa.Integer())
    #: Where the batch's data lies once the source set it down (a CSV file moved to
    #: ``processed/`` or ``failed/``), so a reject's file:line can be followed there.
    stored_at: str | None = _col(sa.Text(), nullable=True)

    __table_args__ = (sa.Index("ix_source_batch_connector", "connector", "id"),)


class SourceRecord(SQLModel, table=True):
    """The current record of one source for one serial (``seq`` > 0: a collision)."""

    __tablename__ = "source_record"

    connector: str = _pk(sa.String())
    serial_number: str = _pk(sa.String())
    seq: int = _pk(sa.Integer(), autoincrement=False)
    origin: str = _col(sa.Text())
    content_hash: str = _col(sa.String())
    payload: dict[str, Any] = _col(sa.JSON())
    wanted: bool = _col(sa.Boolean())
    action: str = _col(sa.String())
    batch_id: int = _col(BigId)
    updated_at: datetime = _col(UTCDateTime())

    __table_args__ = (sa.Index("ix_source_record_serial", "serial_number"),)


class SourceState(SQLModel, table=True):
    """Per connector: snapshot sizes for the volume gate, and its incremental mark.

    ``last_snapshot_count`` is the size of the latest snapshot stored;
    ``previous_snapshot_count`` the size as of the last plan that was released
    (applied without hold, or approved), so a shrink stays visible until a person
    has let it through.
    """

    __tablename__ = "source_state"

    connector: str = _pk(sa.String())
    last_snapshot_count: int | None = _col(sa.Integer(), nullable=True)
    previous_snapshot_count: int | None = _col(sa.Integer(), nullable=True)
    watermark: Any = _col(sa.JSON(), nullable=True)
    last_full_pull_at: datetime | None = _col(UTCDateTime(), nullable=True)
    updated_at: datetime = _col(UTCDateTime())


class RejectRow(SQLModel, table=True):
    """A source row or object that could not be used, and why (audit)."""

    __tablename__ = "reject"

    id: int | None = _pk(BigId, autoincrement=True)
    run_id: int | None = _col(BigId, nullable=True)
    batch_id: int | None = _col(BigId, nullable=True)
    source: str = _col(sa.String())
    location: str = _col(sa.Text())
    reason: str = _col(sa.Text())
    serial_number: str | None = _col(sa.String(), nullable=True)
    created_at: datetime = _col(UTCDateTime())

    __table_args__ = (
        sa.Index("ix_reject_run", "run_id", "id"),
        # retention: the oldest rejects first, without reading the newer ones
        sa.Index("ix_reject_created", "created_at", "id"),
    )


class Desired(SQLModel, table=True):
    """Per serial: the combined hash of every source's rows, and the hash last planned.

    A serial no source lists any more keeps a row (``record_count`` 0, empty hash)
    until it has been planned once, so its removal is noticed.
    """

    __tablename__ = "desired"

    serial_number: str = _pk(sa.String())
    sources_hash: str = _col(sa.String())
    record_count: int = _col(sa.Integer())
    synced_hash: str = _col(sa.String())
    updated_at: datetime = _col(UTCDateTime())

    __table_args__ = (
        sa.Index(
            "ix_desired_unsynced",
            "serial_number",
            sqlite_where=sa.text("sources_hash <> synced_hash"),
            postgresql_where=sa.text("sources_hash <> synced_hash"),
        ),
    )


class Mirror(SQLModel, table=True):
    """Per serial: what the inventory holds (as last read) and what syncd wrote.

    ``values`` are in write form (API field names, ids for type and organization);
    detail-only fields appear only when known. ``written`` holds the last value syncd
    wrote per field. ``present`` is False once a complete listing missed the serial
    (or syncd deleted it); such a row keeps ownership and sync bookkeeping.
    """

    __tablename__ = "mirror"

    serial_number: str = _pk(sa.String())
    values: dict[str, Any] = _col(sa.JSON())
    values_hash: str = _col(sa.String())
    written: dict[str, Any] = _col(sa.JSON())
    ownership: str = _col(sa.String())
    present: bool = _col(sa.Boolean())
    synced_values_hash: str = _col(sa.String())
    first_seen_at: datetime | None = _col(UTCDateTime(), nullable=True)
    last_seen_at: datetime | None = _col(UTCDateTime(), nullable=True)
    updated_at: datetime = _col(UTCDateTime())
    #: The device's ``created_at`` as the API last gave it: a device listed with another
    #: one was deleted and made again by someone, and is no longer syncd's.
    device_created_at: datetime | None = _col(UTCDateTime(), nullable=True)

    __table_args__ = (
        sa.Index(
            "ix_mirror_unsynced",
            "serial_number",
            sqlite_where=sa.text("values_hash <> synced_values_hash"),
            postgresql_where=sa.text("values_hash <> synced_values_hash"),
        ),
        sa.Index(
            "ix_mirror_owned",
            "serial_number",
            sqlite_where=sa.text("ownership <> 'unmanaged' AND present"),
            postgresql_where=sa.text("ownership <> 'unmanaged' AND present"),
        ),
        # What a refresh compares, read whole in serial order (``mirror.ListedKeys``).
        sa.Index(
            "ix_mirror_listed",
            "serial_number",
            "values_hash",
            "device_created_at",
            sqlite_where=sa.text("present"),
            postgresql_where=sa.text("present"),
        ),
    )


class CatalogueType(SQLModel, table=True):
    """A device type id and what the API called it."""

    __tablename__ = "catalogue_type"

    id: int = _pk(sa.Integer(), autoincrement=False)
    name: str | None = _col(sa.String(), nullable=True)
    model: str | None = _col(sa.String(), nullable=True)
    manufacturer: str | None = _col(sa.String(), nullable=True)
    seen_at: datetime = _col(UTCDateTime())


class CatalogueOrganization(SQLModel, table=True):
    """An organization id and what the API called it."""

    __tablename__ = "catalogue_organization"

    id: int = _pk(sa.Integer(), autoincrement=False)
    name: str | None = _col(sa.String(), nullable=True)
    code: str | None = _col(sa.String(), nullable=True)
    seen_at: datetime = _col(UTCDateTime())


class TombstoneRow(SQLModel, table=True):
    """An owned device no source wants: since when, for how many runs."""

    __tablename__ = "tombstone"

    serial_number: str = _pk(sa.String())
    first_missing: datetime = _col(UTCDateTime())
    runs_missing: int = _col(sa.Integer())


class SyncRun(SQLModel, table=True):
    """One planning run and what became of it."""

    __tablename__ = "sync_run"

    id: int | None = _pk(BigId, autoincrement=True)
    trigger: str = _col(sa.String())
    started_at: datetime = _col(UTCDateTime())
    finished_at: datetime | None = _col(UTCDateTime(), nullable=True)
    status: str = _col(sa.String())
    policy_fingerprint: str = _col(sa.String())
    summary: dict[str, Any] = _col(sa.JSON())
    error: str | None = _col(sa.Text(), nullable=True)
    approved_by: str | None = _col(sa.String(), nullable=True)
    approved_at: datetime | None = _col(UTCDateTime(), nullable=True)
    #: The process running it (``syncd.process.ProcessIdentity``), so a run whose process
    #: died can be closed by the next one.
    owner: str | None = _col(sa.String(), nullable=True)
    #: The source it read: a connector's name, ``(all)`` or ``(inventory)``
    #: (``syncd.service.runs.connector_label``); ``None`` for runs of older versions.
    connector: str | None = _col(sa.String(), nullable=True)


class PlanCandidate(SQLModel, table=True):
    """The serials a run is planning, with the hashes they were selected at.

    Transient: written by candidate selection, consumed when the plan is released
    (``record_plan``, or ``approve_run`` for a held plan), so that a batch stored
    while the run plans is never marked as planned. A held run's rows wait for its
    approval and are dropped when it is discarded or a later plan overtakes it.
    """

    __tablename__ = "plan_candidate"

    run_id: int = _pk(BigId, autoincrement=False)
    serial_number: str = _pk(sa.String())
    desired_hash: str | None = _col(sa.String(), nullable=True)
    values_hash: str | None = _col(sa.String(), nullable=True)


class Change(SQLModel, table=True):
    """One planned operation: the outbox the workers drain, and the audit log."""

    __tablename__ = "change"

    id: int | None = _pk(BigId, autoincrement=True)
    run_id: int = _col(BigId, sa.ForeignKey("sync_run.id"))
    serial_number: str = _col(sa.String())
    operation: str = _col(sa.String())
    changes: dict[str, Any] = _col(sa.JSON())
    reason: str = _col(sa.Text())
    sources: list[str] = _col(sa.JSON())
    origins: list[str] = _col(sa.JSON())
    status: str = _col(sa.String())
    attempts: int = _col(sa.Integer())
    response: dict[str, Any] | None = _col(sa.JSON(), nullable=True)
    error: str | None = _col(sa.Text(), nullable=True)
    created_at: datetime = _col(UTCDateTime())
    updated_at: datetime = _col(UTCDateTime())
    applied_at: datetime | None = _col(UTCDateTime(), nullable=True)
    #: The process that claimed it last (``syncd.process.ProcessIdentity``): a claim whose
    #: process is known to be dead is recovered at once, without waiting for its lease.
    claimed_by: str | None = _col(sa.String(), nullable=True)
    #: A ``dispatched`` change's message was sent (or its retry scheduled) and is
    #: expected before this time; after it, the sweeper sends it again.
    lease_until: datetime | None = _col(UTCDateTime(), nullable=True)

    __table_args__ = (
        sa.Index("ix_change_status", "status", "id"),
        sa.Index("ix_change_serial", "serial_number", "id"),
        sa.Index("ix_change_run", "run_id", "id"),
        # "is anything of this run still on its way?", asked after every applied change
        sa.Index("ix_change_run_status", "run_id", "status"),
        # retention (``syncd.store.retention``) walks the oldest changes first; the audit's
        # time-range filters use it too
        sa.Index("ix_change_created", "created_at", "id"),
        # /metrics counts changes by status and operation from this index alone (a scan
        # of the table would read every row's JSON: seconds at millions of rows)
        sa.Index("ix_change_status_operation", "status", "operation"),
    )


class LeaseLock(SQLModel, table=True):
    """A named lock with a lease (one run of a connector at a time, one planner): held by
    ``owner`` until ``expires_at``, after which anyone may take it."""

    __tablename__ = "lease_lock"

    name: str = _pk(sa.String())
    owner: str = _col(sa.String())
    expires_at: datetime = _col(UTCDateTime())


class TriggerRequest(SQLModel, table=True):
    """An on-demand run asked for (CLI, HTTP, webhook): queued until a worker takes it.

    Requests for one connector that wait together are taken together (coalesced);
    ``serials`` ``None`` asks for the whole source, a list for those serials only.
    """

    __tablename__ = "trigger_request"

    id: int | None = _pk(BigId, autoincrement=True)
    connector: str = _col(sa.String())
    serials: list[str] | None = _col(sa.JSON(), nullable=True)
    dry_run: bool = _col(sa.Boolean())
    source: str = _col(sa.String())
    state: str = _col(sa.String())
    requested_at: datetime = _col(UTCDateTime())
    updated_at: datetime = _col(UTCDateTime())
    run_id: int | None = _col(BigId, nullable=True)
    detail: str | None = _col(sa.Text(), nullable=True)

    __table_args__ = (sa.Index("ix_trigger_request_state", "state", "connector", "id"),)


class OpenConflict(SQLModel, table=True):
    """A field of a device that the inventory and the sources disagree on, and that syncd
    leaves alone until a person decides (a hand edit kept, by default); ``field`` ``""``:
    the whole serial (a collision in a source).

    Rewritten for a serial each time a released plan plans it, so it says what the
    latest plan found: a conflict stays listed on every plan until it is resolved
    (``syncd conflicts resolve``), the inventory or the source changes, or the policy
    does. ``inventory_value``/``source_value`` are in write form (ids for type and
    organization).
    """

    __tablename__ = "open_conflict"

    serial_number: str = _pk(sa.String())
    field: str = _pk(sa.String())
    inventory_value: Any = _col(sa.JSON(), nullable=True)
    source_value: Any = _col(sa.JSON(), nullable=True)
    sources: list[str] = _col(sa.JSON())
    origins: list[str] = _col(sa.JSON())
    reason: str = _col(sa.Text())
    run_id: int = _col(BigId)
    change_id: int | None = _col(BigId, nullable=True)
    first_seen_at: datetime = _col(UTCDateTime())
    last_seen_at: datetime = _col(UTCDateTime())


class KeptValue(SQLModel, table=True):
    """A conflict resolved by keeping the inventory's value: while the inventory holds
    ``inventory_value`` and the sources want ``source_value``, the field is settled
    (neither written nor reported). A change of either side ends the decision."""

    __tablename__ = "kept_value"

    serial_number: str = _pk(sa.String())
    field: str = _pk(sa.String())
    inventory_value: Any = _col(sa.JSON(), nullable=True)
    source_value: Any = _col(sa.JSON(), nullable=True)
    decided_by: str = _col(sa.String())
    decided_at: datetime = _col(UTCDateTime())


class StoreMeta(SQLModel, table=True):
    """Small facts the store keeps between runs (the last planned policy fingerprint)."""

    __tablename__ = "store_meta"

    key: str = _pk(sa.String())
    value: Any = _col(sa.JSON(), nullable=True)


class ApiToken(SQLModel, table=True):
    """An API token of ``syncd serve`` (``syncd tokens``): its name and role, never the
    token. ``token_hash`` is the token's HMAC-SHA256 under the server's pepper
    (``syncd.service.access``), so a copy of the database cannot be used to log in."""

    __tablename__ = "api_token"

    id: int | None = _pk(BigId, autoincrement=True)
    name: str = _col(sa.String())
    role: str = _col(sa.String())
    token_hash: str = _col(sa.String())
    created_at: datetime = _col(UTCDateTime())
    last_used_at: datetime | None = _col(UTCDateTime(), nullable=True)
    #: Set once the token is revoked: it is refused from then on, and keeps its name
    #: (the audit log names who did what by it).
    revoked_at: datetime | None = _col(UTCDateTime(), nullable=True)

    __table_args__ = (
        sa.Index("ix_api_token_name", "name", unique=True),
        sa.Index("ix_api_token_hash", "token_hash", unique=True),
    )


class MetricSample(SQLModel, table=True):
    """A counter or histogram sample measured in some process (API requests, rate
    limiter waits), added up here so that ``/metrics`` serves the sum of every process,
    on any machine, across restarts (``syncd.metrics``). ``labels`` is canonical JSON."""

    __tablename__ = "metric_sample"

    name: str = _pk(sa.String())
    labels: str = _pk(sa.String())
    value: float = _col(sa.Float())
    updated_at: datetime = _col(UTCDateTime())


def table(model: type[SQLModel]) -> sa.Table:
    """The Core ``Table`` behind a table class."""
    result = model.__table__  # type: ignore[attr-defined]
    assert isinstance(result, sa.Table)
    return result


SOURCE_BATCH = table(SourceBatch)
SOURCE_RECORD = table(SourceRecord)
SOURCE_STATE = table(SourceState)
REJECT = table(RejectRow)
DESIRED = table(Desired)
MIRROR = table(Mirror)
CATALOGUE_TYPE = table(CatalogueType)
CATALOGUE_ORGANIZATION = table(CatalogueOrganization)
TOMBSTONE = table(TombstoneRow)
SYNC_RUN = table(SyncRun)
PLAN_CANDIDATE = table(PlanCandidate)
CHANGE = table(Change)
STORE_META = table(StoreMeta)
LEASE_LOCK = table(LeaseLock)
TRIGGER_REQUEST = table(TriggerRequest)
OPEN_CONFLICT = table(OpenConflict)
KEPT_VALUE = table(KeptValue)
API_TOKEN = table(ApiToken)
METRIC_SAMPLE = table(MetricSample)
