"""The CSV drop connector over a corpus of messy files (tests/data/csv/, exact bytes)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Item
from connectors.csv_drop import CsvDropConfig, CsvDropConnector, CsvFileBatch
from syncd.records import DeviceRecord, Reject

CORPUS = Path(__file__).parent / "data" / "csv"


@dataclass
class Read:
    """One file dropped, fetched and read."""

    batch: CsvFileBatch
    items: list[Item]
    inbox: Path

    @property
    def records(self) -> list[DeviceRecord]:
        return [i for i in self.items if isinstance(i, DeviceRecord)]

    @property
    def rejects(self) -> list[Reject]:
        return [i for i in self.items if isinstance(i, Reject)]

    def lines(self, items: list[DeviceRecord] | list[Reject]) -> list[int]:
        where = [i.origin if isinstance(i, DeviceRecord) else i.location for i in items]
        return [int(w.rpartition(":")[2]) for w in where]


def read(tmp_path: Path, name: str, **options: Any) -> Read:
    inbox = tmp_path / "inbox"
    inbox.mkdir(parents=True)
    shutil.copyfile(CORPUS / name, inbox / name)
    config = CsvDropConfig.model_validate({"inbox": inbox, "stable_seconds": 0, **options})
    batches = list(CsvDropConnector("procurement", config).fetch())
    assert len(batches) == 1
    batch = batches[0]
    assert isinstance(batch, CsvFileBatch)
    return Read(batch, list(batch.items()), inbox)


def test_utf8_bom_file_yields_exact_records(tmp_path: Path) -> None:
    got = read(tmp_path, "bom_utf8.csv")
    assert got.batch.encoding == "utf-8-sig"
    assert got.batch.verdict.accepted
    origin = str(got.inbox / "bom_utf8.csv")
    assert got.records[0] == DeviceRecord(
        source="procurement",
        serial_number="FDO2231X0AB",
        origin=f"{origin}:2",
        name="zrh-core-01",
        device_type="C9300-48P",
        organization="acme",
        status=True,
        ip_address="10.20.0.1",
        mac_address="00:1b:54:aa:01:02",
        location="Zürich",
    )
    assert [r.mac_address for r in got.records] == [
        "00:1b:54:aa:01:02",
        "00:1b:54:aa:01:03",
        "00:1b:54:aa:01:04",
    ]
    assert [r.status for r in got.records] == [True, False, True]
    assert got.records[1].location == "Genève"


def test_cp1252_semicolon_file_decodes_euro_and_umlauts(tmp_path: Path) -> None:
    got = read(tmp_path, "cp1252_semicolon.csv")
    assert (got.batch.encoding, got.batch.delimiter) == ("cp1252", ";")
    assert got.batch.verdict == got.batch.verdict.__class__(True, "", 3, 0)
    first, second, third = got.records
    assert (first.name, first.organization, first.location) == ("bäckerei-fw", "Müller AG", "Köln")
    assert first.description == "Preis 1.299 €"
    assert (second.organization, second.location) == ("Café Crème", "Besançon")
    assert second.description is None  # an empty cell says nothing
    assert third.description == "Etage 2; Raum 3"  # a quoted delimiter


def test_legacy_file_under_a_fixed_utf8_encoding_is_rejected_with_its_offset(
    tmp_path: Path,
) -> None:
    offset = (CORPUS / "cp1252_semicolon.csv").read_bytes().index("ä".encode("cp1252"))
    got = read(tmp_path, "cp1252_semicolon.csv", encoding="utf-8")
    assert got.items == []
    assert not got.batch.verdict.accepted
    assert f"byte 0xe4 (offset {offset}, line 2) is not valid utf-8" in got.batch.verdict.reason


def test_tab_file_keeps_cjk_text_and_compresses_ipv6(tmp_path: Path) -> None:
    got = read(tmp_path, "tabs.tsv")
    assert got.batch.delimiter == "\t"
    assert [(r.name, r.ip_address) for r in got.records] == [
        ("osaka-rtr", "192.0.2.10"),
        ("大阪-sw", "2001:db8::1"),
    ]


def test_pipe_file_with_aliases_drops_the_prefix_length(tmp_path: Path) -> None:
    got = read(tmp_path, "pipes.txt")
    assert got.batch.delimiter == "|"
    assert [(r.serial_number, r.ip_address, r.firmware_version) for r in got.records] == [
        ("PIPE-1", "198.51.100.7", "7.2.8"),
        ("PIPE-2", "198.51.100.8", "7.2.8"),
    ]
    assert got.records[0].organization == "initech"  # "tenant"


def test_excel_unicode_text_export_is_read(tmp_path: Path) -> None:
    got = read(tmp_path, "excel_unicode.txt")
    assert (got.batch.encoding, got.batch.delimiter) == ("utf-16", "\t")
    assert [(r.serial_number, r.name) for r in got.records] == [("U16-1", "münchen-sw")]


def test_quoted_newlines_keep_physical_line_numbers(tmp_path: Path) -> None:
    got = read(tmp_path, "quoted_newlines.csv")
    assert got.batch.verdict.accepted
    assert got.rejects == []
    assert [r.serial_number for r in got.records] == ["Q-1", "Q-2", "Q-3", "Q-4"]
    assert got.lines(got.records) == [2, 5, 7, 10]
    q1, q2, q3, _ = got.records
    assert q1.description == "first line\nsecond line"
    assert (q2.name, q2.description) == ("edge, two", 'said "hi"')
    assert q3.description == "a\nb\nc"


def test_duplicate_serials_are_all_yielded_for_the_engine_to_report(tmp_path: Path) -> None:
    got = read(tmp_path, "duplicate_serials.csv")
    assert [(r.serial_number, r.name) for r in got.records] == [
        ("DUP-1", "first"),
        ("OTHER-1", "other"),
        ("DUP-1", "second"),
    ]
    assert got.lines(got.records) == [2, 3, 4]


def test_case_variant_serials_are_two_devices(tmp_path: Path) -> None:
    got = read(tmp_path, "case_variant_serials.csv")
    assert [(r.serial_number, r.name) for r in got.records] == [
        ("T8JKSZP", "upper"),
        ("t8jkszp", "lower"),
    ]


def test_missing_serial_column_rejects_the_whole_file(tmp_path: Path) -> None:
    got = read(tmp_path, "missing_serial_column.csv")
    assert got.items == []
    verdict = got.batch.verdict
    assert not verdict.accepted
    assert "no column for required field serial_number" in verdict.reason
    assert "'name', 'type', 'organization', 'ip'" in verdict.reason
    got.batch.fail(verdict.reason)
    error = (got.inbox / "failed" / "missing_serial_column.csv.error.txt").read_text()
    assert verdict.reason in error


def test_two_columns_for_one_field_reject_the_whole_file(tmp_path: Path) -> None:
    got = read(tmp_path, "ambiguous_header.csv")
    assert not got.batch.verdict.accepted
    assert "'Serial' (1) and 'SN' (2) both map to serial_number" in got.batch.verdict.reason


def test_file_truncated_inside_quotes_loses_only_its_last_row(tmp_path: Path) -> None:
    got = read(tmp_path, "truncated_in_quotes.csv")
    assert len(got.records) == 11
    assert got.lines(got.rejects) == [13]
    assert "unterminated quoted field" in got.rejects[0].reason
    assert got.batch.verdict.accepted  # 1 bad row of 12 is within 10% ... of 8.3%


def test_truncated_last_row_is_rejected_with_its_serial(tmp_path: Path) -> None:
    got = read(tmp_path, "truncated_row.csv")
    assert len(got.records) == 11
    (reject,) = got.rejects
    assert reject.location.endswith("truncated_row.csv:13")
    assert reject.reason == "row has 2 fields, the header has 5 (truncated row?)"
    assert reject.serial_number == "TR-12"


def test_unbalanced_quote_that_swallows_lines_rejects_the_file(tmp_path: Path) -> None:
    got = read(tmp_path, "unbalanced_quote.csv")
    assert got.lines(got.rejects) == [4]
    assert got.rejects[0].reason.startswith("lines 4-31 unreadable: unterminated quoted field")
    verdict = got.batch.verdict
    assert not verdict.accepted
    assert "spanning 27 more unreadable lines" in verdict.reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.csv", "empty file (0 bytes)"),
        ("blank_only.csv", "empty file: no header line"),
    ],
)
def test_empty_files_are_not_accepted(tmp_path: Path, name: str, reason: str) -> None:
    got = read(tmp_path, name)
    assert got.items == []
    assert got.batch.verdict.accepted is False
    assert got.batch.verdict.reason == reason


def test_header_only_file_is_an_accepted_empty_snapshot(tmp_path: Path) -> None:
    got = read(tmp_path, "header_only.csv")
    assert got.items == []
    assert got.batch.verdict.accepted
    assert got.batch.verdict.reason == "header only: no data rows"
    assert got.batch.mode == "snapshot"


def test_column_mapping_from_config_wins_and_unknown_columns_are_kept(tmp_path: Path) -> None:
    got = read(
        tmp_path,
        "column_mapping.csv",
        columns={"Device": "name", "kunde": "organization", "NOTES": "ignore"},
    )
    first, second = got.records
    assert (first.serial_number, first.name, first.organization) == (
        "MAP-1",
        "ber-rtr-01",
        "Initech",
    )
    assert first.extra == (("PO Number", "PO-7781"),)  # "Notes" is ignored on purpose
    assert second.extra == ()


def test_bad_values_are_reported_by_line_column_and_value(tmp_path: Path) -> None:
    got = read(tmp_path, "bad_values.csv")
    assert len(got.records) == 20
    assert got.lines(got.rejects) == [8, 16]
    ip_row, mac_row = got.rejects
    assert ip_row.serial_number == "BV-07"
    assert ip_row.reason == (
        "column 'ip' (ip_address): '10.2.0.300' is not a valid IPv4 or IPv6 address"
    )
    assert "column 'mac' (mac_address): '00:50:56:zz:00:0f' is not a MAC address" in mac_row.reason
    assert "column 'status': 'maybe' is not a status" in mac_row.reason
    assert got.batch.verdict.accepted
    assert got.batch.verdict.reason.startswith("2 of 22 rows rejected (9.1% bad)")
    got.batch.commit()
    report = (got.inbox / "processed" / "bad_values.csv.report.txt").read_text()
    assert "line 8: column 'ip' (ip_address): '10.2.0.300'" in report
    assert "line 16: column 'mac' (mac_address)" in report


def test_file_over_the_error_ratio_is_rejected_whole(tmp_path: Path) -> None:
    got = read(tmp_path, "over_ratio.csv")
    assert len(got.records) == 7
    assert got.lines(got.rejects) == [3, 6, 10]
    verdict = got.batch.verdict
    assert (verdict.accepted, verdict.records, verdict.rejects) == (False, 7, 3)
    assert verdict.reason == ("3 of 10 rows rejected (30.0% bad): more than max_error_ratio 10.0%")
    got.batch.fail(verdict.reason)
    error = (got.inbox / "failed" / "over_ratio.csv.error.txt").read_text()
    for line in (3, 6, 10):
        assert f"line {line}: column 'ip' (ip_address): 'not-an-ip'" in error


def test_error_ratio_is_configurable(tmp_path: Path) -> None:
    got = read(tmp_path, "over_ratio.csv", max_error_ratio=0.3)
    assert got.batch.verdict.accepted


def test_delta_file_yields_upserts_and_deletes(tmp_path: Path) -> None:
    got = read(tmp_path, "delta.csv", mode="delta", max_error_ratio=0.5)
    assert got.batch.mode == "delta"
    assert [(r.serial_number, r.action, r.wanted) for r in got.records] == [
        ("DL-1", "upsert", True),
        ("DL-2", "delete", False),
        ("DL-3", "upsert", True),
        ("DL-4", "delete", False),
    ]
    assert got.records[3].values() == {}  # a delete carries no values
    assert got.lines(got.rejects) == [6, 7]
    assert (
        got.rejects[0].reason
        == "column 'action': 'remove' is not an action (one of: upsert/delete)"
    )
    assert got.rejects[1].reason == "column 'action' is empty (delta rows need upsert or delete)"


def test_delta_mode_without_action_column_rejects_the_file(tmp_path: Path) -> None:
    got = read(tmp_path, "delta_missing_action.csv", mode="delta")
    assert got.items == []
    assert not got.batch.verdict.accepted
    assert "delta mode needs an action column" in got.batch.verdict.reason


def test_snapshot_mode_reads_an_action_column_but_does_not_require_it(tmp_path: Path) -> None:
    got = read(tmp_path, "delta.csv", max_error_ratio=0.5)
    assert [(r.serial_number, r.action) for r in got.records][-1] == ("DL-6", "upsert")
    assert got.lines(got.rejects) == [6]  # "remove" is still not an action


def test_mixed_encoding_is_refused_with_the_line(tmp_path: Path) -> None:
    got = read(tmp_path, "mixed_encoding.csv")
    reason = got.batch.verdict.reason
    assert not got.batch.verdict.accepted
    assert reason.startswith("mixed encodings: UTF-8 text first, then byte 0xe8")
    assert "line 3" in reason


def test_bytes_neither_utf8_nor_cp1252_are_refused_with_the_offset(tmp_path: Path) -> None:
    offset = (CORPUS / "undecodable.csv").read_bytes().index(b"\x81")
    got = read(tmp_path, "undecodable.csv")
    assert got.batch.verdict.reason == (
        f"neither UTF-8 nor cp1252: byte 0x81 (offset {offset}, line 3) is not valid cp1252"
    )


def test_padding_trailing_delimiters_and_upper_case_extension(tmp_path: Path) -> None:
    got = read(tmp_path, "TRAILING.CSV")
    assert got.batch.verdict == got.batch.verdict.__class__(True, "", 2, 0)
    assert [(r.serial_number, r.name, r.organization) for r in got.records] == [
        ("TD-1", "trail-1", "acme"),
        ("TD-2", "trail-2", "acme"),
    ]


def test_empty_cells_clear_optional_fields_when_configured(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "clear.csv").write_text("serial,name,ip,location,status\nC-1,x,,,\n")

    def values(**options: Any) -> dict[str, object]:
        config = CsvDropConfig(inbox=inbox, stable_seconds=0, **options)
        (batch,) = CsvDropConnector("p", config).fetch()
        (record,) = batch.items()
        batch.release()
        assert isinstance(record, DeviceRecord)
        return record.values()

    assert values() == {"name": "x"}
    assert values(empty_cells="clear") == {"name": "x", "ip_address": "", "location": ""}


def test_required_fields_from_config(tmp_path: Path) -> None:
    got = read(tmp_path, "tabs.tsv", required_fields=["name", "ip_address"])
    assert got.batch.verdict.accepted
    got2 = read(tmp_path / "2", "column_mapping.csv", required_fields=["device_type"])
    assert "no column for required field device_type" in got2.batch.verdict.reason


def test_control_characters_and_over_long_values_are_rejected_by_column(tmp_path: Path) -> None:
    # Regression: NUL and other control characters passed into records; the API refuses
    # NUL (400), and ESC sequences could reach a terminal through reports and plans.
    got = read(tmp_path, "control_chars.csv", max_error_ratio=1)
    reasons = {int(r.location.rpartition(":")[2]): r.reason for r in got.rejects}
    assert reasons == {
        4: r"column 'name': 'bad\x00name' contains control character \x00 at position 4",
        5: r"column 'organization': 'acme\x1b[31m' contains control character \x1b at position 5",
        6: r"column 'description': 'next\x85line' contains control character \x85 at position 5",
        7: r"column 'serial' (serial_number): 'C\t5' contains control character \t at position 2",
        8: f"column 'name': '{'n' * 57}...' is 256 characters long, "
        "more than the inventory API's limit of 255",
        9: r"column 'description': 'bell\x07' contains control character \x07 at position 5",
        10: r"column 'notes': 'note\x00' contains control character \x00 at position 5",
        11: r"column 'description': 'lone\rcr' contains control character \r at position 5",
        16: r"column 'serial' (serial_number): 'C\xa012' contains non-printable character \xa0 "
        "at position 2",
        17: f"column 'serial' (serial_number): '{'S' * 57}...' is 256 characters long, "
        "more than the inventory API's limit of 255",
    }
    assert all(reason.isprintable() for reason in reasons.values()), "nothing raw reaches a tty"
    first, longest, unicode = got.records
    assert (first.description, first.extra) == ("two\nlines", (("notes", "tab\there"),))
    assert (len(longest.serial_number), len(longest.name or "")) == (255, 255)
    assert (unicode.name, unicode.description) == ("Zürich \u2013 Ünïcødé ✓ 東京", "crlf\r\nkept")
    got.batch.commit()
    report = (got.inbox / "processed" / "control_chars.csv.report.txt").read_text()
    assert r"line 4: column 'name': 'bad\x00name'" in report
    assert all(line.isprintable() for line in report.splitlines()), "the report is safe to cat"
