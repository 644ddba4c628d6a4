"""Sources into the store: every ready batch of every connector, whole or not at all."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from connectors.base import Batch, BlockBatch, Connector, MarkedBatch
from syncd.engine import EmptySerialError, SerialRules, normalize_serial
from syncd.errors import ConfigError, SourceError, SyncdError
from syncd.process import bulk_work
from syncd.records import DeviceRecord, RecordBlock, Reject
from syncd.store import Store
from syncd.store.staging import UNSET

log = structlog.get_logger("syncd.ingest")


@dataclass(slots=True)
class BatchReport:
    """What became of one batch."""

    connector: str
    origin: str
    mode: str
    accepted: bool
    reason: str
    records: int
    rejects: int
    #: The ``source_batch`` row, and where the batch's data lies now (a CSV file moved to
    #: ``processed/`` or ``failed/``), if the source says.
    batch_id: int | None = None
    stored_at: str | None = None


@dataclass(frozen=True, slots=True)
class SourceNote:
    """Something a source has but did not deliver yet, and why (a file still waiting out
    ``stable_seconds``)."""

    connector: str
    origin: str
    reason: str


@dataclass(slots=True)
class IngestReport:
    """What every connector delivered in one run, and what it holds back for now."""

    batches: list[BatchReport] = field(default_factory=list)
    waiting: list[SourceNote] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(b.records for b in self.batches if b.accepted)

    @property
    def rejects(self) -> int:
        return sum(b.rejects for b in self.batches)

    @property
    def refused(self) -> list[BatchReport]:
        return [b for b in self.batches if not b.accepted]


@bulk_work()
def ingest(
    store: Store,
    connectors: Iterable[Connector],
    *,
    serial_rules: SerialRules,
    run_id: int | None,
    now: datetime,
    stopping: Callable[[], bool] | None = None,
    rehearse: bool = False,
) -> IngestReport:
    """Read every ready batch of every connector into the store.

    A batch is staged while it streams and merged only if its verdict accepts it,
    together with its ``mark`` (the connector's new state) if it has one; only then is
    it committed at the source (the file moves to ``processed/``). A
    source that fails while it is read raises ``SourceError`` after the batch was
    discarded and set aside, so a partial pull never reaches the store and can
    never cause a deletion.

    ``stopping`` is asked after each batch: once it says yes, no further batch is
    claimed (a source's next batch is claimed only when asked for).

    ``rehearse`` (a dry run, inside ``Store.rehearsal``): a connector that can ``peek``
    reads its batches where they lie, and no batch is set down at its source (no file
    moves, no watermark is saved); the store forgets the rest when the rehearsal ends.

    What a connector holds back for now (a file still waiting out ``stable_seconds``)
    is reported in ``waiting``, if it says (an optional ``waiting()``).
    """
    report = IngestReport()
    for connector in connectors:
        if stopping is not None and stopping():
            break
        peek = getattr(connector, "peek", None) if rehearse else None
        batches = peek() if callable(peek) else connector.fetch()
        try:
            for batch in batches:
                report.batches.append(
                    _ingest_batch(
                        store,
                        batch,
                        connector.name,
                        rules=serial_rules,
                        run_id=run_id,
                        now=now,
                        rehearse=rehearse,
                    )
                )
                if stopping is not None and stopping():
                    break
            report.waiting.extend(_waiting(connector))
        except (SourceError, ConfigError):
            raise  # a misconfigured source is a configuration error (exit 2), not an outage
        except SyncdError as exc:
            raise SourceError(f"source {connector.name!r}: {exc}") from exc
        except OSError as exc:
            raise SourceError(f"source {connector.name!r}: {exc}") from exc
    return report


def _waiting(connector: Connector) -> list[SourceNote]:
    said = getattr(connector, "waiting", None)
    if not callable(said):
        return []
    return [SourceNote(connector.name, origin, reason) for origin, reason in said()]


def _ingest_batch(
    store: Store,
    batch: Batch,
    name: str,
    *,
    rules: SerialRules,
    run_id: int | None,
    now: datetime,
    rehearse: bool = False,
) -> BatchReport:
    staged = store.stage(name, mode=batch.mode, origin=batch.origin, run_id=run_id)
    try:
        # A batch that can give its records in columns does: no DeviceRecord per row.
        items = batch.blocks() if isinstance(batch, BlockBatch) else batch.items()
        staged.add(_normalised(items, rules))
    except BaseException as exc:
        reason = f"reading failed: {exc}"
        staged.discard(reason, now=now)
        if not rehearse:
            batch.fail(reason)
        log.error("ingest.batch_failed", source=name, origin=batch.origin, error=str(exc))
        if isinstance(exc, SourceError):
            raise
        if isinstance(exc, SyncdError | OSError):
            raise SourceError(f"source {name!r}, {batch.origin}: {exc}") from exc
        raise
    verdict = batch.verdict
    # The connector's state moves with the data it describes: one transaction.
    mark = batch.mark if verdict.accepted and isinstance(batch, MarkedBatch) else None
    stats = staged.commit(
        accepted=verdict.accepted,
        reason=verdict.reason,
        watermark=UNSET if mark is None else mark,
        now=now,
    )
    if rehearse:
        pass  # a dry run sets nothing down at the source
    elif verdict.accepted:
        batch.commit()
    else:
        batch.fail(verdict.reason)
    stored_at = None if rehearse else getattr(batch, "stored_at", None)
    if isinstance(stored_at, str):
        store.note_batch_place(stats.batch_id, stored_at)
    report = BatchReport(
        connector=name,
        origin=batch.origin,
        mode=batch.mode,
        accepted=verdict.accepted,
        reason=verdict.reason,
        records=stats.records,
        rejects=stats.rejects,
        batch_id=stats.batch_id,
        stored_at=stored_at if isinstance(stored_at, str) else None,
    )
    log.info("ingest.batch", **dataclasses.asdict(report))
    return report


def _normalised(
    items: Iterable[DeviceRecord | Reject | RecordBlock], rules: SerialRules
) -> Iterator[DeviceRecord | Reject | RecordBlock]:
    """Apply the configured serial rules; a serial that normalises to nothing is a reject.

    A reject's serial is normalised too: in a snapshot it keeps the device's stored
    record (the row was unusable, the device is still listed), so it must name the
    serial the store knows.
    """
    for item in items:
        if type(item) is RecordBlock:
            yield from _normalised_block(item, rules)
            continue
        if isinstance(item, Reject):
            yield _normalised_reject(item, rules)
            continue
        assert isinstance(item, DeviceRecord)
        try:
            serial = normalize_serial(item.serial_number, rules)
        except EmptySerialError as exc:
            yield Reject(item.source, item.origin or "?", str(exc), item.serial_number)
            continue
        yield (
            item
            if serial == item.serial_number
            else dataclasses.replace(item, serial_number=serial)
        )


def _normalised_block(block: RecordBlock, rules: SerialRules) -> Iterator[RecordBlock | Reject]:
    """``_normalised`` for a block: its serials are trimmed already, so the default rules
    leave them as they are; other rules are applied to each, and a serial they empty
    splits the block around its reject (the order of the source stays)."""
    if rules.case == "preserve" and not rules.strip_prefixes and not rules.remove_chars:
        yield block
        return
    serials: list[str] = []
    start = 0
    for index, raw in enumerate(block.serials):
        try:
            serials.append(normalize_serial(raw, rules))
        except EmptySerialError as exc:
            if index > start:
                yield _part(block, serials, start, index)
            yield Reject(block.source, block.origins[index], str(exc), raw)
            serials = []
            start = index + 1
    if start < len(block):
        yield _part(block, serials, start, len(block))


def _part(block: RecordBlock, serials: list[str], start: int, end: int) -> RecordBlock:
    """Rows ``start:end`` of ``block`` under the normalised ``serials``."""
    return dataclasses.replace(
        block,
        serials=serials,
        origins=block.origins[start:end],
        payloads=block.payloads[start:end],
        wanted=block.wanted[start:end],
        actions=block.actions[start:end],
    )


def _normalised_reject(reject: Reject, rules: SerialRules) -> Reject:
    if reject.serial_number is None:
        return reject
    try:
        serial: str | None = normalize_serial(reject.serial_number, rules)
    except EmptySerialError:
        serial = None
    if serial == reject.serial_number:
        return reject
    return dataclasses.replace(reject, serial_number=serial)
