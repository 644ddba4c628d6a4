"""Full, incremental and targeted pulls against the fake NetBox, through pynetbox."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Item
from connectors.netbox import (
    BLANK_SERIAL,
    CASE_COLLISION,
    JsonFileState,
    MemoryState,
    NetBoxBatch,
    NetBoxConfig,
    NetBoxConnector,
    PullMarks,
)
from connectors.netbox.connector import fingerprint
from syncd.records import DeviceRecord, Reject
from tests.fakenetbox import (
    TOKEN_ENV,
    FakeNetBox,
    SeenRequest,
    connector_options,
    fixture,
    parse_time,
)

DEVICES = "/api/dcim/devices/"
CHANGES = "/api/core/object-changes/"
SECOND_WAVE = frozenset({119, 121, 125, 109, 138, 152, 197})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNetBox]:
    with FakeNetBox() as nb:
        monkeypatch.setenv(TOKEN_ENV, nb.v2_token)
        yield nb


def connect(
    fake: FakeNetBox,
    *,
    state: MemoryState | None = None,
    clock: Callable[[], datetime] | None = None,
    **options: Any,
) -> NetBoxConnector:
    config = NetBoxConfig.model_validate(connector_options(fake, **options))
    return NetBoxConnector("netbox", config, state=state or MemoryState(), clock=clock)


def pull(connector: NetBoxConnector, **kwargs: Any) -> tuple[NetBoxBatch, list[Item]]:
    batches = list(connector.fetch(**kwargs))
    assert len(batches) == 1, "one pull, one batch"
    return batches[0], list(batches[0].items())


def records(items: list[Item]) -> list[DeviceRecord]:
    return [i for i in items if isinstance(i, DeviceRecord)]


def by_serial(items: list[Item]) -> dict[str, list[DeviceRecord]]:
    out: dict[str, list[DeviceRecord]] = {}
    for record in records(items):
        out.setdefault(record.serial_number, []).append(record)
    return out


def device_requests(fake: FakeNetBox) -> list[SeenRequest]:
    return fake.requests_to(DEVICES)


# -- full pull -----------------------------------------------------------------------------


def test_full_pull_of_the_recorded_netbox(fake: FakeNetBox) -> None:
    connector = connect(fake)
    batch, items = pull(connector)
    assert (batch.kind, batch.mode) == ("full", "snapshot")
    assert batch.verdict.accepted, batch.verdict
    got = records(items)
    rejects = [i for i in items if isinstance(i, Reject)]
    assert len(got) == 162
    assert len(rejects) == 52
    assert Counter(r.reason for r in rejects) == {BLANK_SERIAL: 52}
    assert (batch.verdict.records, batch.verdict.rejects) == (162, 52)
    assert batch.stats is not None
    assert batch.stats.blank_serials == 52
    assert "52 blank serial" in batch.verdict.reason
    shared = {s: len(rs) for s, rs in by_serial(items).items() if len(rs) > 1}
    assert shared == {"JPE42634115": 3, "S64470637881": 3, "OERZSD4": 2}
    flagged = {r.serial_number for r in got if CASE_COLLISION in dict(r.extra)}
    assert len(flagged) == 12
    assert {"T8JKSZP", "t8jkszp", "FE63J1I", "fe63j1i"} <= flagged
    unwanted = Counter(dict(r.extra)["netbox_status"] for r in got if not r.wanted)
    assert set(unwanted) == {"decommissioning", "offline", "inventory"}


def test_full_pull_pages_by_id_and_pages_all(fake: FakeNetBox) -> None:
    _, items = pull(connect(fake, page_size=100))
    assert len(items) == 214
    pages = device_requests(fake)
    assert [(r.param("limit"), r.offset, r.param("ordering")) for r in pages] == [
        ("100", 0, "id"),
        ("100", 100, "id"),
        ("100", 200, "id"),
    ]
    assert [r.auth for r in fake.requests] == ["Bearer"] * len(fake.requests)


def test_marks_are_saved_only_on_commit(fake: FakeNetBox) -> None:
    state = MemoryState()
    connector = connect(fake, state=state)
    batch, _ = pull(connector)
    assert state.load() == {}
    batch.commit()
    marks = PullMarks.from_dict(state.load())
    assert marks.watermark == parse_time("2026-11-27T07:53:50.782458Z")  # NetBox's clock
    assert marks.last_full_pull is not None


def test_marks_survive_in_the_state_file(fake: FakeNetBox, tmp_path: Path) -> None:
    path = tmp_path / "state" / "netbox.json"
    first = connect(fake, state_file=str(path))
    first.state = JsonFileState(path)
    batch, _ = pull(first)
    assert not path.exists()
    batch.commit()
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert saved["watermark"] == "2026-11-27T07:53:50.782458+00:00"
    config = NetBoxConfig.model_validate(connector_options(fake, state_file=str(path)))
    restarted = NetBoxConnector("netbox", config)  # a new process: state from the file
    assert pull(restarted)[0].kind == "incremental"


def test_an_unreadable_state_file_means_a_full_pull(fake: FakeNetBox, tmp_path: Path) -> None:
    path = tmp_path / "netbox.json"
    path.write_text("{not json", encoding="utf-8")
    config = NetBoxConfig.model_validate(connector_options(fake, state_file=str(path)))
    batch, _ = pull(NetBoxConnector("netbox", config))
    assert (batch.kind, batch.why) == ("full", "no watermark yet")
    assert (tmp_path / "netbox.json.corrupt").read_text(encoding="utf-8") == "{not json"


def test_filters_reach_netbox(fake: FakeNetBox) -> None:
    filters = {
        "site": "dm-nyc",
        "status": ["active", "planned"],
        "cf_warranty_expires": "2029-12-21",
    }
    _, items = pull(connect(fake, filters=filters))
    for seen in device_requests(fake):
        assert seen.params("site") == ["dm-nyc"]
        assert seen.params("status") == ["active", "planned"]
        assert seen.params("cf_warranty_expires") == ["2029-12-21"]
    expected = [
        d["id"]
        for d in fake.devices
        if d["site"]["slug"] == "dm-nyc"
        and d["status"]["value"] in ("active", "planned")
        and d["custom_fields"]["warranty_expires"] == "2029-12-21"
    ]
    assert expected
    assert sorted(int(dict(r.extra)["netbox_id"]) for r in records(items)) == sorted(
        i for i in expected if fake.device(i)["serial"]
    )


def test_tenant_role_and_tag_filters_reach_netbox(fake: FakeNetBox) -> None:
    _, items = pull(connect(fake, filters={"tenant": "dunder-mifflin", "tag": "decom-candidate"}))
    got = {int(dict(r.extra)["netbox_id"]) for r in records(items)}
    assert 107 in got
    assert all(r.organization == "Dunder-Mifflin, Inc." for r in records(items))
    assert device_requests(fake)[0].params("tag") == ["decom-candidate"]


def test_threaded_paging_reads_the_same_devices(fake: FakeNetBox) -> None:
    _, plain = pull(connect(fake, page_size=30))
    fake.clear_log()
    _, threaded = pull(connect(fake, page_size=30, threading=True, max_workers=4))
    assert sorted(map(str, threaded)) == sorted(map(str, plain))
    assert sorted(r.offset for r in device_requests(fake)) == list(range(0, 214, 30))


def test_a_netbox_page_cap_below_page_size_skips_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeNetBox(max_page_size=50) as small:
        monkeypatch.setenv(TOKEN_ENV, small.v2_token)
        _, items = pull(connect(small, page_size=200))
        assert len(items) == 214
        assert [r.offset for r in device_requests(small)] == [0, 50, 100, 150, 200]


def test_a_list_that_changes_while_paged_is_not_used(fake: FakeNetBox) -> None:
    state = MemoryState()
    connector = connect(fake, state=state, page_size=50)
    fake.on_request(lambda: fake.delete_device(1), path=DEVICES, offset=100)
    batch, _ = pull(connector)
    assert not batch.verdict.accepted
    assert "changed while it was being read" in batch.verdict.reason
    with pytest.raises(RuntimeError, match="cannot be committed"):
        batch.commit()
    batch.fail(batch.verdict.reason)
    assert state.load() == {}
    again, items = pull(connector)
    assert again.verdict.accepted
    assert again.kind == "full"
    assert len(items) == 213


# -- incremental pull ----------------------------------------------------------------------


def test_incremental_after_full_fetches_only_the_changed_devices(fake: FakeNetBox) -> None:
    everything = fake.devices
    first_wave = [d for d in everything if d["id"] not in SECOND_WAVE]
    fake.set_devices(first_wave)
    connector = connect(fake, overlap=0)
    full, _ = pull(connector)
    full.commit()
    boundary = max(first_wave, key=lambda d: d["last_updated"])
    fake.set_devices(everything)  # the second wave arrives
    fake.clear_log()

    batch, items = pull(connector)
    assert (batch.kind, batch.mode) == ("incremental", "delta")
    assert batch.verdict.accepted, batch.verdict
    changed = device_requests(fake)[0]
    assert changed.params("last_updated__gte") == [boundary["last_updated"]]
    # gte: the device at the watermark comes again; nothing else from before it.
    assert changed.results == len(SECOND_WAVE) + 1
    for seen in device_requests(fake):
        assert {"last_updated__gte", "serial", "id"} & set(seen.query), seen
    assert sum(r.results or 0 for r in device_requests(fake)) < 30  # not 214
    serials = by_serial(items)
    assert {"LATE0000X", "LATE0001X", "LATE0002X", "FE63J1I", "CZJ335V4Y6", "PNLUVSC"} <= set(
        serials
    )
    assert not serials["PNLUVSC"][0].wanted  # went offline
    blank = [i for i in items if isinstance(i, Reject)]
    assert [r.location for r in blank] == ["netbox device 109 (dm-nyc-tor01)"]
    # the case twin of a changed serial travels with it, both flagged
    assert dict(serials["fe63j1i"][0].extra)[CASE_COLLISION] == "FE63J1I"
    assert dict(serials["FE63J1I"][0].extra)[CASE_COLLISION] == "fe63j1i"


def test_incremental_from_the_recorded_second_wave_mark(fake: FakeNetBox) -> None:
    config = NetBoxConfig.model_validate(connector_options(fake, overlap=0))
    marks = PullMarks(
        watermark=parse_time("2026-11-27T07:53:03Z"),
        last_full_pull=datetime.now(UTC),
        fingerprint=fingerprint(config),
    )
    connector = NetBoxConnector("netbox", config, state=MemoryState(marks.to_dict()))
    batch, items = pull(connector)
    assert batch.kind == "incremental"
    changed = device_requests(fake)[0]
    assert changed.params("last_updated__gte") == ["2026-11-27T07:53:03.000000Z"]
    assert changed.results == 7
    recorded = fixture("devices_last_updated_gte_second_wave.json", fake.url)["results"]
    read = {int(dict(r.extra)["netbox_id"]) for r in records(items)}
    assert {d["id"] for d in recorded if d["serial"]} <= read


def test_incremental_asks_from_the_watermark_minus_the_overlap(fake: FakeNetBox) -> None:
    connector = connect(fake)  # default overlap: 5 minutes
    pull(connector)[0].commit()
    fake.clear_log()
    pull(connector)
    asked = device_requests(fake)[0].params("last_updated__gte")
    assert asked == ["2026-11-27T07:48:50.782458Z"]  # 07:53:50.782458 - 5 min


def test_nothing_changed_costs_almost_nothing(fake: FakeNetBox) -> None:
    connector = connect(fake, overlap=0)
    pull(connector)[0].commit()
    fake.clear_log()
    batch, items = pull(connector)
    assert batch.verdict.accepted
    # the one device at the watermark (109, blank serial) and an empty change log
    assert [(r.path, r.results) for r in fake.requests] == [(DEVICES, 1), (CHANGES, 0)]
    assert [type(i) for i in items] == [Reject]


def test_a_deletion_in_the_change_log_becomes_a_delete_record(fake: FakeNetBox) -> None:
    connector = connect(fake, overlap=0)
    pull(connector)[0].commit()
    fake.delete_device(1)  # FOC4315T82M, held by no other device
    fake.clear_log()
    batch, items = pull(connector)
    assert batch.verdict.accepted
    log = fake.requests_to(CHANGES)[0]
    assert log.params("changed_object_type") == ["dcim.device"]
    assert log.params("action") == ["update", "delete"]
    assert log.param("time_after") is None  # the log was empty at the full pull
    deletes = [r for r in records(items) if r.action == "delete"]
    assert [(r.serial_number, r.wanted) for r in deletes] == [("FOC4315T82M", False)]
    assert "device 1 deleted" in deletes[0].origin
    batch.commit()
    deleted_at = fake.change_log[-1]["time"]

    fake.delete_device(2)
    fake.clear_log()
    batch, items = pull(connector)
    assert fake.requests_to(CHANGES)[0].param("time_after") == deleted_at
    deleted = {r.serial_number for r in records(items) if r.action == "delete"}
    assert "FOC5929DW8N" in deleted


def test_deleting_one_of_three_devices_sharing_a_serial_deletes_nothing(fake: FakeNetBox) -> None:
    connector = connect(fake, overlap=0)
    pull(connector)[0].commit()
    fake.delete_device(114)  # one of the three JPE42634115
    _, items = pull(connector)
    shared = by_serial(items)["JPE42634115"]
    # the delta carries the two left, so the store still sees the serial shared
    assert sorted(dict(r.extra)["netbox_id"] for r in shared) == ["139", "243"]
    assert all(r.action == "upsert" for r in shared)


def test_deleting_a_case_twin_clears_the_flag_of_the_other(fake: FakeNetBox) -> None:
    connector = connect(fake, overlap=0)
    pull(connector)[0].commit()
    twin = next(d for d in fake.devices if d["serial"] == "t8jkszp")
    fake.delete_device(twin["id"])
    _, items = pull(connector)
    serials = by_serial(items)
    assert [r.action for r in serials["t8jkszp"]] == ["delete"]
    assert CASE_COLLISION not in dict(serials["T8JKSZP"][0].extra)


def test_an_edited_serial_deletes_the_old_one(fake: FakeNetBox) -> None:
    connector = connect(fake, overlap=0)
    pull(connector)[0].commit()
    fake.update_device(1, serial="FOC4315T82N")
    _, items = pull(connector)
    serials = by_serial(items)
    assert serials["FOC4315T82N"][0].action == "upsert"
    assert serials["FOC4315T82M"][0].action == "delete"
    assert "serial changed from 'FOC4315T82M' to 'FOC4315T82N'" in serials["FOC4315T82M"][0].origin


def test_a_device_leaving_the_filters_is_removed(fake: FakeNetBox) -> None:
    connector = connect(fake, overlap=0, filters={"site": "dm-akron"})
    batch, first = pull(connector)
    assert "FOC4315T82M" in by_serial(first)
    batch.commit()
    other_site = next(d for d in fake.devices if d["site"]["slug"] == "dm-albany")["site"]
    fake.update_device(1, site=other_site)
    _, items = pull(connector)
    gone = by_serial(items)["FOC4315T82M"]
    assert [r.action for r in gone] == ["delete"]
    assert "no longer within the filters" in gone[0].origin


def test_an_unwanted_status_in_a_delta_is_not_wanted(fake: FakeNetBox) -> None:
    connector = connect(fake, overlap=0)
    pull(connector)[0].commit()
    fake.update_device(1, status="decommissioning")
    _, items = pull(connector)
    [router] = by_serial(items)["FOC4315T82M"]
    assert (router.action, router.wanted) == ("upsert", False)


# -- choosing the pull ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_full_pull_comes_back_after_the_interval(fake: FakeNetBox) -> None:
    clock = Clock()
    connector = connect(fake, clock=clock, full_pull_interval=3600, overlap=0)
    kinds = []
    for minutes in (0, 20, 40, 61, 70):
        clock.now = datetime(2026, 11, 28, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        batch, _ = pull(connector)
        batch.commit()
        kinds.append(batch.kind)
    assert kinds == ["full", "incremental", "incremental", "full", "incremental"]


def test_a_full_pull_can_be_forced(fake: FakeNetBox) -> None:
    connector = connect(fake, overlap=0)
    pull(connector)[0].commit()
    assert pull(connector, force_full=True)[0].kind == "full"
    connector.force_full = True
    assert pull(connector)[0].kind == "full"


def test_changed_filters_force_a_full_pull(fake: FakeNetBox) -> None:
    state = MemoryState()
    pull(connect(fake, state=state))[0].commit()
    assert pull(connect(fake, state=state))[0].kind == "incremental"
    batch, _ = pull(connect(fake, state=state, filters={"site": "dm-nyc"}))
    assert (batch.kind, batch.why) == ("full", "filters or mapping changed since the last pull")


def test_incremental_off_means_always_full(fake: FakeNetBox) -> None:
    connector = connect(fake, incremental=False)
    pull(connector)[0].commit()
    assert pull(connector)[0].kind == "full"
    assert fake.requests_to(CHANGES) == []  # the change log is not needed


# -- targeted pull -------------------------------------------------------------------------


def test_targeted_pull_by_id_brings_the_serial_and_its_twins(fake: FakeNetBox) -> None:
    state = MemoryState()
    connector = connect(fake, state=state)
    batch = connector.targeted(device_id=107)
    assert batch.mode == "delta"
    items = list(batch.items())
    serials = by_serial(items)
    assert set(serials) == {"T8JKSZP", "t8jkszp"}
    assert dict(serials["T8JKSZP"][0].extra)[CASE_COLLISION] == "t8jkszp"
    batch.commit()
    assert state.load() == {}  # a targeted pull moves no mark


def test_targeted_pull_by_serial_brings_every_device_with_it(fake: FakeNetBox) -> None:
    items = list(connect(fake).targeted(serial="JPE42634115").items())
    assert len(by_serial(items)["JPE42634115"]) == 3
    assert device_requests(fake)[0].params("serial") == ["JPE42634115"]


def test_targeted_pull_of_a_deleted_serial_is_a_delete_record(fake: FakeNetBox) -> None:
    fake.delete_device(1)
    batch = connect(fake).targeted(serial="FOC4315T82M")
    [gone] = list(batch.items())
    assert isinstance(gone, DeviceRecord)
    assert (gone.serial_number, gone.action, gone.wanted) == ("FOC4315T82M", "delete", False)
    assert batch.verdict.accepted


def test_targeted_pull_of_an_unknown_id_is_empty_and_says_why(fake: FakeNetBox) -> None:
    batch = connect(fake).targeted(device_id=99999)
    assert list(batch.items()) == []
    assert batch.verdict.accepted
    assert "not in NetBox" in batch.verdict.reason


def test_targeted_pull_of_a_blank_serial_device_is_a_reject(fake: FakeNetBox) -> None:
    [reject] = list(connect(fake).targeted(device_id=109).items())
    assert isinstance(reject, Reject)
    assert reject.reason == BLANK_SERIAL


def test_targeted_needs_exactly_one_key(fake: FakeNetBox) -> None:
    connector = connect(fake)
    with pytest.raises(ValueError, match="exactly one"):
        connector.targeted()
    with pytest.raises(ValueError, match="exactly one"):
        connector.targeted(device_id=1, serial="X")
