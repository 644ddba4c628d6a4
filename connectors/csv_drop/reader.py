"""Reading one CSV file into records and rejects, streamed row by row.

Decisions a user sees (also in the package docstring):

- Line numbers are physical: the line a row starts on, counting blank lines and the
  lines inside quoted multi-line fields.
- Blank lines, and rows whose every cell is empty, carry nothing and are skipped.
- An empty cell says nothing (``None``); with ``empty_cells = "clear"`` it clears the
  optional text fields (IP, MAC, location, description, firmware) instead.
- Values are trimmed; the serial is otherwise untouched (its case is the engine's policy).
- A row with fewer fields than the header is rejected (a truncated row); extra fields
  are tolerated only when empty (a trailing delimiter).
- A row with any bad value is rejected whole, with every problem named.
- Control characters (C0, DEL, C1: NUL, ESC, a lone carriage return...) are refused
  in every cell that is kept, named escaped (``\\x00``): the inventory API refuses
  NUL, and the others could reach a terminal through a report. Only the free-text
  ``description`` and the unmapped (``extra``) columns may hold tabs and line breaks
  (a spreadsheet cell with several lines). The serial must be printable throughout
  (no tab, no-break or zero-width space either). Other Unicode is welcome.
- ``serial_number`` and ``name`` longer than 255 characters are refused: the
  inventory API's limit for both.
- A ``delete`` row needs only its serial; its other cells are not read.
- Duplicate serials are all yielded: the engine reports them as a conflict.
- Memory stays bounded whatever the file: a physical line of ``MAX_LINE`` characters
  or more is never held whole. It is skipped to its end and rejected as one bad row
  (as the header, it makes the file unusable); a quoted field left open when it
  comes is rejected with the lines it spanned, and reading starts afresh after it.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import itertools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.base import BatchMode, Item
from connectors.csv_drop import columnar
from connectors.csv_drop.controls import CONTROL, escaped, find_control
from connectors.csv_drop.encoding import Opener
from connectors.csv_drop.fastrow import FastRow
from connectors.csv_drop.header import (
    PATH_FIELD,
    HeaderError,
    HeaderPlan,
    join_path,
    plan_header,
)
from connectors.csv_drop.values import parse_action, parse_ip, parse_mac, parse_status
from syncd.records import Action, DeviceRecord, RecordBlock, Reject, flatten

#: Delimiters ``auto`` chooses from, in order of preference on a tie.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")

#: Plain text fields, copied as they are (trimmed).
TEXT_FIELDS: tuple[str, ...] = (
    "name",
    "device_type",
    "organization",
    "location",
    "description",
    "firmware_version",
)

#: Fields an empty cell clears under ``empty_cells = "clear"``; the others are needed
#: to create a device (name, type, organization) or have no empty value (status).
CLEARABLE: frozenset[str] = frozenset(
    {"ip_address", "mac_address", "location", "description", "firmware_version"}
)

_TYPED: tuple[tuple[str, Callable[[str], Any]], ...] = (
    ("ip_address", parse_ip),
    ("mac_address", parse_mac),
    ("status", parse_status),
)

#: The inventory API's length limit for these fields (characters, after trimming).
MAX_LENGTHS: Mapping[str, int] = {"serial_number": 255, "name": 255}

_QUOTED = re.compile(r'"[^"]*"')

#: Fields whose cells may span lines (and hold tabs).
MULTILINE_FIELDS: frozenset[str] = frozenset({"description"})

#: The longest physical line read (characters): a longer one is skipped without being
#: kept, so a file with no line breaks, a binary file or a runaway field costs no memory.
MAX_LINE = 1 << 20

#: Plain rows take ``FastRow`` (tests switch it off to compare it with the full path).
FAST_ROWS = True


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How to read a file, from the connector's config."""

    source: str
    label: str
    mode: BatchMode = "snapshot"
    delimiter: str = "auto"
    columns: Mapping[str, str] = dataclasses.field(default_factory=dict)
    required: tuple[str, ...] = ("serial_number",)
    clear_empty: bool = False
    #: Fields whose columns are not read (the policy ignores them): like ``"ignore"``.
    skipped: frozenset[str] = frozenset()


@dataclass(slots=True)
class ReadStats:
    """Counts kept while reading; ``problem`` set means the whole file is unusable.

    ``bad_rows`` weighs each reject by the physical lines it made unreadable, so an
    unbalanced quote that swallows a thousand lines counts as a thousand bad rows.
    """

    records: int = 0
    rejects: int = 0
    bad_rows: int = 0
    blank: int = 0
    header_line: int = 0
    delimiter: str = ""
    problem: str = ""

    @property
    def rows(self) -> int:
        """Data rows read (records and rejects)."""
        return self.records + self.rejects


def sniff_delimiter(line: str) -> str:
    """The delimiter the header line uses most (outside quotes); ``,`` if none."""
    bare = _QUOTED.sub("", line)
    best = max(DELIMITERS, key=bare.count)
    return best if bare.count(best) else ","


def read_items(
    open_file: Opener, *, encoding: str, options: ReadOptions, stats: ReadStats
) -> Iterator[Item]:
    """Stream the file's rows as records and rejects, filling ``stats`` as it goes."""
    return flatten(read_blocks(open_file, encoding=encoding, options=options, stats=stats))


def read_blocks(
    open_file: Opener, *, encoding: str, options: ReadOptions, stats: ReadStats
) -> Iterator[Item | RecordBlock]:
    """``read_items``, with the plain rows of a plain UTF-8 file as ``RecordBlock``s
    (the columnar path, ``columnar``) where it can take them."""
    with open_file() as raw, io.TextIOWrapper(raw, encoding=encoding, newline="") as text:
        try:
            yield from _read(text, options, stats, _Source(open_file, encoding))
        except UnicodeDecodeError as exc:
            # The encoding was checked over the whole file before: it changed since.
            stats.problem = f"file changed while being read ({exc.reason} at byte {exc.start})"


@dataclass(frozen=True, slots=True)
class _Source:
    """What the columnar path needs to open the file again: its opener and encoding."""

    open_file: Opener
    encoding: str


class _Lines:
    """The physical lines of ``text``, as ``csv.reader`` takes them, each read with at
    most ``limit`` characters in memory.

    Iteration stops at the end of the file or at a line of ``limit`` characters or
    more, which is skipped to its end and noted in ``overlong`` as ``(line, length)``;
    ``resume()`` goes on after it. ``number`` counts the lines read (universal line
    ends: ``\\n``, ``\\r\\n``, a lone ``\\r``, as ``csv`` counts them).
    """

    def __init__(self, text: io.TextIOWrapper, limit: int) -> None:
        self._text = text
        self.limit = limit
        self.number = 0
        self.overlong: tuple[int, int] | None = None
        self._pending: str | None = None

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.overlong is not None:
            raise StopIteration
        line = self._next_piece()
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) < self.limit or line.endswith("\n"):
            return line
        self.overlong = (self.number, self._skip_rest(line))
        raise StopIteration

    def resume(self) -> None:
        """Go on after the over-long line."""
        self.overlong = None

    def _next_piece(self) -> str:
        if self._pending is not None:
            piece, self._pending = self._pending, None
            return piece
        return self._text.readline(self.limit)

    def _skip_rest(self, start: str) -> int:
        """Read past the rest of the line ``start`` begins; returns its whole length."""
        length, last = len(start), start[-1]
        while piece := self._next_piece():
            if last == "\r":  # a CR-LF cut in two, or a line that ended with a lone CR
                if piece == "\n":
                    return length + 1
                self._pending = piece
                return length
            length += len(piece)
            if piece.endswith("\n") or len(piece) < self.limit:
                return length
            last = piece[-1]
        return length


def _overlong(length: int) -> str:
    return (
        f"the line is {length} characters long, more than the {MAX_LINE} a row may have "
        "(a file without line breaks, or not a text file?)"
    )


def _read(
    text: io.TextIOWrapper, options: ReadOptions, stats: ReadStats, source: _Source
) -> Iterator[Item | RecordBlock]:
    lines = _Lines(text, MAX_LINE)
    leading: list[str] = []
    for line in lines:
        leading.append(line)
        if line.strip():
            break
    else:
        if lines.overlong is not None:
            number, length = lines.overlong
            stats.problem = f"header (line {number}) unreadable: {_overlong(length)}"
        else:
            stats.problem = "empty file: no header line"
        return
    delimiter = options.delimiter
    if delimiter == "auto":
        delimiter = sniff_delimiter(leading[-1])
    stats.delimiter = delimiter
    reader = _CsvReader(itertools.chain(leading, lines), delimiter, base=0)
    plan = _header(reader, options, stats, lines)
    if plan is None:
        return
    convert = RowConverter(plan, options)
    if _columnar_can_read(source, plan, stats=stats, leading=leading, lines=lines, reader=reader):
        yield from _read_columnar(
            source, convert, options=options, stats=stats, delimiter=delimiter, leading=leading
        )
        return
    yield from _rest(
        reader, convert, options=options, stats=stats, lines=lines, delimiter=delimiter
    )


def _rest(
    reader: _CsvReader,
    convert: RowConverter,
    *,
    options: ReadOptions,
    stats: ReadStats,
    lines: _Lines,
    delimiter: str,
) -> Iterator[Item]:
    """Every row ``reader`` has left, by the row path."""
    while True:
        yield from _rows(reader, convert, options, stats, lines)
        if lines.overlong is None:
            return
        # Reading goes on after an over-long line, with a fresh reader (no open quote).
        number, length = lines.overlong
        stats.rejects += 1
        stats.bad_rows += 1
        yield Reject(options.source, f"{options.label}:{number}", _overlong(length))
        lines.resume()
        reader = _CsvReader(lines, delimiter, base=number)


def _columnar_can_read(
    source: _Source,
    plan: HeaderPlan,
    *,
    stats: ReadStats,
    leading: list[str],
    lines: _Lines,
    reader: _CsvReader,
) -> bool:
    """Whether the columnar path can read the data rows: a UTF-8 file whose header is
    its first non-blank line, whole on that line, whose extra columns have distinct
    names (each keys a value in ``DeviceRecord.extra``), and whose location is one
    column (the parts of a path are joined by the row path)."""
    if not columnar.COLUMNAR or source.encoding not in ("utf-8", "utf-8-sig") or plan.path:
        return False
    one_line = stats.header_line == len(leading) == lines.number == reader.line_num
    names = [name for _index, name in plan.extra]
    if not one_line or lines.overlong is not None or len(set(names)) != len(names):
        return False
    try:
        import pyarrow  # noqa: F401
    except ImportError:  # pragma: no cover - a dependency; the row path reads anyway
        return False
    return True


def _read_columnar(
    source: _Source,
    convert: RowConverter,
    *,
    options: ReadOptions,
    stats: ReadStats,
    delimiter: str,
    leading: list[str],
) -> Iterator[Item | RecordBlock]:
    """The data rows by the columnar path, from the line after the header."""
    with source.open_file() as raw:
        bom = len(codecs.BOM_UTF8) if raw.read(3) == codecs.BOM_UTF8 else 0
        if source.encoding == "utf-8":
            bom = 0  # plain UTF-8 reads a BOM as text (it is in the header then)
        offset = bom + len("".join(leading).encode("utf-8"))

        def resume(start: int, line: int) -> Iterator[Item]:
            """The rest of the file by the row path, from ``start`` (line ``line``)."""
            with source.open_file() as again:
                again.seek(start)
                text = io.TextIOWrapper(again, encoding="utf-8", newline="")
                lines = _Lines(text, MAX_LINE)
                lines.number = line - 1
                reader = _CsvReader(lines, delimiter, base=line - 1)
                yield from _rest(
                    reader, convert, options=options, stats=stats, lines=lines, delimiter=delimiter
                )

        reading = columnar.ColumnarReader(
            convert,
            options,
            stats,
            delimiter=delimiter,
            extra_names=[name for _index, name in convert.extra],
            line_limit=MAX_LINE,
        )
        yield from reading.read(raw, offset, stats.header_line + 1, resume)


class _CsvReader:
    """``csv.reader`` over physical lines, numbering them from ``base + 1``."""

    def __init__(self, source: Iterator[str], delimiter: str, base: int) -> None:
        self.base = base
        self._reader = csv.reader(
            source,
            delimiter=delimiter,
            quotechar='"',
            doublequote=True,
            skipinitialspace=True,
            strict=True,
        )

    def __iter__(self) -> _CsvReader:
        return self

    def __next__(self) -> list[str]:
        return next(self._reader)

    @property
    def line_num(self) -> int:
        """The physical lines read so far, over the whole file."""
        return self.base + self._reader.line_num


def _rows(
    reader: _CsvReader,
    convert: RowConverter,
    options: ReadOptions,
    stats: ReadStats,
    lines: _Lines,
) -> Iterator[Item]:
    """The rows of ``reader`` as items, until its lines run out."""
    source, label = options.source, options.label
    previous = reader.line_num
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            start, end = previous + 1, max(reader.line_num, previous + 1)
            previous = reader.line_num
            stats.rejects += 1
            stats.bad_rows += end - start + 1
            cut = lines.overlong[0] if lines.overlong is not None else None
            yield Reject(source, f"{label}:{start}", _csv_problem(str(exc), start, end, cut))
            continue
        start = previous + 1
        previous = reader.line_num
        if not row:
            stats.blank += 1
            continue
        item = convert(row, start)
        if item is None:
            stats.blank += 1
        elif type(item) is DeviceRecord:
            stats.records += 1
            yield item
        else:
            stats.rejects += 1
            stats.bad_rows += 1
            yield item


def _header(
    reader: _CsvReader, options: ReadOptions, stats: ReadStats, lines: _Lines
) -> HeaderPlan | None:
    while True:
        start = reader.line_num + 1
        try:
            header = next(reader)
        except StopIteration:
            stats.problem = "empty file: no header line"
            if lines.overlong is not None:
                stats.problem = f"header (line {start}) unreadable: {_overlong(lines.overlong[1])}"
            return None
        except csv.Error as exc:
            stats.problem = f"header (line {start}) unreadable: {exc}"
            return None
        if any(cell.strip() for cell in header):
            break
    stats.header_line = start
    required = options.required
    try:
        plan = plan_header(
            header, columns=options.columns, required=required, skipped=options.skipped
        )
    except HeaderError as exc:
        stats.problem = f"header (line {start}): {exc}"
        return None
    if options.mode == "delta" and "action" not in plan.fields:
        found = ", ".join(repr(label) for label in plan.labels)
        stats.problem = (
            f"header (line {start}): delta mode needs an action column "
            f"(upsert or delete on each row); headers found: {found}"
        )
        return None
    return plan


def _csv_problem(message: str, start: int, end: int, cut: int | None = None) -> str:
    if message == "unexpected end of data" and cut is not None:
        what = f"a quoted field runs into line {cut}, which is too long to read"
    elif message == "unexpected end of data":
        what = "unterminated quoted field (the file ends inside quotes)"
    elif message.startswith("field larger than field limit"):
        what = f"{message} (an unbalanced quote?)"
    else:
        what = f"malformed quoting: {message}"
    if end > start:
        return f"lines {start}-{end} unreadable: {what}"
    return what


def _show(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:57] + "...")


def _text_problem(column: str, cell: str, multiline: bool, limit: int | None) -> str:
    """Why a text cell is refused (a control character, too long), or ``""``."""
    found = find_control(cell, multiline=multiline)
    if found is not None:
        position, char = found
        return f"{column}: {_show(cell)} contains control character {char} at position {position}"
    if limit is not None and len(cell) > limit:
        return (
            f"{column}: {_show(cell)} is {len(cell)} characters long, "
            f"more than the inventory API's limit of {limit}"
        )
    return ""


def _serial_problem(column: str, serial: str) -> str:
    if serial.isprintable():
        return _text_problem(column, serial, False, MAX_LENGTHS["serial_number"])
    position, bad = next((i, ch) for i, ch in enumerate(serial, 1) if not ch.isprintable())
    kind = "control" if CONTROL.match(bad) else "non-printable"
    return (
        f"{column}: {_show(serial)} contains {kind} character {escaped(bad)} at position {position}"
    )


class RowConverter:
    """Turns one row (a list of cells) into a record, a reject, or ``None`` if blank."""

    def __init__(self, plan: HeaderPlan, options: ReadOptions) -> None:
        fields = plan.fields
        labels = plan.labels
        self.source = options.source
        self.label = options.label
        self.width = plan.width
        self.delta = options.mode == "delta"
        self.serial = fields["serial_number"]
        self.serial_label = _column(labels, fields, "serial_number")
        clear = options.clear_empty
        self.texts = tuple(
            (
                fields[f],
                f,
                clear and f in CLEARABLE,
                _column(labels, fields, f, plan.path),
                f in MULTILINE_FIELDS,
                MAX_LENGTHS.get(f),
            )
            for f in TEXT_FIELDS
            if f in fields
        )
        self.typed = tuple(
            (fields[f], f, parse, _column(labels, fields, f), clear and f in CLEARABLE)
            for f, parse in _TYPED
            if f in fields
        )
        self.action = fields.get("action")
        self.action_label = _column(labels, fields, "action") if self.action is not None else ""
        self.required = tuple(
            (fields[f], _column(labels, fields, f, plan.path))
            for f in options.required
            if f not in ("serial_number", "action")
        )
        self.extra = plan.extra
        self.path = plan.path
        self.fast = FastRow(self, MAX_LENGTHS["serial_number"]) if FAST_ROWS else None

    def __call__(  # noqa: PLR0911 - one return per outcome; this is the hot path
        self, row: list[str], line: int
    ) -> DeviceRecord | Reject | None:
        """The row starting on physical line ``line``, converted."""
        if self.path and len(row) >= self.width:
            row = join_path(row, self.path)
        if self.fast is not None:
            record = self.fast(row, line)
            if record is not None:
                return record
        origin = f"{self.label}:{line}"
        if len(row) != self.width:
            if not any(cell.strip() for cell in row):
                return None
            problem = self._width_problem(row)
            if problem:
                return Reject(self.source, origin, problem, self._serial_if_any(row))
        serial = row[self.serial].strip()
        if not serial:
            if not any(cell.strip() for cell in row):
                return None
            return Reject(self.source, origin, f"{self.serial_label} is empty")
        problems: list[str] = []
        if not serial.isprintable() or len(serial) > MAX_LENGTHS["serial_number"]:
            problems.append(_serial_problem(self.serial_label, serial))
        action: Action = "upsert"
        if self.action is not None:
            action = self._action(row[self.action].strip(), problems)
        if action == "delete" and not problems:
            return DeviceRecord(
                source=self.source,
                serial_number=serial,
                origin=origin,
                wanted=False,
                action="delete",
            )
        values = self._values(row, problems)
        if problems:
            return Reject(self.source, origin, "; ".join(problems), serial)
        return DeviceRecord(source=self.source, serial_number=serial, origin=origin, **values)

    def _action(self, cell: str, problems: list[str]) -> Action:
        if cell:
            try:
                return parse_action(cell)
            except ValueError as exc:
                problems.append(f"{self.action_label}: {_show(cell)} is {exc}")
        elif self.delta:
            problems.append(f"{self.action_label} is empty (delta rows need upsert or delete)")
        return "upsert"

    def _values(self, row: list[str], problems: list[str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for index, name, clear, column, multiline, limit in self.texts:
            cell = row[index].strip()
            if cell:
                # isprintable() is the fast path: most cells pass it and need no more.
                fits = limit is None or len(cell) <= limit
                problem = (
                    ""
                    if fits and cell.isprintable()
                    else _text_problem(column, cell, multiline, limit)
                )
                if problem:
                    problems.append(problem)
                else:
                    values[name] = cell
            elif clear:
                values[name] = ""
        for index, name, parse, column, clear in self.typed:
            cell = row[index].strip()
            if cell:
                try:
                    values[name] = parse(cell)
                except ValueError as exc:
                    problems.append(f"{column}: {_show(cell)} is {exc}")
            elif clear:
                values[name] = ""
        for index, column in self.required:
            if not row[index].strip():
                problems.append(f"{column} is required but empty")
        if self.extra:
            values["extra"] = self._extra(row, problems)
        return values

    def _extra(self, row: list[str], problems: list[str]) -> tuple[tuple[str, str], ...]:
        extra = tuple((name, cell) for index, name in self.extra if (cell := row[index].strip()))
        for name, cell in extra:
            if not cell.isprintable():
                problem = _text_problem(f"column {name!r}", cell, True, None)
                if problem:
                    problems.append(problem)
        return extra

    def _width_problem(self, row: list[str]) -> str:
        found, width = len(row), self.width
        if found < width:
            return f"row has {found} fields, the header has {width} (truncated row?)"
        if any(cell.strip() for cell in row[width:]):
            return f"row has {found} fields, the header has {width}"
        return ""  # only empty cells past the header: a trailing delimiter

    def _serial_if_any(self, row: list[str]) -> str | None:
        if self.serial < len(row):
            return row[self.serial].strip() or None
        return None


def _column(
    labels: tuple[str, ...], fields: Mapping[str, int], field: str, path: tuple[int, ...] = ()
) -> str:
    if field == PATH_FIELD and path:
        return f"columns {' + '.join(repr(labels[i]) for i in path)} ({field})"
    label = labels[fields[field]]
    return f"column {label!r}" if label == field else f"column {label!r} ({field})"
