"""What the engine makes of a NetBox pull: the issue's "done when", short of the CLI.

A full pull of the recorded NetBox is planned against an empty inventory: every
wanted device with a unique serial is a create, blank serials are counted rejects of
the pull, the three serials NetBox holds on several devices are conflicts. A
deletion read from the change log makes an owned device an orphan, not a delete.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import pytest

from connectors.base import Item
from connectors.netbox import MemoryState, NetBoxConfig, NetBoxConnector
from syncd.engine import (
    Candidate,
    Catalogue,
    MirrorEntry,
    PlanContext,
    Policy,
    SerialRules,
    group_by_serial,
    plan,
)
from syncd.records import DeviceRecord, Reject
from tests.fakenetbox import TOKEN_ENV, FakeNetBox, connector_options

NOW = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
UNWANTED = {"decommissioning", "offline", "inventory"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNetBox]:
    with FakeNetBox() as nb:
        monkeypatch.setenv(TOKEN_ENV, nb.v2_token)
        yield nb


def full_pull(connector: NetBoxConnector) -> list[Item]:
    [batch] = list(connector.fetch())
    items = list(batch.items())
    batch.commit()
    return items


def policy_for(records: Iterable[DeviceRecord], **overrides: object) -> Policy:
    """Maps every NetBox model and tenant name to an inventory id, as an operator's
    ``type_map`` / ``organization_map`` would."""
    listed = list(records)
    types = sorted({str(r.device_type) for r in listed if r.device_type})
    orgs = sorted({str(r.organization) for r in listed if r.organization})
    return Policy.default(
        type_map={name: i + 1 for i, name in enumerate(types)},
        organization_map={name: i + 1 for i, name in enumerate(orgs)},
        **overrides,
    )


def candidates(
    records: Iterable[DeviceRecord], mirror: dict[str, MirrorEntry] | None = None
) -> list[Candidate]:
    groups, empty = group_by_serial(records, SerialRules())
    assert not empty
    mirror = mirror or {}
    serials = sorted(set(groups) | set(mirror))
    return [Candidate(s, groups.get(s, ()), mirror.get(s)) for s in serials]


def test_a_full_pull_plans_creates_skips_blanks_and_reports_shared_serials(
    fake: FakeNetBox,
) -> None:
    items = full_pull(
        NetBoxConnector("netbox", NetBoxConfig.model_validate(connector_options(fake)))
    )
    records = [i for i in items if isinstance(i, DeviceRecord)]
    blanks = [i for i in items if isinstance(i, Reject)]
    assert len(blanks) == 52

    result = plan(candidates(records), policy_for(records), Catalogue(), PlanContext(now=NOW))
    assert not result.held

    # Worked out from the recorded JSON, not from the connector's output.
    devices = fake.devices
    per_serial = Counter(d["serial"] for d in devices if d["serial"])
    spellings: dict[str, set[str]] = {}
    for d in devices:
        if d["serial"]:
            spellings.setdefault(d["serial"].lower(), set()).add(d["serial"])
    case_twins = {s for group in spellings.values() if len(group) > 1 for s in group}
    assert len(case_twins) == 12

    conflicts = {op.serial_number for op in result.of_kind("conflict")}
    assert conflicts == {"JPE42634115", "S64470637881", "OERZSD4"} | case_twins
    creatable = {
        d["serial"]
        for d in devices
        if d["serial"]
        and per_serial[d["serial"]] == 1
        and d["serial"] not in case_twins
        and d["status"]["value"] not in UNWANTED
        and d["tenant"] is not None
    }
    assert {op.serial_number for op in result.of_kind("create")} == creatable
    tenantless = {
        d["serial"]
        for d in devices
        if d["serial"]
        and per_serial[d["serial"]] == 1
        and d["serial"] not in case_twins
        and d["status"]["value"] not in UNWANTED
        and d["tenant"] is None
    }
    assert {op.serial_number for op in result.of_kind("reject")} == tenantless


def test_case_variants_are_conflicts_when_the_policy_folds_case(fake: FakeNetBox) -> None:
    """Folding case in the serial policy also makes case variants one serial, reported
    as a collision (the connector's marks say the same without folding)."""
    items = full_pull(
        NetBoxConnector("netbox", NetBoxConfig.model_validate(connector_options(fake)))
    )
    records = [i for i in items if isinstance(i, DeviceRecord)]
    folding = SerialRules(case="upper")
    groups, _ = group_by_serial(records, folding)
    result = plan(
        [Candidate(s, rs) for s, rs in sorted(groups.items())],
        policy_for(records, serial=folding),
        Catalogue(),
        PlanContext(now=NOW),
    )
    conflicts = {op.serial_number for op in result.of_kind("conflict")}
    assert {"T8JKSZP", "FE63J1I", "CZJ916LNO7", "CZJ627135S", "S94321986231", "CZJ029C597"} <= (
        conflicts
    )


def test_a_deletion_in_netbox_makes_an_orphan_not_a_delete(fake: FakeNetBox) -> None:
    options = connector_options(fake, overlap=0)
    connector = NetBoxConnector("netbox", NetBoxConfig.model_validate(options), state=MemoryState())
    records = [i for i in full_pull(connector) if isinstance(i, DeviceRecord)]
    fake.delete_device(1)
    [batch] = list(connector.fetch())
    delta = [i for i in batch.items() if isinstance(i, DeviceRecord)]
    [gone] = [r for r in delta if r.action == "delete"]
    owned = MirrorEntry(gone.serial_number, {"name": "dmi01-akron-rtr01"}, {}, "created")
    result = plan(
        candidates([gone], {gone.serial_number: owned}),
        policy_for(records),
        Catalogue(),
        PlanContext(now=NOW, owned_total=100),
    )
    assert result.of_kind("delete") == []
    assert result.counts["orphans_waiting"] == 1
    tombstone = result.tombstones[gone.serial_number]
    assert tombstone is not None
    assert tombstone.runs_missing == 1
