"""Fuzzing the CSV drop reader: every input parses, or each bad row is a located,
readable reject, and rows accepted + rows rejected = the data rows in the file.

Two generators. The structured one writes rows with ``csv.writer`` (so the file's
rows are known exactly) in any delimiter, quoting, line ending and encoding, under a
header spelled with any alias, case and punctuation, with cells drawn from the
hostile: quotes, delimiters, line breaks, control characters, over-long values,
bad addresses, any Unicode. The raw one hands the whole connector arbitrary bytes.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.csv_drop import CsvDropConnector
from connectors.csv_drop.config import CsvDropConfig
from connectors.csv_drop.controls import CONTROL
from connectors.csv_drop.encoding import scan_file
from connectors.csv_drop.header import ALIASES
from connectors.csv_drop.reader import ReadOptions, ReadStats, read_items
from syncd.records import DeviceRecord, Reject
from tests.profiles import examples

#: What ends a physical line (universal newlines, as the reader counts them).
LINE_BREAK = re.compile(r"\r\n|\r|\n")

FIELDS = ("serial_number", "name", "device_type", "organization", "ip_address", "location")

_HOSTILE = st.sampled_from(
    [
        "",
        " ",
        '"',
        '""',
        ",",
        ";",
        "\t",
        "|",
        "\n",
        "\r\n",
        "\r",
        "\x00",
        "\x1b[31m",
        "\u200b",
        "\xa0",
        "é",
        "😀",
        "10.0.0.300",
        "10.0.0.1/24",
        "::1",
        "aa:bb:cc:dd:ee:ff",
        "S/N",
        "x" * 300,
    ]
)
CELLS = st.one_of(
    st.text(max_size=12),
    st.lists(st.one_of(_HOSTILE, st.text(max_size=4)), max_size=4).map("".join),
)


@st.composite
def header_label(draw: st.DrawFn, field: str) -> str:
    """One of the field's aliases, in any case and with any punctuation around words."""
    alias = draw(st.sampled_from(ALIASES[field]))
    joiner = draw(st.sampled_from(["", " ", "_", "-", ".", "  "]))
    words = alias.replace("_", " ").split(" ")
    label = joiner.join(words)
    return draw(st.sampled_from([label, label.upper(), label.title(), f" {label} "]))


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str, list[list[str]], list[int]]:
    """``(file bytes, encoding, data rows as written, line each row starts on)``."""
    fields = ["serial_number", *draw(st.lists(st.sampled_from(FIELDS[1:]), unique=True))]
    order = draw(st.permutations(fields))
    header = [draw(header_label(f)) for f in order]
    # One column has no delimiter to sniff: such a file is read as comma-separated.
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"])) if len(order) > 1 else ","
    quote_all = draw(st.booleans())
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    rows = draw(
        st.lists(
            st.lists(CELLS, min_size=max(0, len(order) - 1), max_size=len(order) + 1),
            max_size=12,
        )
    )
    text = io.StringIO()
    writer = csv.writer(
        text,
        delimiter=delimiter,
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
        lineterminator=ending,
    )
    # csv.writer quotes a lone carriage return only when the line terminator holds one.
    quoted = csv.writer(text, delimiter=delimiter, quoting=csv.QUOTE_ALL, lineterminator=ending)
    writer.writerow(header)
    starts = []
    for row in rows:
        starts.append(len(LINE_BREAK.findall(text.getvalue())) + 1)
        (quoted if any("\r" in cell for cell in row) else writer).writerow(row)
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    try:
        data = text.getvalue().encode(encoding)
    except UnicodeEncodeError:
        encoding = "utf-8"
        data = text.getvalue().encode(encoding)
    return data, encoding, rows, starts


def _blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def _readable(text: str) -> bool:
    return bool(text) and CONTROL.search(text) is None


def _read(path: Path, encoding: str) -> tuple[list[DeviceRecord | Reject], ReadStats]:
    stats = ReadStats()
    options = ReadOptions(source="fuzz", label="po.csv")
    items = read_items(lambda: path.open("rb"), encoding=encoding, options=options, stats=stats)
    return list(items), stats


@settings(max_examples=examples(ci=200, nightly=20_000))
@given(case=csv_files())
def test_every_row_is_a_record_or_a_located_reject(
    case: tuple[bytes, str, list[list[str]], list[int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    data, encoding, rows, starts = case
    path = tmp_path_factory.mktemp("csv") / "po.csv"
    path.write_bytes(data)
    # The encoding as configured: "auto" may take cp1252 bytes for UTF-8 (by design).
    scan = scan_file(lambda: path.open("rb"), encoding=encoding, legacy_encoding="cp1252")
    assert not scan.problem, scan.problem
    items, stats = _read(path, scan.encoding)

    assert not stats.problem, stats.problem
    expected = [(row, start) for row, start in zip(rows, starts, strict=True) if not _blank(row)]
    assert stats.records + stats.rejects == len(expected) == len(items)
    for item, (_, start) in zip(items, expected, strict=True):
        if isinstance(item, Reject):
            assert item.location == f"po.csv:{start}"
            assert _readable(item.reason), item.reason
        else:
            assert item.origin == f"po.csv:{start}"
            assert item.serial_number.isprintable()
            assert 0 < len(item.serial_number) <= 255
            assert item.serial_number == item.serial_number.strip()


@settings(max_examples=examples(ci=150, nightly=20_000))
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=300).map(lambda t: f"serial,name,ip\n{t}".encode()),
        st.text(max_size=300).map(lambda t: codecs.BOM_UTF8 + f"sn;model\n{t}".encode()),
    )
)
def test_any_bytes_give_records_rejects_or_a_readable_refusal(
    data: bytes, tmp_path_factory: pytest.TempPathFactory
) -> None:
    inbox = tmp_path_factory.mktemp("inbox")
    (inbox / "drop.csv").write_bytes(data)
    connector = CsvDropConnector("fuzz", CsvDropConfig(inbox=inbox, stable_seconds=0))
    (batch,) = connector.fetch()
    items = list(batch.items())
    verdict = batch.verdict

    assert all(type(item) in (DeviceRecord, Reject) for item in items)
    records = sum(1 for item in items if type(item) is DeviceRecord)
    assert (verdict.records, verdict.rejects) == (records, len(items) - records)
    for item in items:
        if isinstance(item, Reject):
            where, _, line = item.location.rpartition(":")
            assert where.endswith("drop.csv")
            assert int(line) >= 1
            assert _readable(item.reason), item.reason
    if not verdict.accepted:
        assert _readable(verdict.reason), verdict.reason
    if verdict.accepted:
        batch.commit()
    else:
        batch.fail(verdict.reason)
