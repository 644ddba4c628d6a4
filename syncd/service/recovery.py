"""Before a run plans: the work of processes that are gone, finished or handed back.

A process can die anywhere (``kill -9``, a crash, a power cut, a second Ctrl-C). It
leaves changes ``applying`` (claimed, maybe sent, never recorded) and its run
``planning`` or ``applying``. ``recover`` finds them through the process identity
each claim and run records (``syncd.process``):

- a claim whose process is **alive** is left alone (another run is applying it);
- a claim whose process is **dead** (same machine: its pid is gone or reused), or
  **unknown** (another machine) and older than the lease, is recovered now:

  - a **create** is read back first, since its POST may have landed: found exactly as
    sent, it was syncd's own create and is recorded so (the device is syncd's, even
    with ``adopt = false``); not found, the change is failed and its serial planned
    again (a new create); found but different, the device is recorded as it is and
    planned by the rules (adopt, or leave it alone with ``adopt = false``);
  - any other operation is failed and its serial planned afresh by this very run
    (never re-sent as it stood: a newer run may have written something else since);

- a run left ``planning`` by a dead process is closed ``interrupted``; a run left
  ``applying`` whose changes are all final is closed ``done`` or ``failed``.

Claims held by live processes, or by unknown ones still within their lease, are
counted and reported, so a run never claims to be complete while they wait.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from syncd.errors import NotFoundError
from syncd.inventory import InventoryClient
from syncd.process import Liveness, liveness
from syncd.service.apply import differing_fields
from syncd.store import ChangeRow, Store

log = structlog.get_logger("syncd.recovery")

#: A claim whose process cannot be judged (another machine) is taken for abandoned
#: after this long: far longer than one call's retry budget (at most 300 s).
CLAIM_LEASE = timedelta(minutes=10)
#: A run left ``planning`` by a process that cannot be judged is closed after this long.
PLANNING_LEASE = timedelta(hours=6)

Judge = Callable[[str | None], Liveness]


@dataclass(slots=True)
class RecoveryReport:
    """What one recovery found and did."""

    creates_found: int = 0
    abandoned: int = 0
    in_progress: int = 0
    closed_runs: list[int] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.creates_found or self.abandoned or self.in_progress or self.closed_runs)

    def summary(self) -> dict[str, Any]:
        """Plain figures for the run's summary (only what is not zero)."""
        out: dict[str, Any] = {}
        if self.creates_found:
            out["recovered_creates"] = self.creates_found
        if self.abandoned:
            out["abandoned_claims"] = self.abandoned
        if self.in_progress:
            out["claims_held_elsewhere"] = self.in_progress
        if self.closed_runs:
            out["closed_runs"] = list(self.closed_runs)
        return out


def recover(
    store: Store,
    client: InventoryClient,
    *,
    owner: str,
    now: datetime,
    judge: Judge = liveness,
    lease: timedelta = CLAIM_LEASE,
) -> RecoveryReport:
    """Recover the claims and runs of processes that are gone (see the module); a claim
    of a process that cannot be judged is recovered once ``lease`` old."""
    report = RecoveryReport()
    for change in store.claimed_changes():
        if change.claimed_by == owner:
            continue  # this process's own claim: it is applying it
        state = judge(change.claimed_by)
        if state == "alive" or (state == "unknown" and now - change.updated_at < lease):
            report.in_progress += 1
            continue
        if change.operation == "create":
            _recover_create(store, client, change, owner=owner, now=now, report=report)
        elif store.abandon(change, owner, now=now):
            report.abandoned += 1
    close_runs(store, owner=owner, now=now, judge=judge, report=report)
    if report.in_progress:
        log.warning(
            "recovery.claims_held_elsewhere",
            count=report.in_progress,
            detail="being applied by another process, or by one on another machine that "
            f"may have stopped (its claims are recovered after {lease})",
        )
    if report.creates_found or report.abandoned or report.closed_runs:
        log.warning("recovery.done", **report.summary())
    return report


def close_runs(
    store: Store,
    *,
    owner: str,
    now: datetime,
    judge: Judge = liveness,
    report: RecoveryReport | None = None,
    exclude: int | None = None,
) -> list[int]:
    """Close the runs whose process is gone: ``interrupted`` if it was still planning,
    ``done``/``failed`` once every change of an ``applying`` run is final."""
    closed: list[int] = []
    for run in store.open_runs():
        if run.id == exclude or run.owner == owner:
            continue
        state = judge(run.owner)
        if state == "alive":
            continue
        if run.status == "planning":
            if state == "unknown" and now - run.started_at < PLANNING_LEASE:
                continue
            why = "the process planning it stopped before its plan was recorded"
            if store.close_interrupted(run.id, why, now=now):
                closed.append(run.id)
        elif store.close_if_final(run.id, "its process stopped; its changes are final", now=now):
            closed.append(run.id)
    if report is not None:
        report.closed_runs.extend(closed)
    return closed


def _recover_create(
    store: Store,
    client: InventoryClient,
    change: ChangeRow,
    *,
    owner: str,
    now: datetime,
    report: RecoveryReport,
) -> None:
    if not store.take_over(change, owner, now=now):
        return  # finished meanwhile, or another process is recovering it
    body = change.body()
    try:
        device = client.get_device(change.serial_number)
    except NotFoundError:
        store.abandon(
            replace(change, claimed_by=owner),
            owner,
            "abandoned: the process applying it stopped before the device was created; "
            "planned again",
            now=now,
        )
        report.abandoned += 1
        return
    except BaseException:
        # Cannot tell now (the API is down, or we are told to stop): the next recovery
        # reads it back again.
        store.give_up(change.id, owner, "abandoned: its outcome is still unknown", now=now)
        raise
    if not differing_fields(body, device):
        store.record_write(
            change.serial_number,
            "create",
            body,
            device,
            change_id=change.id,
            now=now,
            response={
                "status_code": 200,
                "detail": "recovered: the process applying it stopped after the create "
                "landed; found as sent",
            },
        )
        report.creates_found += 1
        return
    store.observe_device(
        device,
        change_id=change.id,
        now=now,
        response={"status_code": 200, "detail": "read back after its process stopped"},
        note="abandoned: the process applying it stopped, and the device exists but differs "
        "from what was sent (created by someone else, or edited since): planned by the rules",
    )
    report.abandoned += 1
