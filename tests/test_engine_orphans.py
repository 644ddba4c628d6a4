"""Orphans: devices no source wants any more. Tombstones, grace, and who may be deleted."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from syncd.engine import Candidate, Policy, Tombstone
from tests.test_engine_support import NOW, context, mirror, rec, run, tombstone


def _policy(**kwargs: Any) -> Policy:
    return Policy.default(**{"orphan_grace_runs": 3, "orphan_grace_seconds": 86400, **kwargs})


# (ownership, previous tombstone, policy overrides, expect delete, expected tombstone)
ROWS: list[Any] = [
    ("created", None, {}, False, Tombstone(NOW, 1)),  # first missed run: tombstone starts
    ("created", tombstone(1, 1), {}, False, tombstone(1, 2)),
    ("created", tombstone(2, 2), {}, True, tombstone(2, 3)),  # 3 runs and 2 days: delete
    ("adopted", tombstone(2, 2), {}, True, tombstone(2, 3)),
    ("created", tombstone(0.5, 9), {}, False, tombstone(0.5, 10)),  # enough runs, too soon
    ("created", tombstone(30, 1), {}, False, tombstone(30, 2)),  # long enough, too few runs
    ("created", tombstone(1, 2), {}, True, tombstone(1, 3)),  # exactly the grace: delete
    ("created", None, {"orphan_grace_runs": 0, "orphan_grace_seconds": 0}, True, Tombstone(NOW, 1)),
    ("created", None, {"orphan_grace_runs": 1, "orphan_grace_seconds": 0}, True, Tombstone(NOW, 1)),
    ("created", tombstone(0.1, 1), {"orphan_grace_runs": 0}, False, tombstone(0.1, 2)),
    ("created", tombstone(9, 9), {"delete_orphans": False}, False, tombstone(9, 10)),
]


@pytest.mark.parametrize(
    ("ownership", "previous", "policy", "deletes", "expected"),
    ROWS,
    ids=[f"{r[0]}/{r[1] and (r[1].runs_missing, NOW - r[1].first_missing)}/{r[2]}" for r in ROWS],
)
def test_owned_orphan_grace(
    ownership: str,
    previous: Tombstone | None,
    policy: dict[str, Any],
    deletes: bool,
    expected: Tombstone,
) -> None:
    candidate = Candidate("SN1", [], mirror(ownership=ownership), previous)
    result = run(candidate, policy=_policy(**policy))
    assert result.tombstones == {"SN1": expected}
    if deletes:
        [op] = result.operations
        assert op.kind == "delete"
        # what it removes, as last read: kept in the audit, and what a revert re-creates
        assert {n: (c.before, c.after) for n, c in op.changes.items()} == {
            name: (value, None)
            for name, value in candidate.mirror.values.items()  # type: ignore[union-attr]
        }
        assert result.counts["delete"] == 1
    else:
        assert result.operations == []


def test_the_delete_reason_says_how_long_and_who_said_so() -> None:
    candidate = Candidate(
        "SN1",
        [rec(wanted=False, origin="netbox device 9")],
        mirror(),
        tombstone(3, 5),
    )
    [op] = run(candidate, policy=_policy()).operations
    assert op.reason == (
        "orphan: no source has wanted it for 6 run(s) since 2026-11-24T12:00:00+00:00; "
        "marked unwanted by netbox (ownership: created)"
    )
    assert op.origins == ("netbox device 9",)


@pytest.mark.parametrize(
    "records",
    [
        pytest.param([], id="absent from every source"),
        pytest.param([rec(wanted=False)], id="unwanted (decommissioning)"),
        pytest.param([rec(action="delete")], id="delete row"),
        pytest.param([rec(wanted=False), rec(source="csv", action="delete")], id="both"),
    ],
)
def test_not_wanted_by_any_source_makes_an_orphan(records: list[Any]) -> None:
    result = run(Candidate("SN1", records, mirror(), tombstone(5, 5)), policy=_policy())
    assert [op.kind for op in result.operations] == ["delete"]


def test_one_source_still_wanting_it_keeps_it() -> None:
    records = [rec(wanted=False), rec(source="csv")]
    result = run(Candidate("SN1", records, mirror(), tombstone(5, 5)), policy=_policy())
    assert "delete" not in [op.kind for op in result.operations]
    assert result.tombstones == {"SN1": None}


def test_a_serial_that_comes_back_clears_its_tombstone() -> None:
    result = run(Candidate("SN1", [rec()], mirror(), tombstone(1, 2)), policy=_policy())
    assert result.tombstones == {"SN1": None}
    assert result.operations == []


@pytest.mark.parametrize("records", [[], [rec(wanted=False)]])
def test_unmanaged_devices_are_never_deleted_only_counted(records: list[Any]) -> None:
    result = run(
        Candidate("SN1", records, mirror(ownership="unmanaged"), tombstone(99, 99)),
        policy=_policy(orphan_grace_runs=0, orphan_grace_seconds=0),
    )
    assert result.operations == []
    assert result.tombstones == {"SN1": None}  # no tombstone for what syncd does not own
    assert result.counts["orphans_unmanaged"] == 1


def test_a_device_gone_from_the_inventory_drops_its_tombstone() -> None:
    result = run(Candidate("SN1", [], None, tombstone(1, 1)))
    assert (result.operations, result.tombstones) == ([], {"SN1": None})


def test_nothing_at_all_changes_nothing() -> None:
    result = run(Candidate("SN1", [rec(wanted=False)], None, None))
    assert (result.operations, result.tombstones) == ([], {})


def test_waiting_and_kept_orphans_are_counted() -> None:
    result = run(
        Candidate("SN1", [], mirror("SN1"), None),
        Candidate("SN2", [], mirror("SN2"), tombstone(9, 9)),
        policy=_policy(),
    )
    assert (result.counts["orphans_waiting"], result.counts["delete"]) == (1, 1)
    kept = run(Candidate("SN1", [], mirror("SN1")), policy=_policy(delete_orphans=False))
    assert kept.counts["orphans_kept"] == 1


def test_a_naive_tombstone_time_is_read_as_utc() -> None:
    naive = Tombstone(datetime(2026, 11, 20, 12, 0), 5)  # as SQLite gives it back
    result = run(Candidate("SN1", [], mirror(), naive), policy=_policy())
    assert [op.kind for op in result.operations] == ["delete"]
    assert result.tombstones["SN1"] == Tombstone(NOW - timedelta(days=7), 6)


def test_the_grace_counts_runs_across_plans() -> None:
    policy = _policy(orphan_grace_runs=3, orphan_grace_seconds=3600)
    previous: Tombstone | None = None
    kinds = []
    for hour in range(4):
        ctx = context(now=NOW + timedelta(hours=hour))
        result = run(Candidate("SN1", [], mirror(), previous), policy=policy, ctx=ctx)
        previous = result.tombstones["SN1"]
        kinds.append([op.kind for op in result.operations])
    # run 1 (t=0) starts it; run 3 (t=2h) has 3 runs and 2 hours: delete (and again at run
    # 4 if the first was held or failed)
    assert kinds == [[], [], ["delete"], ["delete"]]


def test_a_delete_records_what_it_removes_detail_only_fields_from_what_syncd_wrote() -> None:
    entry = mirror(
        written={"name": "sw-1", "description": "core switch", "mac_address": "aa:bb:cc:dd:ee:ff"}
    )
    gone = Candidate("SN1", [], entry, Tombstone(NOW - timedelta(days=2), 5))

    result = run(gone, policy=_policy(orphan_grace_runs=0, orphan_grace_seconds=0))

    [op] = result.operations
    removed = {name: change.before for name, change in op.changes.items()}
    assert removed["description"] == "core switch"  # not listed: the value syncd wrote
    assert removed["mac_address"] == "aa:bb:cc:dd:ee:ff"
    assert removed["name"] == entry.values["name"]
    assert {change.after for change in op.changes.values()} == {None}
