"""Mirror refresh benchmark (issue 9, point 2): the listing and the store, split apart.

Run: ``.venv/bin/python -m benchmarks.refresh [--size 100000] [--store-url URL]``.

N devices in list shape, as the sandbox renders them (``created_at``, ``updated_at``,
``last_status_change`` included), are served as JSON pages of 100 through the real
``InventoryClient`` over an in-memory ``httpx`` transport (no socket, no rate limit),
and ``Runner.refresh_mirror``'s path is followed: ``client.list_inventory()`` into
``Store.refresh_mirror``. Timed, each as wall and CPU seconds of this process:

- ``first``: an empty mirror filled (N new devices);
- ``unchanged``: the same listing again (the no-op refresh a run does before planning);
- ``edited``: every 100th device's location changed by hand.

The two listings are rendered in memory before anything is timed: about 0.5 GB per
100k devices at their peak (8 GB at 1M), the benchmark's own data, not the refresh's.

``requests`` counts the list requests of a walk (pages of 100, each after the first
starting at the last row of the one before), and what they take at the default rate
limit (10 requests per second).

``listing`` is the time spent producing the listed items (HTTP transport, decoding,
validation), ``store`` the rest. Nothing fails on timing; figures in
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from benchmarks.datagen import ORGANIZATIONS, TYPES, device_row
from syncd.inventory.client import InventoryClient
from syncd.store import Store

PAGE = 100
#: ``inventory.rate_limit.requests_per_second``'s default.
DEFAULT_RATE = 10.0
SEED = 20261207
T0 = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def list_rows(size: int, *, edited: int = 0) -> list[bytes]:
    """Every device's list-shape JSON, as the sandbox renders it."""
    types = [{"id": i + 1, "name": m, "model": m} for i, m in enumerate(TYPES)]
    orgs = [{"id": i + 1, "name": n} for i, n in enumerate(ORGANIZATIONS)]
    type_of = dict(zip(TYPES, types, strict=True))
    org_of = dict(zip(ORGANIZATIONS, orgs, strict=True))
    out: list[tuple[str, bytes]] = []
    for index in range(size):
        row = device_row(SEED, index)
        location = row["location"]
        if edited and index % edited == 0:
            location = f"{location}-moved-by-hand"
        born = T0 + timedelta(seconds=index)
        item = {
            "serial_number": row["serial_number"],
            "name": row["name"],
            "type": type_of[row["device_type"]],
            "organization": org_of[row["organization"]],
            "status": index % 7 != 0,
            "last_status_change": _stamp(born + timedelta(hours=1)),
            "ip_address": row["ip_address"],
            "location": location,
            "pending_changes": False,
            "created_at": _stamp(born),
            "updated_at": _stamp(born + timedelta(days=1)),
        }
        out.append((row["serial_number"], orjson.dumps(item)))
    out.sort()  # the API lists by serial number
    return [body for _, body in out]


def serve(rows: list[bytes]) -> Callable[[httpx.Request], httpx.Response]:
    """An ``offset``/``limit`` list endpoint over pre-rendered rows."""
    count = len(rows)

    def handle(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        limit = min(int(request.url.params["limit"]), PAGE)
        body = b"".join(
            (
                b'{"count":%d,"next":null,"previous":null,"results":[' % count,
                b",".join(rows[offset : offset + limit]),
                b"]}",
            )
        )
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return handle


class Clocked(Iterator[Any]):
    """Adds up the wall and CPU time spent producing the items of ``items``."""

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = iter(items)
        self.wall = self.cpu = 0.0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return next(self._items)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.process_time() - cpu


def refresh_once(store: Store, rows: list[bytes]) -> dict[str, Any]:
    """One refresh as ``Runner.refresh_mirror`` does it, timed."""
    client = InventoryClient(
        "http://inventory.bench/api/v1",
        SecretStr("bench-token"),
        page_size=PAGE,
        transport=httpx.MockTransport(serve(rows)),
    )
    with client:
        listing = client.list_inventory()
        items = Clocked(listing.rows())  # as Runner.refresh_mirror hands them over
        wall, cpu = time.perf_counter(), time.process_time()
        stats = store.refresh_mirror(items, complete=lambda: listing.complete)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if not listing.complete:
        raise SystemExit(f"the benchmark's listing was not complete: {listing.problems[:3]}")
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "listing_wall_s": round(items.wall, 3),
        "listing_cpu_s": round(items.cpu, 3),
        "store_wall_s": round(wall - items.wall, 3),
        "store_cpu_s": round(cpu - items.cpu, 3),
        "stats": {k: getattr(stats, k) for k in ("listed", "new", "changed", "unchanged", "gone")},
        "requests": listing.pages,
        "listing_s_at_default_rate": round(listing.pages / DEFAULT_RATE, 1),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.refresh", description=__doc__)
    p.add_argument("--size", type=int, default=100_000)
    p.add_argument("--store-url", help="a store URL (default: a fresh SQLite file)")
    p.add_argument("--repeat", type=int, default=2, help="unchanged refreshes (best kept)")
    args = p.parse_args(argv)
    from syncd.log import configure

    configure(level="WARNING")
    rows = list_rows(args.size)
    edited = list_rows(args.size, edited=100)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.store_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        with Store.open(url) as store:
            report = {"size": args.size, "store": url.split(":")[0], "load": os.getloadavg()}
            report["first"] = refresh_once(store, rows)
            runs = [refresh_once(store, rows) for _ in range(args.repeat)]
            report["unchanged"] = min(runs, key=lambda r: r["cpu_s"])
            report["edited"] = refresh_once(store, edited)
            report["load_after"] = os.getloadavg()
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
