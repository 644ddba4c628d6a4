"""``list_inventory``: a walk over the whole list that knows whether it saw all of it.

The sandbox tests change the inventory between two pages of a walk (the walk is driven
page by page by taking devices from the iterator in steps, with page size 10) and
check that the listing says it is not complete, and why. Malformed rows, which the
sandbox (a faithful server) never sends, come from an ``httpx.MockTransport``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from pydantic import SecretStr

from syncd.config import RetrySettings
from syncd.errors import ProtocolError, ServerUnavailableError
from syncd.inventory import Device, InventoryClient, Listing
from syncd.sandbox.testing import SandboxProcess
from tests.client_support import device, list_row, make_client

PAGE = 10
SERIALS = [f"D{i:02}" for i in range(25)]


@pytest.fixture
def client(sandbox: SandboxProcess) -> Iterator[InventoryClient]:
    with make_client(sandbox) as client:
        yield client


@pytest.fixture
def loaded(sandbox: SandboxProcess) -> SandboxProcess:
    """The sandbox holding D00 … D24."""
    sandbox.load([device(s) for s in SERIALS])
    return sandbox


def _take(listing: Listing, n: int) -> list[str]:
    """The next ``n`` serials: exactly one page when ``n`` is the first page's size."""
    return [d.serial_number for d in itertools.islice(listing, n)]


def _rest(listing: Listing) -> list[str]:
    return [d.serial_number for d in listing]


def _offsets(sandbox: SandboxProcess) -> list[str]:
    queries = [parse_qs(r.query) for r in sandbox.requests() if r.method == "GET"]
    return [q["offset"][0] for q in queries]


def _delete(sandbox: SandboxProcess, serial: str) -> None:
    with sandbox.client() as http:
        assert http.delete(f"inventory_device_serial/{serial}/").status_code == 204


# -- against the sandbox ---------------------------------------------------------------------


def test_a_quiet_walk_is_complete(loaded: SandboxProcess, client: InventoryClient) -> None:
    listing = client.list_inventory(page_size=PAGE)
    assert loaded.requests() == []  # lazy: nothing fetched yet
    with pytest.raises(RuntimeError, match="not been walked to its end"):
        _ = listing.complete
    walked = _rest(listing)
    assert walked == SERIALS
    assert listing.complete
    assert listing.problems == []
    assert (listing.listed, listing.pages, listing.count) == (25, 3, 25)
    assert not listing.filtered
    # Pages overlap by one row: each starts at the last row of the page before.
    assert _offsets(loaded) == ["0", "9", "18"]


def test_an_empty_inventory_is_a_complete_listing(client: InventoryClient) -> None:
    listing = client.list_inventory()
    assert _rest(listing) == []
    assert listing.complete


def test_a_device_added_before_the_cursor_makes_the_walk_incomplete(
    loaded: SandboxProcess, client: InventoryClient
) -> None:
    listing = client.list_inventory(page_size=PAGE)
    first = _take(listing, PAGE)
    loaded.load([device("C00")])  # sorts before everything listed so far
    walked = first + _rest(listing)
    # The hazard itself: the new device was never listed. Believing this walk complete
    # would call C00 absent (and plan to create it: a 409).
    assert "C00" not in walked
    assert sorted(walked) == SERIALS  # nothing listed twice
    assert not listing.complete
    assert listing.problems == [
        "offset 9: the server's count changed from 25 to 26 during the walk "
        "(devices added or removed)",
        "offset 9: the page does not start with 'D09', the last device of the page before: "
        "devices were added or removed before this point, so some may have been skipped "
        "or listed twice",
        "offset 9: serial 'D08' listed again",
        "offset 10: serial 'D09' listed again",
    ]


def test_a_device_removed_before_the_cursor_makes_the_walk_incomplete(
    loaded: SandboxProcess, client: InventoryClient
) -> None:
    listing = client.list_inventory(page_size=PAGE)
    first = _take(listing, PAGE)
    _delete(loaded, "D03")
    walked = first + _rest(listing)
    assert walked == SERIALS  # D03 was listed before it went
    assert not listing.complete
    assert listing.problems[0] == (
        "offset 9: the server's count changed from 25 to 24 during the walk "
        "(devices added or removed)"
    )
    assert "does not start with 'D09'" in listing.problems[1]


def test_an_add_and_a_remove_that_keep_the_count_are_still_noticed(
    loaded: SandboxProcess, client: InventoryClient
) -> None:
    """The count is the same before and after, yet the rows moved under the cursor:
    plain offset paging would skip D10 here without a sign. The overlap shows it."""
    listing = client.list_inventory(page_size=PAGE)
    first = _take(listing, PAGE)
    _delete(loaded, "D03")
    loaded.load([device("E00")])
    walked = first + _rest(listing)
    assert walked == [*SERIALS, "E00"]
    assert listing.count == 25
    assert not listing.complete
    assert len(listing.problems) == 1
    assert listing.problems[0].startswith("offset 9: the page does not start with 'D09'")


def test_a_device_added_after_the_cursor_is_listed_but_the_count_moved(
    loaded: SandboxProcess, client: InventoryClient
) -> None:
    listing = client.list_inventory(page_size=PAGE)
    first = _take(listing, PAGE)
    loaded.load([device("Z99")])
    walked = first + _rest(listing)
    assert walked == [*SERIALS, "Z99"]
    # Nothing was missed this time, but a changed count cannot tell which way it went.
    assert not listing.complete
    assert listing.problems == [
        "offset 9: the server's count changed from 25 to 26 during the walk "
        "(devices added or removed)"
    ]


def test_values_changing_during_a_walk_leave_it_complete(
    loaded: SandboxProcess, client: InventoryClient
) -> None:
    listing = client.list_inventory(page_size=PAGE)
    first = _take(listing, PAGE)
    loaded.load([device("D02", location="moved"), device("D15", name="renamed")])
    rest = list(listing)
    assert first + [d.serial_number for d in rest] == SERIALS
    assert {d.serial_number: d.name for d in rest}["D15"] == "renamed"
    assert listing.complete
    assert listing.problems == []


def test_a_page_that_fails_once_is_retried_in_place(
    loaded: SandboxProcess, client: InventoryClient
) -> None:
    loaded.set_faults(script=["ok", "503"])
    listing = client.list_inventory(page_size=PAGE)
    assert _rest(listing) == SERIALS
    assert listing.complete
    assert [r.status for r in loaded.requests()] == [200, 503, 200, 200]
    assert _offsets(loaded) == ["0", "9", "9", "18"]


def test_a_walk_that_fails_is_never_complete(
    loaded: SandboxProcess, client: InventoryClient
) -> None:
    loaded.set_faults(script=["ok", "503", "503", "503", "503"])  # FAST_RETRY: 4 attempts
    listing = client.list_inventory(page_size=PAGE)
    walked: list[str] = []
    with pytest.raises(ServerUnavailableError):
        walked.extend(d.serial_number for d in listing)
    assert walked == SERIALS[:PAGE]
    assert listing.finished
    assert not listing.complete
    assert listing.problems[-1].startswith("offset 9: the walk stopped: ServerUnavailableError")
    assert list(listing) == []  # spent: walking on finds nothing and does not fetch
    assert len(loaded.requests()) == 5


def test_a_filtered_listing_says_it_is_filtered(
    loaded: SandboxProcess, client: InventoryClient
) -> None:
    loaded.load([device("ORG1", organization=1)])
    listing = client.list_inventory(organization=1)
    assert _rest(listing) == ["ORG1"]
    assert listing.complete
    assert listing.filtered
    assert parse_qs(loaded.requests()[-1].query)["organization"] == ["1"]


def test_iter_devices_is_the_same_walk(loaded: SandboxProcess, client: InventoryClient) -> None:
    walker = client.iter_devices(page_size=PAGE)
    assert isinstance(walker, Listing)
    assert [d.serial_number for d in walker] == SERIALS


# -- rows the sandbox never sends ------------------------------------------------------------

TOKEN = SecretStr("mock-token-listing-81f3")
FAST = RetrySettings(attempts=3, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0)
Handler = Callable[[httpx.Request], httpx.Response]


def _paged(rows: list[Any]) -> Handler:
    """A server that pages ``rows`` by ``offset``/``limit`` exactly, whatever they hold."""

    def handle(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        limit = int(request.url.params["limit"])
        return httpx.Response(
            200, json={"count": len(rows), "results": rows[offset : offset + limit]}
        )

    return handle


@pytest.fixture
def mocked() -> Iterator[Callable[[Handler], InventoryClient]]:
    clients: list[InventoryClient] = []

    def make(handler: Handler) -> InventoryClient:
        client = InventoryClient(
            "http://inventory.test/api/v1",
            TOKEN,
            retry=FAST,
            page_size=3,
            transport=httpx.MockTransport(handler),
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_malformed_rows_are_skipped_and_named(
    mocked: Callable[[Handler], InventoryClient],
) -> None:
    no_name = list_row("C")
    del no_name["name"]
    rows: list[Any] = [
        list_row("A"),
        list_row("B", type=None),
        no_name,
        "junk",
        {"name": "nameless"},
        list_row("F"),
        list_row("G", status="maybe", organization={"id": "x"}),
        list_row("H"),
    ]
    listing = mocked(_paged(rows)).list_inventory()
    walked: list[Device] = list(listing)  # one bad row never stops the walk
    assert [d.serial_number for d in walked] == ["A", "F", "H"]
    assert not listing.complete
    assert listing.problems == [
        "offset 1 (serial 'B'): skipped, not a valid device: "
        "type: Input should be a valid dictionary or instance of DeviceType",
        "offset 2 (serial 'C'): skipped, not a valid device: name: Field required",
        "offset 3 (no serial): skipped, not a valid device: "
        "row: Input should be a valid dictionary or instance of Device",
        "offset 4 (no serial): skipped, not a valid device: serial_number: Field required; "
        "type: Field required; organization: Field required",
        "offset 6 (serial 'G'): skipped, not a valid device: "
        "organization.id: Input should be a valid integer, unable to parse string as an "
        "integer; status: Input should be a valid boolean, unable to interpret input",
    ]


def test_a_malformed_row_still_anchors_the_next_page(
    mocked: Callable[[Handler], InventoryClient],
) -> None:
    """The last row of a page is the next page's anchor even when it is malformed, so it
    is neither reported twice nor taken for a shift."""
    rows = [list_row("A"), list_row("B"), list_row("C", type=None), list_row("D"), list_row("E")]
    listing = mocked(_paged(rows)).list_inventory()
    assert [d.serial_number for d in listing] == ["A", "B", "D", "E"]
    assert listing.problems == [
        "offset 2 (serial 'C'): skipped, not a valid device: "
        "type: Input should be a valid dictionary or instance of DeviceType"
    ]


def test_a_row_listed_twice_is_yielded_once(
    mocked: Callable[[Handler], InventoryClient],
) -> None:
    listing = mocked(_paged([list_row("A"), list_row("A"), list_row("B")])).list_inventory()
    assert [d.serial_number for d in listing] == ["A", "B"]
    assert not listing.complete
    assert listing.problems == ["offset 1: serial 'A' listed again"]


def test_a_short_page_before_the_end_makes_the_walk_incomplete(
    mocked: Callable[[Handler], InventoryClient],
) -> None:
    rows = [list_row(s) for s in "ABCDEFG"]
    full = _paged(rows)

    def lossy(request: httpx.Request) -> httpx.Response:
        if request.url.params["offset"] == "2":  # the second page loses its last row
            return httpx.Response(200, json={"count": 7, "results": rows[2:4]})
        return full(request)

    listing = mocked(lossy).list_inventory()
    assert [d.serial_number for d in listing] == ["A", "B", "C", "D", "E", "F", "G"]
    assert not listing.complete
    assert listing.problems == ["offset 2: short page, 2 of 3 devices due (count 7, page size 3)"]


def test_a_count_that_does_not_match_the_rows_is_a_problem(
    mocked: Callable[[Handler], InventoryClient],
) -> None:
    """Every page full and in place, yet the server counts fewer rows than it served."""

    def overcounted(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        return httpx.Response(
            200, json={"count": 2, "results": [list_row(s) for s in "ABC"][offset:]}
        )

    listing = mocked(overcounted).list_inventory()
    assert [d.serial_number for d in listing] == ["A", "B", "C"]
    assert listing.problems == ["the walk found 3 devices, but the server counts 2"]


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(200, json={"count": 1, "results": "nope"}), "not a valid ListPage"),
        (httpx.Response(200, json={"results": []}), "count: Field required"),
        (httpx.Response(200, text="<html>Login</html>"), "body is not JSON"),
    ],
)
def test_a_malformed_page_still_raises(
    mocked: Callable[[Handler], InventoryClient], response: httpx.Response, message: str
) -> None:
    listing = mocked(lambda r: response).list_inventory()
    with pytest.raises(ProtocolError, match=message) as info:
        list(listing)
    assert str(info.value).startswith("GET /api/v1/inventory_device_serial/?limit=3&offset=0")
    assert not listing.complete


def test_problems_never_show_the_token(mocked: Callable[[Handler], InventoryClient]) -> None:
    secret = TOKEN.get_secret_value()
    listing = mocked(_paged([list_row(secret, type=None)])).list_inventory()
    assert list(listing) == []
    assert listing.problems == [
        "offset 0 (serial '[redacted]'): skipped, not a valid device: "
        "type: Input should be a valid dictionary or instance of DeviceType"
    ]
