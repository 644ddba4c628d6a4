"""``--output table|json|csv``: how every read command prints.

- ``table`` (the default): for people, readable at 80 columns;
- ``json``: plain JSON on standard output, streamed one item per line (``render``);
- ``csv``: one header row, then one row per item, safe to open in a spreadsheet. A
  cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return)
  would be read by Excel, LibreOffice or Google Sheets as a formula, so it gets a
  leading apostrophe (``'=cmd|...``), which spreadsheets show as text and hide; a
  program reading the CSV sees the apostrophe (a negative number ``-5`` is written
  ``'-5``).

Kept light: building the command line imports this module, so it loads nothing but
the standard library and typer.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any, TextIO

import typer


class Output(StrEnum):
    """What ``--output`` accepts."""

    table = "table"
    json = "json"
    csv = "csv"


OutputOption = Annotated[
    Output,
    typer.Option(
        "--output",
        "-o",
        help="table (for people), json (streamed, one item per line) or csv (spreadsheet-safe)",
        case_sensitive=False,
    ),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="the same as --output json")]


def chosen(output: Output, as_json: bool) -> Output:
    """``--output``, with the older ``--json`` flag meaning ``--output json``."""
    return Output.json if as_json else output


#: The first characters that make a spreadsheet read a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """``value`` as a CSV cell a spreadsheet shows as text (see the module)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else _plain(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "; ".join(_plain(v) for v in value)
    return str(value)


def write_csv(
    header: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO | None = None
) -> None:
    """``header`` and ``rows`` as CSV, every cell made safe, streamed row by row."""
    stream = out if out is not None else sys.stdout
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    stream.flush()
