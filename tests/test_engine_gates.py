"""Safety gates: plans that would delete too much, or follow a source that shrank, wait
for a person."""

from __future__ import annotations

from typing import Any

import pytest

from syncd.engine import Candidate, Policy, check_gates
from tests.test_engine_support import context, mirror, run, tombstone


def _orphans(n: int) -> list[Candidate]:
    return [Candidate(f"SN{i}", [], mirror(f"SN{i}"), tombstone(9, 9)) for i in range(n)]


@pytest.mark.parametrize(
    ("deletes", "owned", "policy", "held"),
    [
        (10, 100, {}, False),  # 10% is the limit, not over it
        (11, 100, {}, True),
        (1, 5, {}, True),  # 20% of a small inventory...
        (1, 5, {"max_delete_count_without_gate": 1}, False),  # ...unless small counts pass
        (2, 5, {"max_delete_count_without_gate": 1}, True),
        (50, 100, {"max_delete_share": 0.5}, False),
        (1, 100, {"max_delete_share": 0.0}, True),
        (0, 0, {}, False),
        (1, 0, {}, True),  # deletes while the store says syncd owns nothing: suspicious
    ],
)
def test_delete_share_gate(deletes: int, owned: int, policy: dict[str, Any], held: bool) -> None:
    result = run(
        *_orphans(deletes),
        policy=Policy.default(orphan_grace_runs=0, orphan_grace_seconds=0, **policy),
        ctx=context(owned_total=owned),
    )
    assert result.counts["delete"] == deletes
    assert result.held is held
    assert bool(result.hold_reasons) is held
    # a held plan still lists every operation: the store records them as held
    assert len(result.operations) == deletes


def test_delete_gate_reason_gives_the_numbers() -> None:
    reasons = check_gates(Policy.default(), context(owned_total=40), deletes=12)
    assert reasons == [
        "plan deletes 12 of 40 owned devices (30.0%), more than max_delete_share 10.0%"
    ]


@pytest.mark.parametrize(
    ("counts", "ratio", "reasons"),
    [
        ({"netbox": (1000, 1000)}, 0.5, []),
        ({"netbox": (1000, 500)}, 0.5, []),  # half is the limit, not under it
        (
            {"netbox": (1000, 499)},
            0.5,
            [
                "source 'netbox' returned 499 records, 1000 last run "
                "(49.9%, below min_source_ratio 50.0%)"
            ],
        ),
        (
            {"netbox": (1000, 0), "csv": (10, 1)},
            0.5,
            [
                "source 'csv' returned 1 records, 10 last run "
                "(10.0%, below min_source_ratio 50.0%)",
                "source 'netbox' returned 0 records, 1000 last run "
                "(0.0%, below min_source_ratio 50.0%)",
            ],
        ),
        ({"netbox": (None, 0)}, 0.5, []),  # first run: nothing to compare with
        ({"netbox": (0, 0)}, 0.5, []),
        ({"netbox": (1000, 1)}, 0.0, []),  # 0 turns the gate off
    ],
)
def test_source_volume_gate(
    counts: dict[str, tuple[int | None, int]], ratio: float, reasons: list[str]
) -> None:
    policy = Policy.default(min_source_ratio=ratio)
    assert check_gates(policy, context(source_counts=counts), deletes=0) == reasons


def test_a_shrunken_source_holds_the_whole_plan_with_its_operations() -> None:
    result = run(
        *_orphans(1),
        policy=Policy.default(orphan_grace_runs=0, orphan_grace_seconds=0),
        ctx=context(source_counts={"netbox": (200, 20)}),
    )
    assert result.held
    assert result.hold_reasons == [
        "source 'netbox' returned 20 records, 200 last run (10.0%, below min_source_ratio 50.0%)"
    ]
    assert [op.kind for op in result.operations] == ["delete"]


def test_both_gates_can_hold_at_once() -> None:
    reasons = check_gates(
        Policy.default(),
        context(owned_total=10, source_counts={"csv": (10, 2)}),
        deletes=8,
    )
    assert len(reasons) == 2
