"""``CsvDropConnector``: each complete file in the inbox becomes one ``Batch``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import structlog
from pydantic import BaseModel

from connectors.base import BatchMode, ConnectorState, Item, Verdict
from connectors.csv_drop.config import CsvDropConfig
from connectors.csv_drop.encoding import Scan, checksum, scan_file
from connectors.csv_drop.inbox import Claim, Inbox, InPlace, Note, display_name
from connectors.csv_drop.ledger import (
    IngestLedger,
    JsonLedger,
    LedgerEntry,
    StateLedger,
    ledger_state,
)
from connectors.csv_drop.reader import ReadOptions, ReadStats, read_blocks
from syncd.errors import Problem
from syncd.records import RecordBlock, Reject, flatten

log = structlog.get_logger("connectors.csv_drop")

_State = Literal["new", "reading", "read", "committed", "failed", "released"]

#: What tells a file that is still being written: its size and mtime (ns).
_Identity = tuple[int, int]


class CsvDropConnector:
    """Reads the CSV files procurement systems drop into an inbox folder.

    ``fetch()`` first yields files a crashed run left in ``processing/`` (oldest
    first), then claims the inbox's complete files, oldest first. A file whose exact
    content is that of the last file this connector accepted is not yielded (the
    store holds it already): it goes to ``processed/`` with a ``.duplicate.txt`` note.
    Any other content is yielded, even if an older file carried it: re-sending an
    older snapshot makes it the snapshot again.

    That last content is kept in ``state`` when one is given (syncd gives every
    connector a state in its store): the connector only reads it there, and each
    accepted batch carries the new entry as its ``mark``, for the store to save with
    the batch. Without a state (a connector used on its own) it is kept in the JSON
    ledger ``ledger_file``, written by ``commit()``.
    """

    Config: ClassVar[type[BaseModel]] = CsvDropConfig

    def __init__(
        self, name: str, config: CsvDropConfig, *, state: ConnectorState | None = None
    ) -> None:
        self.name = name
        self.config = config
        self.state = state
        #: Fields whose columns are not read (``skip_fields``).
        self.skipped: frozenset[str] = frozenset()
        self.ledger: IngestLedger
        if state is None:
            self.ledger = JsonLedger(config.ledger_path)
            self.inbox = Inbox(config, ledger_dir=config.ledger_path.parent)
        else:
            self.ledger = StateLedger(state)
            self.inbox = Inbox(config)

    def __repr__(self) -> str:
        return f"CsvDropConnector({self.name!r}, inbox={str(self.config.inbox)!r})"

    def check(self) -> list[Problem]:
        """What would stop a fetch (inbox missing, folders that cannot be made), found
        without touching anything; each problem's location is an option name."""
        return self.inbox.problems()

    def skip_fields(self, fields: frozenset[str]) -> None:
        """Leave the columns of ``fields`` unread (the policy ignores them): their cells
        are neither parsed nor kept. A required field is always read."""
        self.skipped = fields - set(self.config.required_fields) - {"serial_number"}

    def waiting(self) -> list[tuple[str, str]]:
        """The files the last ``fetch()`` or ``peek()`` left for later, and why: ``waiting:
        3 s left (stable_seconds = 5)``, or the content already accepted (a peek)."""
        return [(display_name(path), why) for path, why in self.inbox.waiting]

    def peek(self) -> Iterator[CsvFileBatch]:
        """The batches a ``fetch()`` would take now, read where they lie (a dry run):
        nothing is claimed, moved, noted or remembered, no folder is made, files left in
        ``processing/`` are left to the next fetch, and committing or failing a batch
        does nothing. A file whose content is the last one accepted is not yielded (it
        is in ``waiting()``)."""
        root = self.inbox.open_root()
        listing = self.inbox.scan(root)
        self.inbox.waiting = list(listing.waiting)
        for path in listing.ready:
            batch = self._peek_open(InPlace(root, path.name))
            if batch is not None:
                yield batch

    def _peek_open(self, file: InPlace) -> CsvFileBatch | None:
        if file.kind:
            reason = f"not a regular file: {file.kind}; a run sets it aside unread"
            return PeekedBatch(self, file, Scan("", 0, problem=reason))
        try:
            identity = file.identity()
            summed = checksum(file.open)
            last = self.ledger.last()
            if summed.size and last is not None and last.sha256 == summed.sha256:
                why = f"same content as {last.file}, the last file accepted: nothing new"
                self.inbox.waiting.append((file.path, why))
                return None
            scan = scan_file(
                file.open,
                encoding=self.config.encoding,
                legacy_encoding=self.config.legacy_encoding,
                summed=summed,
            )
        except OSError as exc:
            return PeekedBatch(
                self, file, Scan("", 0, problem=f"cannot read: {exc.strerror or exc}")
            )
        return PeekedBatch(self, file, scan, identity=identity)

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
        if claim.kind:  # a link, a pipe, a device...: never opened, refused as it is
            reason = f"not a regular file: {claim.kind}; set aside unread"
            log.warning(
                "not a regular file, refused unread",
                connector=self.name,
                file=display_name(claim.name),
                kind=claim.kind,
            )
            return CsvFileBatch(self, claim, Scan("", 0, problem=reason))
        identity: _Identity | None = None
        try:
            identity = claim.identity()
            summed = checksum(claim.open)
            # The content the store holds already costs a hash, never a decode or a parse.
            # (A file being written is no one's duplicate.)
            if summed.size and claim.identity() == identity:
                last = self.ledger.last()
                if last is not None and last.sha256 == summed.sha256:
                    self._set_aside_duplicate(claim, last)
                    return None
            scan = scan_file(
                claim.open,
                encoding=config.encoding,
                legacy_encoding=config.legacy_encoding,
                summed=summed,
            )
        except OSError as exc:
            scan = Scan("", 0, problem=f"cannot read: {exc.strerror or exc}")
        return CsvFileBatch(self, claim, scan, identity=identity)

    def _set_aside_duplicate(self, claim: Claim, last: LedgerEntry) -> None:
        shown = display_name(claim.name)
        text = (
            f"{shown}: same content (sha256 {last.sha256}) as the last file accepted,\n"
            f"{last.file}, ingested at {last.at}"
            f"{f' and stored as {last.stored_as}' if last.stored_as else ''}.\n"
            "Not applied again: the store holds this content already.\n"
        )
        final = self.inbox.settle(claim, self.inbox.processed, Note(".duplicate.txt", text))
        log.info(
            "duplicate file skipped",
            connector=self.name,
            file=shown,
            same_as=last.file,
            moved_to=display_name(final),
        )


class CsvFileBatch:
    """One claimed file. ``items()`` streams it; ``commit()``/``fail()`` set it down.

    Beyond the ``Batch`` protocol: ``mark`` (``MarkedBatch``: the connector state to
    store with the batch), ``path`` (where the file is now), ``checksum``,
    ``encoding``, ``delimiter``, ``recovered`` (it was left by a crashed run), and
    ``release()`` (give the file back untouched: a later fetch offers it again).

    ``origin`` and every location are the file's ``display_name``: a name that is not
    UTF-8 is shown with ``\\xNN`` escapes, so it can be stored, logged and printed.

    A file whose size or mtime changed between the start and the end of reading (a
    writer still at work) is not accepted, and ``fail()`` returns it to the inbox,
    where it is taken again once complete, instead of moving it to ``failed/``.
    """

    def __init__(
        self,
        connector: CsvDropConnector,
        claim: Claim,
        scan: Scan,
        *,
        identity: _Identity | None = None,
    ) -> None:
        config = connector.config
        self.origin = display_name(config.inbox / claim.name)
        self.mode: BatchMode = config.mode
        self.checksum = scan.sha256
        self.encoding = scan.encoding
        self.recovered = claim.recovered
        self._connector = connector
        self._claim = claim
        self._shown = display_name(claim.name)
        self._scan = scan
        self._identity = identity
        self._changed = ""
        self._stats = ReadStats()
        self._state: _State = "new"
        self._verdict: Verdict | None = None
        self._final: Path | None = None
        self._entry: LedgerEntry | None = None

    def __repr__(self) -> str:
        return f"CsvFileBatch({self.origin!r}, mode={self.mode!r}, state={self._state!r})"

    @property
    def path(self) -> Path:
        """Where the file is now: in ``processing/`` until set down, then its final place."""
        return self._final or self._claim.path

    @property
    def stored_at(self) -> str | None:
        """Where the file lies once set down (``processed/`` or ``failed/``, as people
        read the name), ``None`` before: the place a reject's file:line is found again."""
        return None if self._final is None else display_name(self._final)

    @property
    def delimiter(self) -> str:
        """The delimiter used (sniffed or configured); empty before the header is read."""
        return self._stats.delimiter

    def items(self) -> Iterator[Item]:
        """Stream the file's records and rejects (once)."""
        return flatten(self.blocks())

    def blocks(self) -> Iterator[Item | RecordBlock]:
        """``items()`` with the plain rows in ``RecordBlock``s (``BlockBatch``): what the
        store stages without a ``DeviceRecord`` per row. Read once, like ``items()``."""
        if self._state != "new":
            raise RuntimeError(f"{self!r}: items() can be read once")
        self._state = "reading"
        return self._stream()

    def _stream(self) -> Iterator[Item | RecordBlock]:
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
            skipped=self._connector.skipped,
        )
        spool = None
        try:
            for item in read_blocks(
                self._claim.open, encoding=self._scan.encoding, options=options, stats=self._stats
            ):
                if type(item) is Reject:
                    if spool is None:
                        spool = self._claim.spool_writer()
                    line = item.location.rpartition(":")[2]
                    spool.write(f"line {line}: {item.reason}\n")
                yield item
        finally:
            if spool is not None:
                spool.close()
        self._finish_reading()

    def _finish_reading(self) -> None:
        self._changed = self._change_while_read()
        self._verdict = judge(
            self._stats,
            self._scan,
            self._connector.config.max_error_ratio,
            changed=self._changed,
        )
        self._state = "read"

    def _change_while_read(self) -> str:
        """How the file changed since before it was scanned ("" if it did not)."""
        before = self._identity
        if before is None:
            return ""
        try:
            after = self._claim.identity()
        except OSError:
            return ""  # gone or unreadable: setting it down will say so
        if after == before:
            return ""
        if after[0] != before[0]:
            return f"its size went from {before[0]} to {after[0]} bytes"
        return "it was modified"

    @property
    def verdict(self) -> Verdict:
        """Whether the file may be used; until ``items()`` is exhausted, not accepted."""
        if self._verdict is None:
            return Verdict(False, "not read yet: items() is not exhausted")
        return self._verdict

    @property
    def mark(self) -> dict[str, Any] | None:
        """With a connector state (``MarkedBatch``): the state once this batch is stored,
        naming its content as the last accepted, for the caller to save with the batch.
        ``None`` without a state (``commit()`` writes the JSON ledger then), or until the
        file is read and accepted."""
        if self._connector.state is None or self._state != "read" or not self.verdict.accepted:
            return None
        return ledger_state(self._ledger_entry())

    def commit(self) -> None:
        """Move the file to ``processed/`` (with ``.report.txt`` if rows were rejected).
        Only an accepted batch can be committed.

        With a connector state, the content was remembered by the store, with the batch
        (``mark``). Without one, the JSON ledger is written first: if that fails, the
        file stays claimed and is read again later (the store takes it again
        unchanged), whereas a ledger left naming an older content could wrongly skip
        that content when it is sent again. A report that cannot be written is logged;
        a file that cannot be moved raises ``OSError`` (the content is remembered, so
        the next fetch sets it aside as a duplicate).
        """
        if self._state == "committed":
            return
        verdict = self.verdict
        if not verdict.accepted:
            raise RuntimeError(f"{self!r} cannot be committed: {verdict.reason}")
        if self._state != "read":
            raise RuntimeError(f"{self!r} cannot be committed once {self._state}")
        connector = self._connector
        inbox = connector.inbox
        own_ledger = connector.state is None
        note = None
        if verdict.rejects:
            note = Note(".report.txt", self._report_head(None), append_spool=True)
        try:
            if own_ledger:
                connector.ledger.record(self._ledger_entry())
            self._final = inbox.settle(self._claim, inbox.processed, note)
        except BaseException:
            self.release()
            raise
        self._state = "committed"
        stored_as = display_name(self._final)
        entry = self._ledger_entry()
        if own_ledger and stored_as != entry.stored_as:
            # The name was taken: a timestamped one was used.
            try:
                connector.ledger.record(dataclasses.replace(entry, stored_as=stored_as))
            except (OSError, ValueError) as exc:
                log.error("cannot update the ingest ledger", file=self._shown, error=str(exc))
        log.info(
            "file processed",
            connector=connector.name,
            file=self._shown,
            records=verdict.records,
            rejects=verdict.rejects,
            moved_to=stored_as,
        )

    def _ledger_entry(self) -> LedgerEntry:
        """This file as the last accepted content (made once: a mark and the ledger agree).
        Where a mark says it is stored is left empty: the file moves only afterwards,
        perhaps under a timestamped name."""
        if self._entry is None:
            inbox = self._connector.inbox
            planned = inbox.processed / self._claim.name
            self._entry = LedgerEntry(
                sha256=self.checksum,
                file=self._shown,
                stored_as=display_name(planned) if self._connector.state is None else "",
                at=_now(),
                records=self.verdict.records,
            )
        return self._entry

    def fail(self, reason: str) -> None:
        """Move the file to ``failed/`` with ``.error.txt``: ``reason`` and every bad row.

        A file that was still being written goes back to the inbox instead, without a
        note, to be taken again once complete. ``fail()`` is called on error paths, so
        it does not raise for the file system: if the file cannot be moved, that is
        logged and the file is left claimed but unlocked (the next fetch offers it again).
        """
        if self._state in ("committed", "failed"):
            return
        inbox = self._connector.inbox
        returned = bool(self._changed)
        try:
            if returned:
                self._final = inbox.settle(self._claim, inbox.root)
            else:
                note = Note(".error.txt", self._report_head(reason), append_spool=True)
                self._final = inbox.settle(self._claim, inbox.failed, note)
        except OSError as exc:
            self.release()
            log.error(
                "cannot set a failed file aside; it stays in processing",
                connector=self._connector.name,
                file=self._shown,
                reason=reason,
                error=str(exc),
            )
            return
        self._state = "failed"
        log.warning(
            "file returned to the inbox: still being written" if returned else "file failed",
            connector=self._connector.name,
            file=self._shown,
            reason=reason,
            moved_to=display_name(self._final),
        )

    def release(self) -> None:
        """Leave the file claimed but unlocked: the next ``fetch()`` offers it again."""
        if self._state not in ("committed", "failed"):
            self._claim.lock.release()
            self._state = "released"

    def _report_head(self, reason: str | None) -> str:
        stats = self._stats
        lines = [
            f"file: {self._shown} (dropped as {self.origin})",
            f"connector: {self._connector.name} ({self.mode})",
            f"at: {_now()}",
        ]
        if self.checksum:  # none for an entry that was never read
            lines.append(f"sha256: {self.checksum}")
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


class PeekedBatch(CsvFileBatch):
    """A file read where it lies (``CsvDropConnector.peek``): read like any batch, but
    setting it down does nothing (the file stays in the inbox, unclaimed, for a run)."""

    def __init__(
        self,
        connector: CsvDropConnector,
        file: InPlace,
        scan: Scan,
        *,
        identity: _Identity | None = None,
    ) -> None:
        # InPlace offers what a batch reads through a claim; it is never set down.
        super().__init__(connector, cast(Claim, file), scan, identity=identity)

    @property
    def mark(self) -> dict[str, Any] | None:
        """Nothing to remember: a dry run accepts nothing."""
        return None

    @property
    def stored_at(self) -> str | None:
        """Where the file lies: in the inbox still."""
        return None

    def commit(self) -> None:
        """Nothing: the file stays where it was dropped."""

    def fail(self, reason: str) -> None:
        """Nothing: the file stays where it was dropped."""

    def release(self) -> None:
        """Nothing: it was never claimed."""


def judge(stats: ReadStats, scan: Scan, max_error_ratio: float, *, changed: str = "") -> Verdict:
    """The verdict on a file read into ``stats``; ``changed`` says how the file changed
    while it was read (then nothing else about it counts: it was read incomplete)."""
    if changed:
        return Verdict(
            False,
            f"still being written: {changed} while it was read; "
            "it goes back to the inbox and is taken again once complete",
            stats.records,
            stats.rejects,
        )
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
