"""``Listing.rows()``: the walk's plain rows are exactly what ``Device`` validation gives.

A listed page is validated whole against ``Device``'s fields as a plain ``TypedDict``
(no model per row), so that must never accept a row ``Device`` refuses, nor read one
differently: the same pages are
walked both ways (``Device`` objects, plain rows) and must give the same devices, the
same values, creation times and catalogue entries, and the same problems, naming the
same malformed rows. Rows pydantic would coerce or refuse are included on purpose.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from syncd.inventory import Device
from syncd.listed import ListedDevice, listed_device, listed_page, utc_text
from syncd.sandbox.render import format_datetime
from tests.client_support import list_row, mock_client


def _without(row: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in names}


#: Valid rows of plain JSON types (read as ``Device`` reads them).
PLAIN: list[Any] = [
    list_row("A"),
    list_row("B", created_at="2026-01-05T09:30:00.5Z"),
    list_row("C", created_at="2026-01-05T11:30:00.000001+02:00"),
    list_row("D", created_at="2026-01-05T09:30:00"),  # naive: pydantic keeps it naive
    list_row("E", created_at=None, ip_address=None, location=None),
    _without(list_row("F"), "status", "ip_address", "location", "created_at", "updated_at"),
    list_row("G", mac_address="00:1b:54:aa:01:02", description="rack 4", firmware_version=None),
    list_row("H", type={"id": 1, "name": None, "model": "X1", "manufacturer": "Cisco", "x": [1]}),
    list_row("I", organization={"id": 2, "code": "ACME"}, extra_field={"anything": True}),
    list_row("J", created_at="2026-01-05T09:30:00-00:00", pending_details=None),
    list_row("K\u00e9\U0001f600 ", name=""),
]

#: Rows pydantic coerces (valid) or refuses (named as malformed).
UNDECIDED: list[Any] = [
    list_row("L", status="true"),  # coerced to True
    list_row("M", type={"id": "1", "name": "Router"}),  # coerced to 1
    list_row("N", organization={"id": 2.0}),  # coerced to 2
    list_row("O", created_at="2026-01-05 09:30:00Z"),  # a space: pydantic reads it
    list_row("P", created_at=1767605400),  # a Unix time: pydantic reads it
    list_row("Q", created_at="2026-02-30T09:30:00Z"),  # no such day: refused
    list_row("R", updated_at="yesterday"),  # refused
    list_row("S", last_status_change="2026-01-05T24:00:00Z"),  # refused
    list_row("T", status=None),  # refused
    list_row("U", type=None),  # refused
    list_row("V", type={"id": True}),  # pydantic decides what a boolean id is
    list_row("W", organization={"id": 2**70}),  # beyond 64 bits
    list_row("X", name=5),  # refused
    list_row("Y", ip_address=10),  # refused
    list_row("Z", pending_details={"configuration_updates": 2, "firmware_update": True}),
    list_row("AA", pending_changes="no"),  # coerced to False
    list_row("AB", created_at="2026-01-05T09:30:00.1234567Z"),  # seven digits
    list_row("AC", created_at="2026-01-05T09:30:00+24:00"),
    list_row("AD", created_at="\u0662026-01-05T09:30:00Z"),  # a non-ASCII digit
    _without(list_row("AE"), "name"),
    "junk",
    {"name": "nameless"},
    None,
]


def _walked(rows: list[Any], plain: bool) -> tuple[list[Any], list[str], bool]:
    def handle(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        page = {"count": len(rows), "results": rows[offset : offset + limit]}
        return httpx.Response(200, json=page)

    with mock_client(handle, page_size=4) as client:
        listing = client.list_inventory()
        devices = list(listing.rows() if plain else listing)
    return devices, listing.problems, listing.complete


def _seen(device: Any) -> tuple[Any, ...]:
    """What a refresh reads from a listed device."""
    kind, org = device.type, device.organization
    return (
        device.serial_number,
        device.writable_values(),
        device.created_at,
        utc_text(device.created_at),
        (kind.id, kind.name, kind.model, kind.manufacturer),
        (org.id, org.name, org.code),
    )


def _equal_instants(a: Any, b: Any) -> bool:
    """Equal, and both naive or both aware (``==`` alone calls those unequal anyway)."""
    return bool(a == b) and (a is None) == (b is None)


@pytest.mark.parametrize("order", ["plain first", "undecided first", "interleaved"])
def test_rows_and_devices_are_the_same_walk(order: str) -> None:
    if order == "plain first":
        rows = PLAIN + UNDECIDED
    elif order == "undecided first":
        rows = UNDECIDED + PLAIN
    else:
        rows = [r for pair in zip(PLAIN, UNDECIDED, strict=False) for r in pair]
        rows += UNDECIDED[len(PLAIN) :]
    devices, problems, complete = _walked(rows, plain=False)
    listed, listed_problems, listed_complete = _walked(rows, plain=True)
    assert all(isinstance(d, Device) for d in devices)
    assert all(isinstance(d, ListedDevice) for d in listed)
    assert [_seen(d) for d in listed] == [_seen(d) for d in devices]
    for fast, slow in zip(listed, devices, strict=True):
        assert _equal_instants(fast.created_at, slow.created_at), fast.serial_number
        # the text the store compares, made from the API's text, is the instant's
        assert fast.created_utc == utc_text(slow.created_at), fast.serial_number
    assert listed_problems == problems
    assert listed_complete == complete
    assert not complete
    named = " ".join(problems)
    for serial in ("Q", "R", "S", "T", "U", "W", "X", "Y", "AC", "AD", "AE"):
        assert f"serial '{serial}'" in named, serial


def test_a_row_is_refused_exactly_when_device_refuses_it() -> None:
    for row in PLAIN + UNDECIDED:
        try:
            Device.model_validate(row)
        except ValidationError:
            assert listed_device(row) is None, row
        else:
            fast = listed_device(row)
            assert fast is not None, row
            assert _seen(fast) == _seen(Device.model_validate(row))


def test_a_page_is_validated_whole_and_a_bad_row_alone() -> None:
    assert all(d is not None for d in listed_page(PLAIN))
    page = listed_page([*PLAIN[:3], list_row("Q", type=None), *PLAIN[3:6]])
    assert [d is None for d in page] == [False] * 3 + [True] + [False] * 3
    assert [d.serial_number for d in page if d is not None] == [
        r["serial_number"] for r in PLAIN[:6]
    ]


@pytest.mark.parametrize("micro", [0, 250000, 7])
def test_the_sandboxs_timestamps_are_decided_plainly(micro: int) -> None:
    """The sandbox writes instants as DRF does (``Z``, microseconds when there are)."""
    born = datetime(2026, 1, 5, 9, 30, 0, micro, tzinfo=UTC)
    item = list_row("S1", created_at=format_datetime(born), updated_at=format_datetime(born))
    fast = listed_device(item)
    assert fast is not None
    assert _seen(fast) == _seen(Device.model_validate(item))
    assert fast.created_at == born
    assert fast.created_utc == f"2026-01-05 09:30:00.{micro:06d}"


def test_rows_refuses_a_walk_already_started() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"count": 2, "results": [list_row("A"), list_row("B")]})

    with mock_client(handle, page_size=4) as client:
        listing = client.list_inventory()
        next(listing)
        with pytest.raises(RuntimeError, match="already been walked"):
            listing.rows()
