"""Options of the CSV drop connector (``[connectors.options]`` of a ``csv_drop`` plugin)."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from connectors.base import BatchMode
from connectors.csv_drop.header import IGNORE, normalize_header
from syncd.records import RECORD_FIELDS

#: What a column can feed: the serial, every record field, and the delta ``action``.
COLUMN_FIELDS: tuple[str, ...] = ("serial_number", *RECORD_FIELDS, "action")

#: Names a file is taken by (matched case-insensitively).
DEFAULT_PATTERNS: tuple[str, ...] = ("*.csv", "*.txt", "*.tsv")

#: Names a file is never taken by: uploads and editors still writing.
DEFAULT_IGNORE: tuple[str, ...] = (
    ".*",
    "~*",
    "*.tmp",
    "*.part",
    "*.partial",
    "*.swp",
    "*.crdownload",
)

DelimiterOption = Literal["auto", ",", ";", "\t", "|", "tab"]


class CsvDropConfig(BaseModel):
    """Where the inbox is, which files to take, and how to read them."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    inbox: Path = Field(description="the folder procurement systems drop files into")
    processing_dir: Path | None = Field(None, description="default: <inbox>/processing")
    processed_dir: Path | None = Field(None, description="default: <inbox>/processed")
    failed_dir: Path | None = Field(None, description="default: <inbox>/failed")
    ledger_file: Path | None = Field(
        None,
        description="the last accepted content, only when used without a store (syncd keeps "
        "it in the store); default: <inbox>/.syncd-ingested.json",
    )
    patterns: tuple[str, ...] = Field(DEFAULT_PATTERNS, min_length=1)
    ignore_patterns: tuple[str, ...] = DEFAULT_IGNORE
    stable_seconds: float = Field(
        5.0,
        ge=0,
        le=86_400,
        description="a file is taken once unchanged (size, mtime) for this long (max a day)",
    )
    mode: BatchMode = Field(
        "snapshot", description="snapshot: the file is the full list; delta: rows carry an action"
    )
    encoding: str = Field(
        "auto", description="auto: UTF-8 (with or without BOM, or UTF-16 with BOM), else legacy"
    )
    legacy_encoding: str = "cp1252"
    delimiter: DelimiterOption = Field("auto", description="auto: sniffed from the header")
    columns: dict[str, str] = Field(
        default_factory=dict,
        description='header -> field, e.g. {"Serial No." = "serial_number", "Notes" = "ignore"}',
    )
    required_fields: tuple[str, ...] = ("serial_number",)
    max_error_ratio: float = Field(
        0.1, ge=0, le=1, description="a file with a larger share of bad rows is rejected whole"
    )
    empty_cells: Literal["ignore", "clear"] = Field(
        "ignore",
        description="ignore: an empty cell says nothing; clear: it clears optional text fields",
    )

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return value if value == "auto" else _codec(value)

    @field_validator("legacy_encoding")
    @classmethod
    def _known_legacy(cls, value: str) -> str:
        return _codec(value)

    @field_validator("delimiter")
    @classmethod
    def _tab(cls, value: DelimiterOption) -> DelimiterOption:
        return "\t" if value == "tab" else value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for header, field in value.items():
            key = normalize_header(header)
            if not key:
                raise ValueError(f"header {header!r} has no letters or digits to match on")
            if field not in (*COLUMN_FIELDS, IGNORE):
                allowed = ", ".join((*COLUMN_FIELDS, IGNORE))
                raise ValueError(f"{header!r} maps to unknown field {field!r} (one of: {allowed})")
            if key in out and out[key] != field:
                raise ValueError(f"{header!r} is given twice (headers match case-insensitively)")
            out[key] = field
        return out

    @field_validator("required_fields")
    @classmethod
    def _required(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in value if name not in COLUMN_FIELDS]
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)} (one of: {COLUMN_FIELDS})")
        # The serial is the key: it is required whatever the list says.
        return tuple(dict.fromkeys(("serial_number", *value)))

    @property
    def processing_path(self) -> Path:
        """Where claimed files wait while they are read."""
        return self.processing_dir or self.inbox / "processing"

    @property
    def processed_path(self) -> Path:
        """Where committed files go."""
        return self.processed_dir or self.inbox / "processed"

    @property
    def failed_path(self) -> Path:
        """Where rejected files go, each with an ``.error.txt`` beside it."""
        return self.failed_dir or self.inbox / "failed"

    @property
    def ledger_path(self) -> Path:
        """The JSON ledger of the last accepted content (a connector without a store)."""
        return self.ledger_file or self.inbox / ".syncd-ingested.json"


def _codec(name: str) -> str:
    try:
        codecs.lookup(name)
    except LookupError:
        raise ValueError(f"unknown encoding {name!r}") from None
    return name
