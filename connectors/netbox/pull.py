"""The three pulls: full (snapshot), incremental (delta since the marks), targeted (one device).

A pull reads everything first and only then hands out its items, so a NetBox that
fails half-way raises before a single record leaves (and the pipeline stores
nothing). Records are mapped page by page: raw JSON is never held for the whole list.

**Full.** Reads the newest change-log time first (the mark the next incremental pull
starts from, so deletions during the pull are not lost), then every device within
the filters, ``ordering=id``. If the list's ``count`` changed between pages, or
fewer distinct devices came back than it said, offset paging may have skipped
devices: the pull is marked unusable (``problem``) and nothing of it is used.

**Incremental.** Reads devices with ``last_updated >= watermark - overlap`` and the
change log's ``update``/``delete`` entries for ``dcim.device`` since ``changes_mark -
overlap``. The store replaces a serial's rows with those of a delta batch, so a delta
must carry *every* record of this source for each serial it touches. Hence a lookup
(``serial=`` is case-insensitive in NetBox, so case variants come too; ``fields=id,serial``
keeps it small) of every serial touched: those of the changed devices, those of
deleted devices (``prechange_data.serial``), the old serial of a device whose serial
was edited, and that of a device updated but no longer in the filtered list (it left
the filters). Devices found that were not already read are fetched in full. A
touched serial no device within the filters holds any more becomes a ``delete``
record, never a deletion by itself: the engine turns it into an orphan subject to
the grace rules.

**Targeted.** One device by NetBox id or serial, with every device sharing its
serial (same reasoning), or a ``delete`` record when NetBox no longer has it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from connectors.base import Item
from connectors.netbox.client import NetBoxClient, Page, Params
from connectors.netbox.config import NetBoxConfig
from connectors.netbox.mapping import (
    BLANK_SERIAL,
    DeviceMapper,
    delete_record,
    flag_case_twins,
    serial_of,
)
from connectors.netbox.state import PullMarks
from connectors.netbox.templates import text
from syncd.records import CASE_COLLISION, DeviceRecord, Reject

DEVICES = "dcim.devices"
CHANGES = "core.object_changes"

#: Longest query (characters) a lookup builds: below gunicorn's 4094-byte request line.
LOOKUP_QUERY_CHARS = 1800


@dataclass
class PullStats:
    """What a pull read and what it made of it (for the verdict and the logs)."""

    kind: str
    devices_read: int = 0
    changes_read: int = 0
    records: int = 0
    unwanted: int = 0
    deletions: int = 0
    rejects: Counter[str] = field(default_factory=Counter)
    case_collisions: int = 0
    shared_serials: int = 0
    requests: int = 0

    @property
    def blank_serials(self) -> int:
        """Devices skipped because their serial is blank."""
        return self.rejects[BLANK_SERIAL]

    def summary(self) -> str:
        """One line for the verdict and the run log."""
        parts = [f"{self.kind} pull: {self.devices_read} devices read"]
        if self.changes_read:
            parts.append(f"{self.changes_read} change-log entries")
        parts.append(f"{self.records} records ({self.unwanted} not wanted)")
        if self.deletions:
            parts.append(f"{self.deletions} deletions")
        if self.rejects:
            reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.rejects.items()))
            parts.append(f"{sum(self.rejects.values())} rejected ({reasons})")
        if self.shared_serials:
            parts.append(f"{self.shared_serials} serials on several devices")
        if self.case_collisions:
            parts.append(f"{self.case_collisions} records whose serial differs only by case")
        return "; ".join(parts)


@dataclass
class PullResult:
    """A finished pull: its items, stats, the marks to save on commit (``None``: keep
    them), and ``problem`` when the pull must not be used."""

    items: list[Item]
    stats: PullStats
    marks: PullMarks | None
    problem: str = ""
    note: str = ""


class _ListRead:
    """Streams a paged list's objects, dropping repeats, and notices when the list
    changed while it was paged (offset paging may then have skipped objects)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.counts: list[int] = []
        self.ids: set[object] = set()
        self.repeats = 0

    def objects(self, pages: Iterator[Page]) -> Iterator[dict[str, Any]]:
        """The objects of every page, each once."""
        for page in pages:
            self.counts.append(page.count)
            for obj in page.results:
                ident = obj.get("id")
                if ident in self.ids:
                    self.repeats += 1
                    continue
                self.ids.add(ident)
                yield obj

    @property
    def problem(self) -> str:
        """Why the list cannot be trusted, or ``""``."""
        if not self.counts:
            return ""
        first, last = self.counts[0], self.counts[-1]
        if len(set(self.counts)) == 1 and len(self.ids) == first:
            return ""
        return (
            f"NetBox's {self.what} changed while it was being read (count {first} -> {last}, "
            f"{len(self.ids)} distinct objects read, {self.repeats} repeated): paging may "
            "have skipped some, so this pull is not used; the next run reads it again"
        )


class Puller:
    """Runs pulls for one connector over an open client."""

    def __init__(self, client: NetBoxClient, config: NetBoxConfig, mapper: DeviceMapper) -> None:
        self.client = client
        self.config = config
        self.mapper = mapper
        self.filters: dict[str, str | list[str]] = config.query_filters()

    # -- full ------------------------------------------------------------------------------

    def full(self, marks: PullMarks, *, started_at: datetime, fingerprint: str) -> PullResult:
        """Every device within the filters (a snapshot)."""
        stats = PullStats("full")
        changes_mark = self._newest_change() if self.config.incremental else None
        read = _ListRead("device list")
        watermark: datetime | None = None
        items: list[Item] = []
        for device in read.objects(self._pages(DEVICES, {**self.filters, "ordering": "id"})):
            stats.devices_read += 1
            watermark = _later(watermark, device.get("last_updated"))
            items.append(self.mapper(device))
        new_marks = PullMarks(
            watermark=watermark or marks.watermark,
            changes_mark=changes_mark,
            last_full_pull=started_at,
            fingerprint=fingerprint,
        )
        return self._result(items, [], stats, new_marks, read.problem)

    def _newest_change(self) -> datetime | None:
        params = {"changed_object_type": "dcim.device", "ordering": "-time"}
        page = self.client.page(CHANGES, params, limit=1, offset=0)
        return _later(None, page.results[0].get("time")) if page.results else None

    # -- incremental -----------------------------------------------------------------------

    def incremental(self, marks: PullMarks) -> PullResult:
        """The devices changed since the marks, deletions from the change log."""
        if marks.watermark is None:
            raise ValueError("an incremental pull needs a watermark")
        overlap = self.config.overlap
        stats = PullStats("incremental")
        by_id: dict[object, Item] = {}
        watermark = marks.watermark
        read = _ListRead("list of changed devices")
        since = {"last_updated__gte": _iso(marks.watermark - overlap), "ordering": "id"}
        for device in read.objects(self._pages(DEVICES, {**self.filters, **since})):
            stats.devices_read += 1
            watermark = _later(watermark, device.get("last_updated")) or watermark
            by_id[device.get("id")] = self.mapper(device)
        touched: dict[str, str] = {
            item.serial_number: "" for item in by_id.values() if item.serial_number
        }
        changes_mark, problem = self._read_changes(
            marks.changes_mark, overlap, by_id, touched, stats
        )
        problem = read.problem or problem
        holders = self._holders(touched)
        missing = [ident for ident in holders if ident not in by_id]
        for device in self._fetch_ids(missing):
            stats.devices_read += 1
            by_id[device.get("id")] = self.mapper(device)
        # A serial a record of this batch carries is held, whatever the lookup said.
        held = set(holders.values()) | {i.serial_number for i in by_id.values() if i.serial_number}
        deletes = [
            delete_record(self.mapper.source, serial, why or _no_holder(serial))
            for serial, why in sorted(touched.items())
            if serial not in held
        ]
        new_marks = PullMarks(
            watermark=watermark,
            changes_mark=changes_mark,
            last_full_pull=marks.last_full_pull,
            fingerprint=marks.fingerprint,
        )
        return self._result(list(by_id.values()), deletes, stats, new_marks, problem)

    def _read_changes(
        self,
        mark: datetime | None,
        overlap: timedelta,
        by_id: Mapping[object, Item],
        touched: dict[str, str],
        stats: PullStats,
    ) -> tuple[datetime | None, str]:
        params: dict[str, str | list[str]] = {
            "changed_object_type": "dcim.device",
            "action": ["update", "delete"],
            "ordering": "time",
        }
        if mark is not None:
            params["time_after"] = _iso(mark - overlap)
        read = _ListRead("change log")
        newest = mark
        for entry in read.objects(self._pages(CHANGES, params)):
            stats.changes_read += 1
            newest = _later(newest, entry.get("time")) or newest
            for serial, why in _touches(entry, by_id):
                if not touched.get(serial):
                    touched[serial] = why
        return newest, read.problem

    def _holders(self, serials: Iterable[str]) -> dict[object, str]:
        """Device id -> serial of every device within the filters holding one of
        ``serials`` (NetBox matches them ignoring case)."""
        holders: dict[object, str] = {}
        for chunk in _chunks(sorted(serials), key_chars=len("&serial=")):
            params = {**self.filters, "serial": chunk, "fields": "id,serial"}
            for device in _ListRead("lookup").objects(self._pages(DEVICES, params)):
                holders[device.get("id")] = serial_of(device)
        return holders

    def _fetch_ids(self, ids: list[object]) -> Iterator[dict[str, Any]]:
        for chunk in _chunks([str(i) for i in ids], key_chars=len("&id=")):
            params = {**self.filters, "id": chunk}
            yield from _ListRead("devices by id").objects(self._pages(DEVICES, params))

    # -- targeted --------------------------------------------------------------------------

    def targeted(self, *, device_id: int | None, serial: str | None) -> PullResult:
        """One device (by id or serial) and every device within the filters sharing its
        serial; a ``delete`` record when none holds the serial any more."""
        stats = PullStats("targeted")
        if device_id is not None:
            found = list(
                _ListRead("device").objects(
                    self._pages(DEVICES, {**self.filters, "id": str(device_id)})
                )
            )
            stats.devices_read += len(found)
            if not found:
                note = (
                    f"device {device_id} is not in NetBox or not within the filters: nothing "
                    "to update (a deletion reaches syncd through the change log)"
                )
                stats.requests = self.client.requests
                return PullResult([], stats, None, note=note)
            serial = serial_of(found[0])
            if not serial:
                return self._result([self.mapper(found[0])], [], stats, None, "")
        serial = (serial or "").strip()
        if not serial:
            raise ValueError("a targeted pull needs a device id or a serial")
        items: list[Item] = []
        held: set[str] = set()
        for device in _ListRead("devices by serial").objects(
            self._pages(DEVICES, {**self.filters, "serial": serial})
        ):
            stats.devices_read += 1
            held.add(serial_of(device))
            items.append(self.mapper(device))
        deletes = (
            []
            if serial in held
            else [delete_record(self.mapper.source, serial, _no_holder(serial))]
        )
        return self._result(items, deletes, stats, None, "")

    # -- shared ----------------------------------------------------------------------------

    def _pages(self, endpoint: str, params: Params) -> Iterator[Page]:
        config = self.config
        threads = config.max_workers if config.threading else 0
        return self.client.pages(endpoint, params, page_size=config.page_size, threads=threads)

    def _result(
        self,
        mapped: list[Item],
        deletes: list[DeviceRecord],
        stats: PullStats,
        marks: PullMarks | None,
        problem: str,
    ) -> PullResult:
        records = flag_case_twins(i for i in mapped if isinstance(i, DeviceRecord))
        rejects = [i for i in mapped if isinstance(i, Reject)]
        stats.records = len(records) + len(deletes)
        stats.unwanted = sum(1 for r in records if not r.wanted)
        stats.deletions = len(deletes)
        stats.rejects.update(r.reason for r in rejects)
        stats.case_collisions = sum(
            1 for r in records if any(k == CASE_COLLISION for k, _ in r.extra)
        )
        per_serial = Counter(r.serial_number for r in records)
        stats.shared_serials = sum(1 for n in per_serial.values() if n > 1)
        stats.requests = self.client.requests
        items: list[Item] = [*records, *deletes, *rejects]
        return PullResult(items, stats, marks, problem)


def _touches(entry: Mapping[str, Any], by_id: Mapping[object, Item]) -> Iterator[tuple[str, str]]:
    """The serials a change-log entry touches, each with why."""
    action = entry.get("action")
    action = action.get("value") if isinstance(action, Mapping) else action
    pre = _data_serial(entry.get("prechange_data"))
    post = _data_serial(entry.get("postchange_data"))
    device = entry.get("changed_object_id")
    label = f"netbox change {entry.get('id')} at {text(entry.get('time'))}: device {device}"
    if action == "delete":
        if pre:
            yield pre, f"{label} deleted"
        return
    if pre and pre != post:
        yield pre, f"{label} serial changed from {pre!r} to {post!r}"
    if post and device not in by_id:
        # Updated, yet not in the filtered list of changed devices: it left the filters
        # (or changed before the watermark); the lookup decides.
        yield post, f"{label} changed and is no longer within the filters"


def _data_serial(data: object) -> str:
    return text(data.get("serial")) if isinstance(data, Mapping) else ""


def _no_holder(serial: str) -> str:
    return f"netbox: no device within the filters has serial {serial!r} any more"


def _chunks(values: list[str], *, key_chars: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for value in values:
        cost = key_chars + len(quote(value, safe=""))
        if chunk and size + cost > LOOKUP_QUERY_CHARS:
            yield chunk
            chunk, size = [], 0
        chunk.append(value)
        size += cost
    if chunk:
        yield chunk


def _later(current: datetime | None, stamp: object) -> datetime | None:
    """The later of ``current`` and a NetBox timestamp (unparseable ones ignored)."""
    if not isinstance(stamp, str) or not stamp:
        return current
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return current
    if moment.tzinfo is None:
        return current
    return moment if current is None or moment > current else current


def _iso(moment: datetime) -> str:
    """A timestamp as NetBox's filters take it (UTC, ``Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
