"""``CsvDropConnector``: each complete file in the inbox becomes one ``Batch``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Literal

import structlog
from pydantic import BaseModel

from connectors.base import BatchMode, Item, Verdict
from connectors.csv_drop.config import CsvDropConfig
from connectors.csv_drop.encoding import Scan, scan_file
from connectors.csv_drop.inbox import Claim, Inbox, Note
from connectors.csv_drop.ledger import IngestLedger, JsonLedger, LedgerEntry
from connectors.csv_drop.reader import ReadOptions, ReadStats, read_items
from syncd.records import Reject

log = structlog.get_logger("connectors.csv_drop")

_State = Literal["new", "reading", "read", "committed", "failed", "released"]


class CsvDropConnector:
    """Reads the CSV files procurement systems drop into an inbox folder.

    ``fetch()`` first yields files a crashed run left in ``processing/`` (oldest
    first), then claims the inbox's complete files, oldest first. A file whose exact
    content was committed before is not yielded: it goes to ``processed/`` with a
    ``.duplicate.txt`` note. ``ledger`` replaces the JSON checksum ledger (for the store).
    """

    Config: ClassVar[type[BaseModel]] = CsvDropConfig

    def __init__(
        self, name: str, config: CsvDropConfig, *, ledger: IngestLedger | None = None
    ) -> None:
        self.name = name
        self.config = config
        self.inbox = Inbox(config)
        self.ledger: IngestLedger = ledger or JsonLedger(config.ledger_path)

    def __repr__(self) -> str:
        return f"CsvDropConnector({self.name!r}, inbox={str(self.config.inbox)!r})"

    def fetch(self) -> Iterator[CsvFileBatch]:
        """Yield one ``CsvFileBatch`` per ready file, claiming each just before it is yielded."""
        self.inbox.prepare()
        for claim in self.inbox.recover():
            batch = self._open(claim)
            if batch is not None:
                yield batch
        for path in self.inbox.ready():
            claimed = self.inbox.claim(path)
            if claimed is None:
                continue  # another process took it
            batch = self._open(claimed)
            if batch is not None:
                yield batch

    def _open(self, claim: Claim) -> CsvFileBatch | None:
        config = self.config
        try:
            scan = scan_file(
                claim.path, encoding=config.encoding, legacy_encoding=config.legacy_encoding
            )
        except OSError as exc:
            scan = Scan("", 0, problem=f"cannot read: {exc.strerror or exc}")
        if not scan.problem:
            earlier = self.ledger.seen(scan.sha256)
            if earlier is not None:
                text = (
                    f"{claim.name}: same content (sha256 {scan.sha256}) as {earlier.file},\n"
                    f"ingested at {earlier.at} and stored as {earlier.stored_as}.\n"
                    "Not applied again.\n"
                )
                final = self.inbox.settle(claim, self.inbox.processed, Note(".duplicate.txt", text))
                log.info(
                    "duplicate file skipped",
                    connector=self.name,
                    file=claim.name,
                    same_as=earlier.file,
                    moved_to=str(final),
                )
                return None
        return CsvFileBatch(self, claim, scan)


class CsvFileBatch:
    """One claimed file. ``items()`` streams it; ``commit()``/``fail()`` set it down.

    Beyond the ``Batch`` protocol: ``path`` (where the file is now), ``checksum``,
    ``encoding``, ``delimiter``, ``recovered`` (it was left by a crashed run), and
    ``release()`` (give the file back untouched: a later fetch offers it again).
    """

    def __init__(self, connector: CsvDropConnector, claim: Claim, scan: Scan) -> None:
        config = connector.config
        self.origin = str(config.inbox / claim.name)
        self.mode: BatchMode = config.mode
        self.checksum = scan.sha256
        self.encoding = scan.encoding
        self.recovered = claim.recovered
        self._connector = connector
        self._claim = claim
        self._scan = scan
        self._stats = ReadStats()
        self._state: _State = "new"
        self._verdict: Verdict | None = None
        self._final: Path | None = None

    def __repr__(self) -> str:
        return f"CsvFileBatch({self.origin!r}, mode={self.mode!r}, state={self._state!r})"

    @property
    def path(self) -> Path:
        """Where the file is now: in ``processing/`` until set down, then its final place."""
        return self._final or self._claim.path

    @property
    def delimiter(self) -> str:
        """The delimiter used (sniffed or configured); empty before the header is read."""
        return self._stats.delimiter

    def items(self) -> Iterator[Item]:
        """Stream the file's records and rejects (once)."""
        if self._state != "new":
            raise RuntimeError(f"{self!r}: items() can be read once")
        self._state = "reading"
        return self._stream()

    def _stream(self) -> Iterator[Item]:
        if self._scan.problem:
            self._finish_reading()
            return
        config = self._connector.config
        options = ReadOptions(
            source=self._connector.name,
            label=self.origin,
            mode=config.mode,
            delimiter=config.delimiter,
            columns=config.columns,
            required=config.required_fields,
            clear_empty=config.empty_cells == "clear",
        )
        spool = None
        try:
            for item in read_items(
                self._claim.path, encoding=self._scan.encoding, options=options, stats=self._stats
            ):
                if type(item) is Reject:
                    if spool is None:
                        spool = self._claim.spool.open("a", encoding="utf-8")
                    line = item.location.rpartition(":")[2]
                    spool.write(f"line {line}: {item.reason}\n")
                yield item
        finally:
            if spool is not None:
                spool.close()
        self._finish_reading()

    def _finish_reading(self) -> None:
        self._verdict = judge(self._stats, self._scan, self._connector.config.max_error_ratio)
        self._state = "read"

    @property
    def verdict(self) -> Verdict:
        """Whether the file may be used; until ``items()`` is exhausted, not accepted."""
        if self._verdict is None:
            return Verdict(False, "not read yet: items() is not exhausted")
        return self._verdict

    def commit(self) -> None:
        """Move the file to ``processed/`` (with ``.report.txt`` if rows were rejected) and
        remember its checksum. Only an accepted batch can be committed."""
        if self._state == "committed":
            return
        verdict = self.verdict
        if not verdict.accepted:
            raise RuntimeError(f"{self!r} cannot be committed: {verdict.reason}")
        if self._state != "read":
            raise RuntimeError(f"{self!r} cannot be committed once {self._state}")
        inbox = self._connector.inbox
        note = None
        if verdict.rejects:
            note = Note(".report.txt", self._report_head(None), append_spool=True)
        self._final = inbox.settle(self._claim, inbox.processed, note)
        self._state = "committed"
        self._connector.ledger.record(
            self.checksum,
            LedgerEntry(
                file=self._claim.name,
                stored_as=str(self._final),
                at=_now(),
                records=verdict.records,
            ),
        )
        log.info(
            "file processed",
            connector=self._connector.name,
            file=self._claim.name,
            records=verdict.records,
            rejects=verdict.rejects,
            moved_to=str(self._final),
        )

    def fail(self, reason: str) -> None:
        """Move the file to ``failed/`` with ``.error.txt``: ``reason`` and every bad row."""
        if self._state in ("committed", "failed"):
            return
        inbox = self._connector.inbox
        note = Note(".error.txt", self._report_head(reason), append_spool=True)
        self._final = inbox.settle(self._claim, inbox.failed, note)
        self._state = "failed"
        log.warning(
            "file failed",
            connector=self._connector.name,
            file=self._claim.name,
            reason=reason,
            moved_to=str(self._final),
        )

    def release(self) -> None:
        """Leave the file claimed but unlocked: the next ``fetch()`` offers it again."""
        if self._state not in ("committed", "failed"):
            self._claim.lock.release()
            self._state = "released"

    def _report_head(self, reason: str | None) -> str:
        stats = self._stats
        lines = [
            f"file: {self._claim.name} (dropped as {self.origin})",
            f"connector: {self._connector.name} ({self.mode})",
            f"at: {_now()}",
            f"sha256: {self.checksum}",
        ]
        if reason is not None:
            lines.append(f"failed: {reason}")
        if self._verdict is not None:
            lines.append(f"verdict: {self._verdict.reason or 'accepted'}")
        if self._scan.encoding:
            lines.append(f"encoding: {self._scan.encoding}, delimiter: {stats.delimiter!r}")
        lines.append(
            f"rows: {stats.records} records, {stats.rejects} rejected, {stats.blank} blank skipped"
        )
        if stats.rejects:
            lines.append("rejected rows (physical line numbers):")
        return "\n".join(lines) + "\n"


def judge(stats: ReadStats, scan: Scan, max_error_ratio: float) -> Verdict:
    """The verdict on a file read into ``stats``."""
    problem = scan.problem or stats.problem
    if problem:
        return Verdict(False, problem, stats.records, stats.rejects)
    weighed = stats.records + stats.bad_rows
    if weighed == 0:
        # A header without rows is a valid "no devices" snapshot: the engine's safety
        # gate, not the connector, decides whether emptying a source is plausible.
        return Verdict(True, "header only: no data rows", 0, 0)
    ratio = stats.bad_rows / weighed
    counts = f"{stats.rejects} of {stats.rows} rows rejected"
    if stats.bad_rows > stats.rejects:
        counts += f", spanning {stats.bad_rows - stats.rejects} more unreadable lines"
    counts += f" ({ratio:.1%} bad)"
    if ratio > max_error_ratio:
        return Verdict(
            False,
            f"{counts}: more than max_error_ratio {max_error_ratio:.1%}",
            stats.records,
            stats.rejects,
        )
    reason = f"{counts}: within max_error_ratio {max_error_ratio:.1%}" if stats.rejects else ""
    return Verdict(True, reason, stats.records, stats.rejects)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
