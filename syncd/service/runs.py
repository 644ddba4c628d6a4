"""One reconciliation run, in-process: sources -> store -> mirror -> plan -> outbox -> API.

The CLI (``syncd plan``, ``syncd run --once``, ``syncd approve``), the tests and,
later, the Celery tasks all call these functions; none of them holds logic of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from connectors.base import Connector, build_connector
from syncd import engine
from syncd.config import Settings
from syncd.engine import Candidate, Plan, PlanContext, Policy
from syncd.errors import SyncdError
from syncd.inventory import InventoryClient
from syncd.log import redact
from syncd.service.apply import ApplyReport, Progress, apply_pending
from syncd.service.ingest import IngestReport, ingest
from syncd.service.policy import build_policy
from syncd.store import ChangeRow, MirrorStats, RejectEntry, Store

log = structlog.get_logger("syncd.run")

Clock = Callable[[], datetime]

#: A change claimed longer ago than this was abandoned by a process that died: it goes
#: back to the outbox. Far longer than one call's retry budget.
STALE_CLAIM = timedelta(minutes=10)

#: The most changes one approval checks and releases at once.
HELD_PLAN_LIMIT = 1_000_000


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class RunResult:
    """Everything one run did, for the CLI to show and the tests to check."""

    run_id: int
    status: str
    plan: Plan
    ingest: IngestReport = field(default_factory=IngestReport)
    mirror: MirrorStats | None = None
    applied: ApplyReport | None = None
    dry_run: bool = False
    rejects: list[RejectEntry] = field(default_factory=list)
    listing_problems: list[str] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return self.plan.held

    def summary(self) -> dict[str, Any]:
        """Plain figures (JSON-able)."""
        out: dict[str, Any] = {
            "run": self.run_id,
            "status": self.status,
            "dry_run": self.dry_run,
            "held": self.plan.held,
            "hold_reasons": list(self.plan.hold_reasons),
            "operations": dict(self.plan.counts),
            "records": self.ingest.records,
            "rejects": self.ingest.rejects,
            "refused_batches": [
                {"source": b.connector, "origin": b.origin, "reason": b.reason}
                for b in self.ingest.refused
            ],
        }
        if self.mirror is not None:
            out["inventory_listed"] = self.mirror.listed
        if self.listing_problems:
            out["inventory_listing_problems"] = self.listing_problems[:20]
        if self.applied is not None:
            out["applied"] = self.applied.applied
            out["failed"] = self.applied.failed
        return out


class StoreState:
    """A connector's persistent memory (watermarks), kept in the state store so it moves
    with the data it describes (``ConnectorState``)."""

    def __init__(self, store: Store, connector: str) -> None:
        self._store = store
        self._connector = connector

    def load(self) -> dict[str, Any]:
        saved = self._store.watermark(self._connector)
        return dict(saved) if isinstance(saved, dict) else {}

    def save(self, data: dict[str, Any]) -> None:
        self._store.set_watermark(self._connector, data)


def build_connectors(settings: Settings, store: Store | None = None) -> list[Connector]:
    """Every enabled connector of the config, built through its entry point; with a
    store, connectors that keep state (NetBox's watermark) keep it there."""
    return [
        build_connector(
            c.name,
            c.plugin,
            c.options,
            where=f"connectors[{i}]",
            state=StoreState(store, c.name) if store is not None else None,
        )
        for i, c in enumerate(settings.connectors)
        if c.enabled
    ]


@dataclass(slots=True)
class ApproveResult:
    """What an approval did."""

    released: int
    stale: int = 0
    applied: ApplyReport = field(default_factory=ApplyReport)


def stale_reason(change: ChangeRow, now: Candidate | None) -> str | None:
    """Why a held change no longer fits the inventory and sources as they are now."""
    mirror = now.mirror if now is not None else None
    if change.operation == "create":
        return "the device exists in the inventory now" if mirror is not None else None
    if change.operation == "delete":
        wanted = now is not None and any(r.wanted and r.action == "upsert" for r in now.records)
        return "a source lists the device again" if wanted else None
    if mirror is None:
        return "the device is no longer in the inventory"
    for name, field_change in change.changes.items():
        if not field_change.get("before_known", True) or name not in mirror.values:
            continue
        if mirror.values[name] != field_change.get("before"):
            return f"{name} was changed in the inventory since the plan was held"
    return None


class Runner:
    """Runs the pipeline for one configuration over one store and one API client."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        client: InventoryClient,
        *,
        connectors: Sequence[Connector] | None = None,
        clock: Clock = utcnow,
    ) -> None:
        self.settings = settings
        self.store = store
        self.client = client
        self.policy: Policy = build_policy(settings.policy)
        self.connectors = (
            list(connectors) if connectors is not None else build_connectors(settings, store)
        )
        self.clock = clock
        self.listing_problems: list[str] = []

    def force_full_pulls(self) -> None:
        """Make incremental sources (NetBox) do a full pull on their next fetch."""
        for connector in self.connectors:
            if hasattr(connector, "force_full"):
                connector.force_full = True

    # -- the steps ---------------------------------------------------------------------------

    def ingest(self, run_id: int | None) -> IngestReport:
        """Read every ready batch from every source into the store."""
        return ingest(
            self.store,
            self.connectors,
            serial_rules=self.policy.serial,
            run_id=run_id,
            now=self.clock(),
        )

    def refresh_mirror(self) -> MirrorStats:
        """Read the whole inventory (paged, lazily) into the mirror.

        Devices missing from the listing are marked absent only when the listing was
        complete and consistent (the inventory did not change under the paging, no
        malformed item was skipped); otherwise they stay as last seen, so a shaky
        listing can never make owned devices look gone.
        """
        listing = self.client.list_inventory()
        stats = self.store.refresh_mirror(
            listing, complete=lambda: listing.complete, now=self.clock()
        )
        self.listing_problems = list(listing.problems)
        if listing.problems:
            log.warning("mirror.listing_incomplete", problems=len(listing.problems))
        return stats

    def make_plan(self, run_id: int) -> Plan:
        """Plan the serials whose sources or inventory values changed since last planned."""
        serials = self.store.candidate_serials(run_id)
        context = PlanContext(
            now=self.clock(),
            owned_total=self.store.owned_total(),
            source_counts=self.store.source_counts(),
            run_id=str(run_id),
            owned_baseline=self.store.owned_baseline(),
        )
        return engine.plan(
            self.store.load_candidates(serials),
            self.policy,
            self.store.load_catalogue(),
            context,
        )

    # -- whole runs --------------------------------------------------------------------------

    def run(
        self,
        *,
        dry_run: bool,
        trigger: str = "cli",
        read_sources: bool = True,
        progress: Progress | None = None,
    ) -> RunResult:
        """Ingest, refresh the mirror, plan; then record and apply the plan (unless
        ``dry_run``, which writes nothing to the API and records no change)."""
        if not dry_run:
            self._abandon_stale_claims()
        run_id = self.store.begin_run(trigger, self.policy.fingerprint(), now=self.clock())
        log.info("run.start", run=run_id, dry_run=dry_run, trigger=trigger)
        try:
            report = self.ingest(run_id) if read_sources else IngestReport()
            mirror = self.refresh_mirror()
            plan = self.make_plan(run_id)
        except BaseException as exc:
            self._fail(run_id, exc)
            raise
        result = RunResult(
            rejects=self.store.rejects(run_id=run_id, limit=1000)[::-1],
            listing_problems=self.listing_problems,
            run_id=run_id,
            status="done",
            plan=plan,
            ingest=report,
            mirror=mirror,
            dry_run=dry_run,
        )
        if dry_run:
            self.store.finish_run(run_id, "done", summary=result.summary(), now=self.clock())
            return result
        self.store.record_plan(run_id, plan, now=self.clock())
        if plan.held:
            result.status = "held"
            log.warning("run.held", run=run_id, reasons=plan.hold_reasons)
            self.store.finish_run(run_id, "held", summary=result.summary(), now=self.clock())
            return result
        return self._apply(result, progress)

    def approve(self, run_id: int, by: str, *, progress: Progress | None = None) -> ApproveResult:
        """Release a held run and apply what still holds of it, now.

        The inventory is read first (if that fails, the run stays held and can be
        approved again). A plan can wait for hours: a change whose premise no longer
        holds (the field was edited since, the device now exists, a source lists it
        again) is skipped. Every serial of the run is then planned afresh by the next
        run, so an edit made meanwhile to a field the plan did not touch is still seen.
        """
        self.refresh_mirror()
        released = self.store.approve_run(run_id, by, now=self.clock())
        result = ApproveResult(released=released)
        try:
            result.stale = self._skip_stale(run_id)
            result.applied = self._drain(run_id, progress)
        except BaseException as exc:
            self._fail(run_id, exc)
            raise
        finally:
            self.store.force_replan(
                c.serial_number for c in self.store.changes(run_id=run_id, limit=HELD_PLAN_LIMIT)
            )
        self.store.settle_owned_baseline()
        self.store.finish_run(
            run_id,
            "done" if result.applied.failed == 0 else "failed",
            summary={
                "approved_by": by,
                "applied": result.applied.applied,
                "failed": result.applied.failed,
                "stale": result.stale,
            },
            error="; ".join(result.applied.errors[:5]) or None,
            now=self.clock(),
        )
        return result

    def _skip_stale(self, run_id: int) -> int:
        """Skip (and re-plan) released changes the inventory or sources have overtaken."""
        changes = self.store.pending_changes(run_id=run_id, limit=HELD_PLAN_LIMIT)
        if not changes:
            return 0
        current = {
            c.serial_number: c
            for c in self.store.load_candidates(sorted({c.serial_number for c in changes}))
        }
        stale = 0
        for change in changes:
            reason = stale_reason(change, current.get(change.serial_number))
            if reason is None:
                continue
            if self.store.claim_change(change.id):
                self.store.complete_change(
                    change.id, "skipped", error=f"stale after approval: {reason}", replan=False
                )
                self.store.force_replan([change.serial_number])
                stale += 1
        return stale

    def _apply(self, result: RunResult, progress: Progress | None) -> RunResult:
        run_id = result.run_id
        try:
            result.applied = self._drain(run_id, progress)
        except BaseException as exc:
            self._fail(run_id, exc)
            raise
        self.store.settle_owned_baseline()
        result.status = "done" if result.applied.failed == 0 else "failed"
        self.store.finish_run(
            run_id,
            "done" if result.status == "done" else "failed",
            summary=result.summary(),
            error="; ".join(result.applied.errors[:5]) or None,
            now=self.clock(),
        )
        return result

    def _drain(self, run_id: int, progress: Progress | None) -> ApplyReport:
        """Apply this run's changes, then whatever else waits in the outbox (left by a run
        whose process stopped); the report counts this run's only."""
        report = apply_pending(self.store, self.client, run_id=run_id, progress=progress)
        earlier = apply_pending(self.store, self.client)
        if earlier.applied or earlier.failed:
            log.info("apply.earlier_changes", applied=earlier.applied, failed=earlier.failed)
        return report

    def _abandon_stale_claims(self) -> None:
        abandoned = self.store.abandon_stale(STALE_CLAIM, now=self.clock())
        if abandoned:
            log.warning("apply.abandoned_claims", count=abandoned)

    def _fail(self, run_id: int, exc: BaseException) -> None:
        reason = redact(str(exc) if isinstance(exc, SyncdError) else f"{type(exc).__name__}: {exc}")
        log.error("run.failed", run=run_id, error=reason)
        self.store.finish_run(run_id, "failed", error=reason, now=self.clock())
