"""A plan streamed into the store while it is made (``PlanWriter``, the engine's sink)
is recorded exactly as the same plan held in memory and given to ``record_plan``:
the same change rows, statuses, summary, tombstones and candidates marked planned.
Every test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from syncd import engine
from syncd.engine import Operation, Plan, PlanContext, Policy
from syncd.store import Store
from syncd.store.rows import REPORT_KINDS
from tests import pg
from tests.test_store_planning import device, rec

db_url = pg.db_url
postgres_url = pg.postgres_url

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
POLICY = Policy.default(
    type_map={"C9300": 3},
    organization_map={"acme": 7},
    orphan_grace_runs=0,
    orphan_grace_seconds=0,
    max_delete_share=1.0,
)


def _world(store: Store) -> None:
    """Creates, adopts, an update, a reject, a collision, an orphan: every kind."""
    records = [rec(f"N{i:04}", device_type="C9300", organization="acme") for i in range(12_000)] + [
        rec("ADOPT", device_type="C9300", organization="acme"),
        rec("BAD", device_type="nonesuch", organization="acme"),
        rec("TWIN", device_type="C9300", organization="acme"),
        rec("TWIN", device_type="C9300", organization="acme", name="other"),
    ]
    store.store_batch("csv", "snapshot", "a.csv", records)
    store.refresh_mirror([device("ADOPT"), device("GONE")], complete=True, now=NOW)


def _plan(store: Store, *, stream: bool) -> tuple[Plan, dict[str, Any], list[tuple[Any, ...]]]:
    run = store.begin_run("test", POLICY.fingerprint(), now=NOW)
    serials = store.candidate_serials(run)
    context = PlanContext(now=NOW, owned_total=store.owned_total(), run_id=str(run))
    catalogue = store.load_catalogue()
    candidates = store.load_candidates(serials)
    if stream:
        with store.plan_writer(run) as writer:
            plan = engine.plan(candidates, POLICY, catalogue, context, sink=writer.add)
            summary = writer.record(plan, now=NOW)
    else:
        plan = engine.plan(candidates, POLICY, catalogue, context)
        summary = store.record_plan(run, plan, now=NOW)
    rows = [
        (c.serial_number, c.operation, dict(c.changes), c.reason, c.sources, c.origins, c.status)
        for c in store.changes(run_id=run, limit=100_000)
    ]
    return plan, summary, sorted(rows)


@pytest.fixture
def stores(db_url: str, tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two empty stores of the same backend."""
    if db_url.startswith("sqlite"):
        with Store.open(db_url) as one, Store.open(f"sqlite:///{tmp_path / 'two.db'}") as two:
            yield one, two
        return
    server = pg.require_server()
    name = server.create_database()
    try:
        with Store.open(db_url) as one, Store.open(server.url(name)) as two:
            yield one, two
    finally:
        server.drop_database(name)


def test_a_streamed_plan_is_recorded_as_the_plan_in_memory(
    stores: tuple[Store, Store],
) -> None:
    held_in_memory, streamed = stores
    for store in stores:
        _world(store)
    plan, summary, rows = _plan(held_in_memory, stream=False)
    plan_s, summary_s, rows_s = _plan(streamed, stream=True)
    assert plan_s.operations == []  # handed to the store, never all held
    assert plan_s.counts == plan.counts
    assert summary_s == summary
    assert rows_s == rows
    assert len(rows) == len(plan.operations) > 12_000
    assert {r[1] for r in rows} >= {"create", "adopt", "reject", "conflict"}
    # both marked their candidates planned: the next run has nothing to look at
    for store in stores:
        run = store.begin_run("test", POLICY.fingerprint(), now=NOW)
        assert store.candidate_serials(run) == []


def test_the_streamed_sql_knows_the_report_kinds() -> None:
    # _COPY_STAGED_OPS spells REPORT_KINDS out in SQL
    assert {"conflict", "reject", "skip"} == REPORT_KINDS


def test_an_empty_streamed_plan_records_a_run_with_nothing_to_do(db_url: str) -> None:
    with Store.open(db_url) as store:
        run = store.begin_run("test", "fp", now=NOW)
        store.candidate_serials(run)
        with store.plan_writer(run) as writer:
            summary = writer.record(Plan(operations=list[Operation]()), now=NOW)
        assert summary["operations"] == {}
        found = store.run(run)
        assert found is not None
        assert found.status == "done"


@pytest.mark.postgres
def test_postgres_plans_a_run_on_the_candidates_it_really_has(postgres_url: str) -> None:
    # Autovacuum sees plan_candidate empty between runs; planned on that, recording a
    # plan of many candidates joined them by nested loops (a minute for 20,000).
    with Store.open(postgres_url) as store:
        store.store_batch("csv", "snapshot", "a.csv", [rec(f"S{i:04}") for i in range(500)])
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE plan_candidate")  # as autovacuum would, empty
        run = store.begin_run("test", "fp", now=NOW)
        assert len(store.candidate_serials(run)) == 500
        with store.engine.connect() as conn:
            estimate = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = 'plan_candidate'"
            ).scalar_one()
        assert estimate >= 500
