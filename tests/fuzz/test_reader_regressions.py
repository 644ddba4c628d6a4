"""Named regression tests for what the CSV fuzzing and memory tests found in the reader."""

from __future__ import annotations

from pathlib import Path

from connectors.csv_drop.reader import MAX_LINE, ReadOptions, ReadStats, read_items
from syncd.records import DeviceRecord, Reject


def _read(path: Path) -> tuple[list[DeviceRecord | Reject], ReadStats]:
    stats = ReadStats()
    items = list(
        read_items(
            lambda: path.open("rb"),
            encoding="utf-8",
            options=ReadOptions("t", "po.csv"),
            stats=stats,
        )
    )
    return items, stats


def test_an_over_long_line_is_one_located_reject_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "po.csv"
    path.write_text(
        "serial_number,name\nSN1,a\nSN2," + "x" * (2 * MAX_LINE) + "\r\nSN3,c\n", encoding="utf-8"
    )
    items, stats = _read(path)
    assert [type(i).__name__ for i in items] == ["DeviceRecord", "Reject", "DeviceRecord"]
    reject = items[1]
    assert isinstance(reject, Reject)
    assert reject.location == "po.csv:3"
    assert f"{2 * MAX_LINE + 6} characters long" in reject.reason  # its CR-LF included
    assert isinstance(items[2], DeviceRecord)
    assert items[2].origin == "po.csv:4"
    assert (stats.records, stats.rejects) == (2, 1)


def test_a_quoted_field_that_runs_into_an_over_long_line_is_rejected_with_its_lines(
    tmp_path: Path,
) -> None:
    path = tmp_path / "po.csv"
    path.write_text(
        'serial_number,name\nSN1,"open\nstill open\n' + "z" * MAX_LINE + "\nSN2,b\n",
        encoding="utf-8",
    )
    items, stats = _read(path)
    assert [
        (type(i).__name__, i.location if isinstance(i, Reject) else i.origin) for i in items
    ] == [
        ("Reject", "po.csv:2"),
        ("Reject", "po.csv:4"),
        ("DeviceRecord", "po.csv:5"),
    ]
    first = items[0]
    assert isinstance(first, Reject)
    assert "lines 2-3 unreadable: a quoted field runs into line 4" in first.reason
    assert (stats.records, stats.rejects, stats.bad_rows) == (1, 2, 3)


def test_a_file_that_is_one_over_long_line_has_no_usable_header(tmp_path: Path) -> None:
    path = tmp_path / "po.csv"
    path.write_text("\n" + "h" * MAX_LINE, encoding="utf-8")
    items, stats = _read(path)
    assert items == []
    assert stats.problem.startswith("header (line 2) unreadable: the line is")
