"""Safety gates: when a plan must wait for a person's approval instead of running.

A plan is held when it would delete more than ``max_delete_share`` of the devices
syncd owns (a plan deleting no more than ``max_delete_count_without_gate`` passes
regardless, so a small inventory is not held for every single delete), or when a
source returned fewer than ``min_source_ratio`` of its previous run's records (an
emptied CSV or a broken NetBox filter looks exactly like mass decommissioning).
"""

from __future__ import annotations

from syncd.engine.model import PlanContext
from syncd.engine.policy import Policy


def check_gates(policy: Policy, context: PlanContext, deletes: int) -> list[str]:
    """Why the plan must be held (empty: it may run). Reasons are stable text."""
    reasons: list[str] = []
    if deletes > policy.max_delete_count_without_gate:
        owned = context.owned_total
        if owned <= 0:
            reasons.append(
                f"plan deletes {deletes} device(s) but syncd owns none on record "
                f"(owned total {owned})"
            )
        elif deletes > owned * policy.max_delete_share:
            reasons.append(
                f"plan deletes {deletes} of {owned} owned devices ({deletes / owned:.1%}), "
                f"more than max_delete_share {policy.max_delete_share:.1%}"
            )
    if policy.min_source_ratio > 0:
        for source in sorted(context.source_counts):
            before, now = context.source_counts[source]
            if before is None or before <= 0:
                continue
            if now < before * policy.min_source_ratio:
                reasons.append(
                    f"source {source!r} returned {now} records, {before} last run "
                    f"({now / before:.1%}, below min_source_ratio "
                    f"{policy.min_source_ratio:.1%})"
                )
    return reasons
