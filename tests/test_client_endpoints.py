"""Every endpoint and parameter of the inventory client, against the real sandbox.

What the sandbox received is read back from its request log (paths, query strings)
and, for bodies, from a recording transport under the client (real HTTP all the way).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qs

import pytest

from syncd.errors import NotFoundError
from syncd.inventory import DeviceCreate, DevicePatch, DeviceReplace, InventoryClient
from syncd.sandbox.testing import SandboxProcess
from tests.client_support import RecordingTransport, device, make_client


@pytest.fixture
def wire() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
def client(sandbox: SandboxProcess, wire: RecordingTransport) -> Iterator[InventoryClient]:
    with make_client(sandbox, transport=wire) as client:
        yield client


def _query(sandbox: SandboxProcess) -> dict[str, list[str]]:
    return parse_qs(sandbox.requests()[-1].query, keep_blank_values=True)


# -- list ------------------------------------------------------------------------------------


def test_list_sends_every_filter_as_the_contract_spells_it(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.load(
        [
            device("A1", type=1, status=True, last_status_change="2026-03-01T10:00:00Z"),
            device("A2", type=1, status=True, last_status_change="2026-01-01T00:00:00Z"),
            device("A3", type=2, status=True, last_status_change="2026-03-01T10:00:00Z"),
            device("A4", type=1, status=False, last_status_change="2026-03-01T10:00:00Z"),
            device("A5", type=1, organization=1, status=True),
            device("A6", type=1, status=True, last_status_change="2026-03-01T10:00:00Z"),
        ]
    )
    sandbox.set_state("A6", pending={"configuration_updates": 2})
    # 12:00 at UTC+2 is 10:00 UTC: the filter is inclusive, so A1 and A6 match.
    plus_two = timezone(timedelta(hours=2))
    page = client.list_devices(
        type=1,
        status=True,
        last_status_change_from=datetime(2026, 3, 1, 12, 0, tzinfo=plus_two),
        organization=123,
        pending=True,
        update_status=False,
        limit=30,
        offset=0,
    )
    assert _query(sandbox) == {
        "type": ["1"],
        "status": ["true"],
        "last_status_change_from": ["2026-03-01T10:00:00+00:00"],
        "organization": ["123"],
        "pending": ["true"],
        "update_status": ["false"],
        "limit": ["30"],
        "offset": ["0"],
    }
    assert page.count == 2
    assert [d.serial_number for d in page.results] == ["A1", "A6"]
    assert [d.pending_changes for d in page.results] == [False, True]
    # The list shape: detail-only fields are absent, not empty.
    assert not page.results[0].has_field("description")


def test_list_without_arguments_sends_no_query(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.load([device(f"D{i:02}") for i in range(25)])
    page = client.list_devices()
    assert sandbox.requests()[-1].query == ""
    assert page.count == 25
    assert len(page.results) == 20  # the server's default page


def test_status_false_lists_down_devices(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.load([device("UP", status=True), device("DOWN", status=False)])
    page = client.list_devices(status=False)
    assert _query(sandbox) == {"status": ["false"]}
    assert [d.serial_number for d in page.results] == ["DOWN"]


def test_naive_and_date_filters_are_utc(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.load(
        [
            device("OLD", status=True, last_status_change="2025-12-31T23:59:59Z"),
            device("NEW", status=True, last_status_change="2026-01-01T00:00:00Z"),
        ]
    )
    naive = client.list_devices(last_status_change_from=datetime(2026, 1, 1))
    assert [d.serial_number for d in naive.results] == ["NEW"]
    assert _query(sandbox)["last_status_change_from"] == ["2026-01-01T00:00:00+00:00"]
    by_date = client.list_devices(last_status_change_from=datetime(2026, 1, 1, tzinfo=UTC).date())
    assert [d.serial_number for d in by_date.results] == ["NEW"]
    assert _query(sandbox)["last_status_change_from"] == ["2026-01-01"]


def test_list_with_offset_and_large_limit(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.load([device(f"P{i:03}") for i in range(130)])
    page = client.list_devices(limit=500, offset=10)
    assert _query(sandbox) == {"limit": ["500"], "offset": ["10"]}
    assert len(page.results) == 100  # clamped by the server
    assert page.results[0].serial_number == "P010"


def test_update_status_runs_a_live_check(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.load([device("LIVE", status=False)])
    sandbox.set_state("LIVE", live_status=True)
    page = client.list_devices(update_status=True)
    assert _query(sandbox) == {"update_status": ["true"]}
    assert page.results[0].status is True


# -- iterate ---------------------------------------------------------------------------------


def test_iter_devices_walks_250_devices_exactly_once(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    serials = [f"SN{i:04}" for i in range(250)]
    sandbox.load([device(s) for s in serials])
    walked = [d.serial_number for d in client.iter_devices()]
    assert sorted(walked) == serials
    assert len(walked) == len(set(walked)) == 250
    pages = [parse_qs(r.query) for r in sandbox.requests()]
    # Each page after the first starts at the last row of the one before (the overlap
    # that lets a walk notice rows shifted under it).
    assert [(p["limit"], p["offset"]) for p in pages] == [
        (["100"], ["0"]),
        (["100"], ["99"]),
        (["100"], ["198"]),
    ]


def test_iter_devices_is_lazy_and_filters(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.load([device(f"O{i:03}", organization=123 if i % 3 else 1) for i in range(90)])
    walker = client.iter_devices(organization=1, page_size=25)
    assert sandbox.requests() == []  # nothing fetched until asked
    walked = list(walker)
    assert len(walked) == 30
    assert {d.organization.id for d in walked} == {1}
    queries = [parse_qs(r.query) for r in sandbox.requests()]
    assert [q["offset"] for q in queries] == [["0"], ["24"]]
    assert all(q["organization"] == ["1"] and q["limit"] == ["25"] for q in queries)


def test_iter_devices_over_an_empty_inventory(client: InventoryClient) -> None:
    assert list(client.iter_devices()) == []


# -- detail ----------------------------------------------------------------------------------


def test_get_device_returns_the_detail_shape(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.load(
        [
            device(
                "DET1",
                description="core router",
                mac_address="00:11:22:33:44:55",
                firmware_version="17.3",
                ip_address="10.0.0.1",
            )
        ]
    )
    found = client.get_device("DET1")
    assert sandbox.requests()[-1].path == "/api/v1/inventory_device_serial/DET1/"
    assert sandbox.requests()[-1].query == ""
    assert found.description == "core router"
    assert found.mac_address == "00:11:22:33:44:55"
    assert found.type.manufacturer == "Cisco"
    assert found.organization.code == "ACME-IT"
    assert found.pending_details is None


def test_get_device_with_pending_and_update_status(
    sandbox: SandboxProcess, client: InventoryClient
) -> None:
    sandbox.load([device("PEND", status=False)])
    sandbox.set_state(
        "PEND", live_status=True, pending={"configuration_updates": 3, "firmware_update": True}
    )
    found = client.get_device("PEND", pending=True, update_status=True)
    assert _query(sandbox) == {"pending": ["true"], "update_status": ["true"]}
    assert found.pending_details is not None
    assert found.pending_details.configuration_updates == 3
    assert found.pending_details.firmware_update is True
    assert found.status is True


def test_serials_are_case_sensitive(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.load([device("T8JKSZP", name="upper"), device("t8jkszp", name="lower")])
    assert client.get_device("T8JKSZP").name == "upper"
    assert client.get_device("t8jkszp").name == "lower"
    with pytest.raises(NotFoundError):
        client.get_device("T8jkszp")


@pytest.mark.parametrize(
    ("serial", "segment"),
    [
        ("A/B 1", "A%2FB%201"),
        ("x?y#z&q=1", "x%3Fy%23z%26q%3D1"),
        ("50%", "50%25"),
        ("ü-1", "%C3%BC-1"),
    ],
)
def test_awkward_serials_round_trip(
    sandbox: SandboxProcess, client: InventoryClient, serial: str, segment: str
) -> None:
    created = client.create_device(
        DeviceCreate(serial_number=serial, name="odd", type=1, organization=123)
    )
    assert created.serial_number == serial
    assert client.get_device(serial).serial_number == serial
    assert client.patch_device(serial, {"location": "here"}).location == "here"
    client.delete_device(serial)
    paths = [r.path for r in sandbox.requests()[1:]]
    assert paths == [f"/api/v1/inventory_device_serial/{segment}/"] * 3
    with pytest.raises(NotFoundError):
        client.get_device(serial)


# -- writes ----------------------------------------------------------------------------------


def test_create_sends_only_the_given_fields(
    sandbox: SandboxProcess, client: InventoryClient, wire: RecordingTransport
) -> None:
    created = client.create_device(
        DeviceCreate(
            serial_number="NEW1",
            name="edge",
            type=3,
            organization=123,
            status=True,
            location="Lab",
            ip_address="2001:db8::1",
        )
    )
    assert wire.sent[-1].method == "POST"
    assert wire.sent[-1].json() == {
        "serial_number": "NEW1",
        "name": "edge",
        "type": 3,
        "organization": 123,
        "status": True,
        "location": "Lab",
        "ip_address": "2001:db8::1",
    }
    assert (created.name, created.type.id, created.location) == ("edge", 3, "Lab")
    assert sandbox.stats().by_status == {"201": 1}


def test_create_accepts_a_mapping(sandbox: SandboxProcess, client: InventoryClient) -> None:
    made = client.create_device(
        {"serial_number": "MAP1", "name": "m", "type": 1, "organization": 1}
    )
    assert made.organization.name == "Zequenze Labs"


def test_replace_sends_every_field_and_clears_the_omitted(
    sandbox: SandboxProcess, client: InventoryClient, wire: RecordingTransport
) -> None:
    sandbox.load([device("REP1", location="Rack 1", description="old", status=True)])
    replaced = client.replace_device(
        "REP1", DeviceReplace(name="renamed", type=2, organization=123, firmware_version="2.0")
    )
    assert (wire.sent[-1].method, wire.sent[-1].path) == (
        "PUT",
        "/api/v1/inventory_device_serial/REP1/",
    )
    assert wire.sent[-1].json() == {
        "name": "renamed",
        "type": 2,
        "organization": 123,
        "firmware_version": "2.0",
    }
    assert replaced.name == "renamed"
    again = client.get_device("REP1")
    assert (again.location, again.description, again.firmware_version) == (None, None, "2.0")


def test_patch_sends_only_the_changed_fields(
    sandbox: SandboxProcess, client: InventoryClient, wire: RecordingTransport
) -> None:
    sandbox.load([device("PAT1", location="Rack 1", description="keep me", status=True)])
    patched = client.patch_device("PAT1", DevicePatch(name="renamed"))
    assert (wire.sent[-1].method, wire.sent[-1].json()) == ("PATCH", {"name": "renamed"})
    assert (patched.name, patched.location, patched.status) == ("renamed", "Rack 1", True)
    client.patch_device("PAT1", {"status": False})
    assert wire.sent[-1].json() == {"status": False}
    client.patch_device("PAT1", DevicePatch(location=None))  # set explicitly: clear it
    assert wire.sent[-1].json() == {"location": None}
    final = client.get_device("PAT1")
    assert (final.name, final.status, final.location, final.description) == (
        "renamed",
        False,
        None,
        "keep me",
    )


def test_delete_removes_the_device(sandbox: SandboxProcess, client: InventoryClient) -> None:
    sandbox.load([device("DEL1"), device("KEEP")])
    client.delete_device("DEL1")
    assert sandbox.requests()[-1].status == 204
    with pytest.raises(NotFoundError):
        client.get_device("DEL1")
    assert [d.serial_number for d in client.iter_devices()] == ["KEEP"]


def test_requests_carry_user_agent_and_bearer_token(
    sandbox: SandboxProcess, client: InventoryClient, wire: RecordingTransport
) -> None:
    client.list_devices()
    headers = wire.sent[-1].headers
    assert headers["user-agent"].startswith("syncd/")
    assert headers["authorization"] == f"Bearer {sandbox.token.get_secret_value()}"
    assert headers["accept"] == "application/json"
