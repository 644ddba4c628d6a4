"""Keeping the audit log bounded: ``syncd prune`` and the daemon's ``syncd.prune_audit``.

The policy is the ``[retention]`` section; the work is the store's
(``syncd.store.retention``: export, then delete, chunk by chunk, crash-safe). This
adds what a deployment needs around it: one prune at a time across every process
(a lease lock in the store, extended after each chunk), a stop request honoured
between chunks, and an export folder that cannot be made named as the setting it is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog

from syncd import process
from syncd.config import RetentionSettings
from syncd.errors import ConfigError, Problem
from syncd.locks import LockBusyError
from syncd.service.stop import StopRequest
from syncd.store import Store
from syncd.store.retention import PruneReport, RetentionPolicy

log = structlog.get_logger("syncd.retention")

#: The lock that keeps one prune at a time, and its lease (extended after every chunk).
LOCK = "audit-retention"
LEASE = timedelta(minutes=10)


def policy_of(settings: RetentionSettings) -> RetentionPolicy:
    """The store's policy for the ``[retention]`` section (``0`` turns a limit off)."""

    def days(value: float) -> timedelta | None:
        return timedelta(days=value) if value else None

    return RetentionPolicy(
        changes_max_age=days(settings.changes_max_age_days),
        changes_max_count=settings.changes_max_count or None,
        rejects_max_age=days(settings.rejects_max_age_days),
        rejects_max_count=settings.rejects_max_count or None,
        idle_runs_max_age=(
            timedelta(hours=settings.idle_runs_max_age_hours)
            if settings.idle_runs_max_age_hours
            else None
        ),
        export=settings.export,
        export_dir=settings.export_dir,
        chunk_rows=settings.chunk_rows,
    )


def prune(
    store: Store,
    settings: RetentionSettings,
    *,
    dry_run: bool = False,
    owner: str | None = None,
    stop: StopRequest | None = None,
    now: datetime | None = None,
) -> PruneReport:
    """Prune the audit log as ``settings`` say (``dry_run``: only say what would go).

    Raises ``LockBusyError`` while another process prunes, and ``ConfigError`` naming
    ``retention.export_dir`` when the export folder cannot be made."""
    policy = policy_of(settings)
    if dry_run:
        return store.prune(policy, dry_run=True, now=now)
    if policy.export:
        _make_folder(settings)
    who = owner or str(process.current())
    if not store.acquire_lock(LOCK, who, LEASE):
        holder = store.lock_holder(LOCK)
        raise LockBusyError(LOCK, holder[0] if holder else None)
    try:
        report = store.prune(policy, keep_going=_keep_going(store, who, stop), now=now)
    finally:
        store.release_lock(LOCK, who)
    log.info(
        "retention.pruned",
        changes=report.changes.rows,
        rejects=report.rejects.rows,
        idle_runs=report.idle_runs,
        files=len(report.changes.files) + len(report.rejects.files),
        export_dir=str(report.export_dir) if report.export_dir else None,
        settled=report.settled,
        stopped=report.stopped,
    )
    return report


def _keep_going(store: Store, owner: str, stop: StopRequest | None) -> Callable[[], bool]:
    """Before each chunk: not asked to stop, and still the lock's holder (extended)."""

    def ask() -> bool:
        if stop is not None and stop.requested:
            return False
        return store.acquire_lock(LOCK, owner, LEASE)

    return ask


def _make_folder(settings: RetentionSettings) -> None:
    folder = settings.export_dir
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        problem = Problem(
            "retention.export_dir", f"the export folder {folder} cannot be made: {exc.strerror}"
        )
        raise ConfigError([problem], source="retention") from None
    if not folder.is_dir():
        problem = Problem("retention.export_dir", f"{folder} is not a folder")
        raise ConfigError([problem], source="retention")
