"""Safety gates: when a plan must wait for a person's approval instead of running.

A plan is held when it would delete more than ``max_delete_share`` of the devices
syncd owns (a plan deleting no more than ``max_delete_count_without_gate`` passes
regardless, so a small inventory is not held for every single delete), or when a
source returned fewer than ``min_source_ratio`` of its previous run's records (an
emptied CSV or a broken NetBox filter looks exactly like mass decommissioning), or
when the inventory listing holds fewer than ``min_source_ratio`` of the devices syncd
owned when a plan was last let through: a proxy or API answering an empty (or
truncated) list would otherwise make every owned device look deleted by hand, to be
created again, and each create meet a ``409``. A listing missing no more than
``LISTING_SLACK`` owned devices passes regardless: a few devices deleted by hand in a
small inventory are planned (re-created) as usual.
"""

from __future__ import annotations

from syncd.engine.model import PlanContext
from syncd.engine.policy import Policy

#: Owned devices a listing may lack before the listing gate looks at the ratio at all.
LISTING_SLACK = 5


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
        baseline, owned = context.owned_baseline, context.owned_total
        if (
            baseline is not None
            and baseline - owned > LISTING_SLACK
            and owned < baseline * policy.min_source_ratio
        ):
            reasons.append(
                f"the inventory listing holds {owned} of the {baseline} devices syncd owned "
                f"when a plan was last let through ({owned / baseline:.1%}, below "
                f"min_source_ratio {policy.min_source_ratio:.1%}): a truncated listing "
                "looks like mass deletion by hand"
            )
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
