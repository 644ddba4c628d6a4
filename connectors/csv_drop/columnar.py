"""The columnar path: a plain UTF-8 file read a block of lines at a time with pyarrow.

The row path (``RowConverter``, with ``FastRow`` for plain rows) spends a few
microseconds of Python on every row; at a million rows that is most of an ingest. This
path reads the same file in blocks of whole lines (``BLOCK_BYTES``), checks whole
columns at once with pyarrow's compute functions, and hands the store a
``RecordBlock`` (serials, origins, payload bytes) instead of a ``DeviceRecord`` per
row. It is a shortcut, never a second set of rules: whatever it cannot decide exactly
goes to the row path, so the records, rejects, line numbers and counts are the row
path's (a test reads the corpus and the fuzz generators' files both ways).

What it decides itself, per line of a block:

- a line is *simple* when it is printable ASCII throughout (a trailing CR of a CR-LF
  aside), has exactly the header's number of fields, and every field is either unquoted
  (no quote in it) or quoted whole (``"..."``, doubled quotes inside): then it is one
  row, read the same by ``csv`` and by pyarrow, its values trimmed of spaces only (the
  only whitespace printable ASCII has);
- a simple row becomes a record when every value passes as ``FastRow`` would pass it:
  a serial of 1 to 255 characters, a name within 255, a known action and status word,
  an IPv4 address already canonical, a MAC address in one of the four accepted forms
  (put into canonical form here), the required cells filled.

Everything else (a blank line, non-ASCII text, a tab or control character, odd
quoting, a bad value) is read by the row path from that line's text, one line at a
time: within a block, no row spans lines. Where that cannot be known the rest of the
file is handed to the row path whole, from the start of the block, with its line
numbering: a line that opens a quoted field it does not close, a lone carriage
return, a line too long for ``csv``'s field limit or for ``MAX_LINE``.

pyarrow is imported on the first columnar read, not with the connector.
"""

from __future__ import annotations

import csv
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Final

from connectors.csv_drop.values import ACTION_WORDS, STATUS_WORDS
from syncd.canonical import IPV4
from syncd.records import RECORD_FIELDS, DeviceRecord, RecordBlock, Reject

if TYPE_CHECKING:
    from connectors.csv_drop.reader import ReadOptions, ReadStats, RowConverter

#: Bytes read per block (whole lines: a block ends at its last line break). A block's
#: rows live as Python objects until the store has them: 512 KiB keeps a file of short
#: rows within the reader's memory budget (tests/fuzz/test_memory.py); bigger blocks
#: save little time (4 MiB: about 10 % of the read).
BLOCK_BYTES: Final = 512 << 10
#: The columnar path is taken where it can be (tests switch it off to compare).
COLUMNAR = True

_SERIAL_LIMIT = 255
_PRINTABLE = frozenset(range(0x20, 0x7F))
_MAC_FORMS = (
    r"^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$",
    r"^[0-9a-f]{2}(?:-[0-9a-f]{2}){5}$",
    r"^[0-9a-f]{4}\.[0-9a-f]{4}\.[0-9a-f]{4}$",
    r"^[0-9a-f]{12}$",
)
_MAC_ANY = "|".join(_MAC_FORMS)
_IPV4 = "^" + IPV4.pattern + "$"

Emitted = DeviceRecord | Reject | RecordBlock
#: Reads the rest of the file by the row path, from ``(byte offset, first line number)``.
Resume = Callable[[int, int], Iterator[DeviceRecord | Reject]]


class _Switch(Exception):  # noqa: N818 - a signal, not an error
    """Internal: this block needs the row path, from its start to the end of the file."""


def _char_class(allowed: Sequence[int]) -> str:
    return "[" + "".join(f"\\x{c:02x}" for c in sorted(allowed)) + "]"


def simple_line_pattern(delimiter: str, width: int) -> str:
    """The RE2 pattern of a simple line (see the module docstring)."""
    delim = ord(delimiter)
    bare = _char_class([c for c in _PRINTABLE if c not in (delim, 0x22)])
    inner = _char_class([c for c in _PRINTABLE if c != 0x22])
    field = f'(?:{bare}*|"(?:{inner}|"")*")'
    sep = f"\\x{delim:02x}"
    return f"^{field}(?:{sep}{field}){{{width - 1}}}\\r?$"


class ColumnarReader:
    """Reads the data lines of one file (after its one-line header) into blocks, rejects
    and records, filling ``stats`` as the row path would."""

    def __init__(
        self,
        convert: RowConverter,
        options: ReadOptions,
        stats: ReadStats,
        *,
        delimiter: str,
        extra_names: Sequence[str],
        line_limit: int,
    ) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pcsv

        # The C library's allocator gives a file's freed blocks back to the system; the
        # one pyarrow bundles keeps them for the life of the process (a daemon's).
        pa.set_memory_pool(pa.system_memory_pool())
        self.pa, self.pc, self.pcsv = pa, pc, pcsv
        self.convert = convert
        self.options = options
        self.stats = stats
        self.delimiter = delimiter
        self.width = convert.width
        self.line_limit = min(line_limit, csv.field_size_limit())
        self.pattern = simple_line_pattern(delimiter, self.width)
        names = [f"c{i}" for i in range(self.width)]
        self.read_options = pcsv.ReadOptions(column_names=names, use_threads=False)
        self.parse_options = pcsv.ParseOptions(
            delimiter=delimiter,
            quote_char='"',
            double_quote=True,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=False,
        )
        self.convert_options = pcsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,
        )
        # The extra columns in the order ``DeviceRecord.payload`` sorts their pairs
        # (their names are distinct: the caller checked), with each name's JSON once.
        self.extra = sorted(
            ((name, index) for index, name in convert.extra), key=lambda pair: pair[0]
        )
        import orjson

        self.extra_json = {name: orjson.dumps(name).decode() for name in extra_names}
        self.extra_order = tuple(extra_names)
        self.escapes = True

    # -- the file ----------------------------------------------------------------------------

    def read(self, raw: BinaryIO, offset: int, line: int, resume: Resume) -> Iterator[Emitted]:
        """Everything from byte ``offset`` (physical line ``line``) to the end of the file."""
        for start, first, block in _blocks(raw, offset, line):
            if block is None:
                yield from resume(start, first)
                return
            stats = self.stats
            counts = (stats.records, stats.rejects, stats.bad_rows, stats.blank)
            try:
                items = self._block(block, first)
            except _Switch:  # nothing of the block was given out: its counts go back
                stats.records, stats.rejects, stats.bad_rows, stats.blank = counts
                yield from resume(start, first)
                return
            yield from items

    # -- one block ---------------------------------------------------------------------------

    def _block(self, block: bytes, first: int) -> list[Emitted]:
        """The block's items in line order; ``_Switch`` if the row path must take it."""
        pa, pc = self.pa, self.pc
        if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
            raise _Switch  # a lone carriage return ends a line for csv, not here
        # A value of a simple row holds a quote only as a doubled one in the file.
        self.escapes = b"\\" in block or b'""' in block
        text = pa.Array.from_buffers(
            pa.string(),
            1,
            [None, pa.py_buffer(struct.pack("<ii", 0, len(block))), pa.py_buffer(block)],
        )
        lines = pc.split_pattern(text, "\n").flatten()
        if block.endswith(b"\n"):
            lines = lines.slice(0, len(lines) - 1)
        if len(lines) and pc.max(pc.binary_length(lines)).as_py() >= self.line_limit:
            raise _Switch
        simple = pc.match_substring_regex(lines, self.pattern)
        simple_at = pc.indices_nonzero(simple)
        rows: dict[int, Emitted | None] = {}  # by line index: what the row path made
        good_at: list[int] = []
        good: RecordBlock | None = None
        if len(simple_at):
            chosen = lines if len(simple_at) == len(lines) else lines.filter(simple)
            table = self._parse(chosen)
            if table is None:  # not expected; the row path decides those lines then
                simple_at = pa.array([], pa.int64())
            else:
                kept, good = self._records(table, simple_at, first)
                good_at = kept
        taken = set(good_at)
        for index in range(len(lines)):
            if index not in taken:
                rows[index] = self._row_path(lines[index].as_py(), first + index)
        return self._in_order(good, good_at, rows)

    def _parse(self, lines: Any) -> Any:
        pa, pc = self.pa, self.pc
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(lines)]), lines), "\n")
        data = joined[0].as_buffer()
        try:
            table = self.pcsv.read_csv(
                pa.BufferReader(data),
                read_options=self.read_options,
                parse_options=self.parse_options,
                convert_options=self.convert_options,
            )
        except pa.ArrowInvalid:
            return None
        return table if table.num_rows == len(lines) else None

    def _row_path(self, text: str, line: int) -> Emitted | None:
        """One line by the row path: a record, a reject, or ``None`` (blank)."""
        stats = self.stats
        try:
            parsed = list(
                csv.reader(
                    [text.removesuffix("\r")],
                    delimiter=self.delimiter,
                    quotechar='"',
                    doublequote=True,
                    skipinitialspace=True,
                    strict=True,
                )
            )
        except csv.Error as exc:
            if str(exc) == "unexpected end of data":
                raise _Switch from None  # a quoted field runs on: rows span lines here
            from connectors.csv_drop.reader import _csv_problem

            stats.rejects += 1
            stats.bad_rows += 1
            where = f"{self.options.label}:{line}"
            return Reject(self.options.source, where, _csv_problem(str(exc), line, line))
        row = parsed[0] if parsed else []
        if not row:
            stats.blank += 1
            return None
        item = self.convert(row, line)
        if item is None:
            stats.blank += 1
        elif type(item) is DeviceRecord:
            stats.records += 1
        else:
            stats.rejects += 1
            stats.bad_rows += 1
        return item

    def _in_order(
        self, good: RecordBlock | None, good_at: list[int], rows: dict[int, Emitted | None]
    ) -> list[Emitted]:
        """The block's records and the row path's items, in line order."""
        out: list[Emitted] = []
        position = 0  # into good_at
        for index in sorted(rows):
            end = position
            while end < len(good_at) and good_at[end] < index:
                end += 1
            if good is not None and end > position:
                out.append(_slice(good, position, end))
            position = end
            item = rows[index]
            if item is not None:
                out.append(item)
        if good is not None and position < len(good_at):
            out.append(_slice(good, position, len(good_at)))
        return out

    # -- the columns -------------------------------------------------------------------------

    def _records(self, table: Any, simple_at: Any, first: int) -> tuple[list[int], RecordBlock]:
        """The simple rows that are records as ``FastRow`` would make them: their line
        indexes, and the block of them."""
        pa, pc = self.pa, self.pc
        convert = self.convert
        cols = [pc.utf8_trim(table.column(i), " ").combine_chunks() for i in range(self.width)]
        true = pa.scalar(True)
        serial = cols[convert.serial]
        length = pc.utf8_length(serial)
        ok = pc.and_(pc.greater(length, 0), pc.less_equal(length, _SERIAL_LIMIT))
        deleting = pa.repeat(pa.scalar(False), len(serial))
        if convert.action is not None:
            action = pc.ascii_lower(cols[convert.action])
            deleting = pc.equal(action, "delete")
            known = pc.is_in(action, pa.array(list(ACTION_WORDS)))
            if not convert.delta:  # a delta row must say upsert or delete
                known = pc.or_(known, pc.equal(action, ""))
            ok = pc.and_(ok, known)
        fragments: dict[str, Any] = {}
        valid = pa.repeat(true, len(serial))
        for index, name, clear, _column, _multiline, limit in convert.texts:
            cell = cols[index]
            if limit is not None:
                valid = pc.and_(valid, pc.less_equal(pc.utf8_length(cell), limit))
            fragments[name] = self._text_json(cell, clear)
        for index, name, _parse, _column, clear in convert.typed:
            fragment, fits = self._typed(name, cols[index], clear)
            valid = pc.and_(valid, fits)
            fragments[name] = fragment
        for index, _column in convert.required:
            valid = pc.and_(valid, pc.greater(pc.binary_length(cols[index]), 0))
        ok = pc.and_(ok, pc.or_(deleting, valid))
        keep = pc.indices_nonzero(ok)
        if len(keep) != len(serial):
            cols = [c.take(keep) for c in cols]
            deleting = deleting.take(keep)
            fragments = {name: f.take(keep) for name, f in fragments.items()}
        payloads = self._payloads(fragments, cols, deleting)
        at = simple_at.take(keep)
        numbers = pc.add(at, first)
        origins = pc.binary_join_element_wise(
            f"{self.options.label}:", pc.cast(numbers, pa.string()), ""
        )
        deletes = deleting.to_pylist() if convert.action is not None else None
        count = len(keep)
        self.stats.records += count
        block = RecordBlock(
            source=self.options.source,
            serials=cols[convert.serial].to_pylist(),
            origins=origins.to_pylist(),
            payloads=payloads.cast(pa.binary()).to_pylist(),
            wanted=[not d for d in deletes] if deletes is not None else [True] * count,
            actions=(
                ["delete" if d else "upsert" for d in deletes]
                if deletes is not None
                else ["upsert"] * count
            ),
            extra_order=self.extra_order,
        )
        return at.to_pylist(), block

    def _text_json(self, cell: Any, clear: bool) -> Any:
        """A text column as JSON fragments: ``"value"``, or for an empty cell ``null``
        (``""`` when it clears)."""
        pc = self.pc
        quoted = pc.binary_join_element_wise('"', self._escaped(cell), '"', "")
        return pc.if_else(pc.equal(cell, ""), '""' if clear else "null", quoted)

    def _typed(self, name: str, cell: Any, clear: bool) -> tuple[Any, Any]:
        """A typed column as JSON fragments, and which of its cells pass."""
        pa, pc = self.pa, self.pc
        empty = pc.equal(cell, "")
        blank = '""' if clear else "null"
        if name == "status":
            word = pc.ascii_lower(cell)
            yes = pc.is_in(word, pa.array([w for w, v in STATUS_WORDS.items() if v]))
            no = pc.is_in(word, pa.array([w for w, v in STATUS_WORDS.items() if not v]))
            fragment = pc.if_else(yes, "true", pc.if_else(no, "false", "null"))
            # status has no empty value: an empty cell says nothing, even when clearing
            return fragment, pc.or_(empty, pc.or_(yes, no))
        if name == "ip_address":
            fits = pc.match_substring_regex(cell, _IPV4)
            quoted = pc.binary_join_element_wise('"', cell, '"', "")
            return pc.if_else(empty, blank, quoted), pc.or_(empty, fits)
        lower = pc.ascii_lower(cell)
        canonical = pc.match_substring_regex(lower, _MAC_FORMS[0])
        fits = pc.or_(empty, canonical)
        if not pc.all(fits).as_py():  # another form: a second look, and the canonical form
            fits = pc.or_(empty, pc.match_substring_regex(lower, _MAC_ANY))
            digits = pc.replace_substring_regex(lower, "[-:.]", "")
            lower = pc.replace_substring_regex(
                digits, "^(..)(..)(..)(..)(..)(..)$", "\\1:\\2:\\3:\\4:\\5:\\6"
            )
        quoted = pc.binary_join_element_wise('"', lower, '"', "")
        return pc.if_else(empty, blank, quoted), fits

    def _payloads(self, fragments: dict[str, Any], cols: list[Any], deleting: Any) -> Any:
        """``DeviceRecord.payload()`` of each row: the nine values in declaration order,
        then the non-empty extra pairs, compact JSON (orjson's bytes, exactly). No null
        enters a join (pyarrow's null-skipping join of one column drops rows)."""
        pa, pc = self.pa, self.pc
        rows = len(deleting)
        values = [fragments.get(name, "null") for name in RECORD_FIELDS]
        if all(isinstance(value, str) for value in values):  # not one column to read
            values[0] = pa.repeat(pa.scalar(values[0]), rows)
        tail: Any = ""
        if self.extra:
            listed: Any = ""
            for name, index in self.extra:
                pair = pc.binary_join_element_wise(
                    f',[{self.extra_json[name]},"', self._escaped(cols[index]), '"]', ""
                )
                pair = pc.if_else(pc.equal(cols[index], ""), "", pair)
                listed = pc.binary_join_element_wise(listed, pair, "")
            # ",[..],[..]" -> ",[[..],[..]]"; nothing when every extra cell is empty
            nested = pc.binary_join_element_wise(",[", pc.utf8_slice_codeunits(listed, 1), "]", "")
            tail = pc.if_else(pc.equal(listed, ""), "", nested)
        payload = pc.binary_join_element_wise(
            "[", pc.binary_join_element_wise(*values, ","), tail, "]", ""
        )
        if pc.any(deleting).as_py():
            nothing = "[" + ",".join(["null"] * len(RECORD_FIELDS)) + "]"
            payload = pc.if_else(deleting, nothing, payload)
        return payload

    def _escaped(self, cell: Any) -> Any:
        """``cell`` escaped for a JSON string (printable ASCII: only ``\\`` and ``"``)."""
        pc = self.pc
        if not self.escapes:  # the block has no backslash and no doubled quote
            return cell
        if pc.any(pc.match_substring(cell, "\\")).as_py():
            cell = pc.replace_substring(cell, "\\", "\\\\")
        if pc.any(pc.match_substring(cell, '"')).as_py():
            cell = pc.replace_substring(cell, '"', '\\"')
        return cell


def _slice(block: RecordBlock, start: int, end: int) -> RecordBlock:
    if start == 0 and end == len(block):
        return block
    return RecordBlock(
        source=block.source,
        serials=block.serials[start:end],
        origins=block.origins[start:end],
        payloads=block.payloads[start:end],
        wanted=block.wanted[start:end],
        actions=block.actions[start:end],
        extra_order=block.extra_order,
    )


def _blocks(raw: BinaryIO, offset: int, line: int) -> Iterator[tuple[int, int, bytes | None]]:
    """``(byte offset, first line number, bytes)`` of each block of whole lines from
    ``offset``; ``None`` as the bytes when a line is longer than a block (the row path
    reads it, with its bounded memory)."""
    raw.seek(offset)
    pending = b""
    while True:
        chunk = raw.read(BLOCK_BYTES)
        if not chunk:
            if pending:
                yield offset, line, pending
            return
        data = pending + chunk if pending else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            if len(data) >= BLOCK_BYTES:
                yield offset, line, None
                return
            pending = data
            continue
        block, pending = data[:cut], data[cut:]
        yield offset, line, block
        offset += cut
        line += block.count(b"\n")
