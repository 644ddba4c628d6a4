"""One streamed pass over a file's bytes: its checksum, and the encoding to read it in.

``auto`` means: a UTF-8 BOM -> UTF-8 (BOM dropped); a UTF-16 BOM -> UTF-16 (what
Excel's "Unicode text" export writes); otherwise UTF-8 if every byte decodes, else
the legacy encoding (cp1252 by default). A file that is valid UTF-8 *with* non-ASCII
text up to some point and then not is refused as mixed: reading it either way would
garble part of it. An undecodable byte is reported with its offset and line.
"""

from __future__ import annotations

import codecs
import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

#: Opens the file to read, from its start (the inbox opens a claimed file without
#: following links: see ``Claim.open``).
Opener = Callable[[], BinaryIO]

CHUNK = 1 << 20

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass(frozen=True, slots=True)
class Scan:
    """What the pass found. ``problem`` set means the file cannot be read at all."""

    sha256: str
    size: int
    encoding: str = ""
    problem: str = ""


@dataclass(frozen=True, slots=True)
class _Failure:
    offset: int
    line: int | None
    byte: int
    non_ascii_before: bool


@dataclass(frozen=True, slots=True)
class Checksum:
    """A file's SHA-256, size and first bytes: all a duplicate needs to be recognised."""

    sha256: str
    size: int
    head: bytes


def checksum(open_file: Opener) -> Checksum:
    """Hash the file (one streamed read, nothing decoded)."""
    digest = hashlib.sha256()
    size = 0
    with open_file() as raw:
        head = raw.read(4)
        raw.seek(0)
        for chunk in iter(lambda: raw.read(CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return Checksum(digest.hexdigest(), size, head)


def scan_file(
    open_file: Opener, *, encoding: str, legacy_encoding: str, summed: Checksum | None = None
) -> Scan:
    """Checksum the file (unless ``summed`` already says it) and choose its encoding
    (``encoding`` may be ``"auto"``)."""
    summed = summed or checksum(open_file)
    sha, size, head = summed.sha256, summed.size, summed.head
    if size == 0:
        return Scan(sha, 0, problem="empty file (0 bytes)")
    chosen = _first_guess(head, encoding)
    failure = _trial_decode(open_file, chosen)
    if failure is None:
        return Scan(sha, size, encoding=chosen)
    if encoding != "auto" or chosen != "utf-8":
        return Scan(sha, size, problem=_describe(failure, chosen.removesuffix("-sig")))
    if failure.non_ascii_before:
        return Scan(
            sha,
            size,
            problem=f"mixed encodings: UTF-8 text first, then {_describe(failure, 'utf-8')}",
        )
    legacy_failure = _trial_decode(open_file, legacy_encoding)
    if legacy_failure is not None:
        problem = _describe(legacy_failure, legacy_encoding)
        return Scan(sha, size, problem=f"neither UTF-8 nor {legacy_encoding}: {problem}")
    return Scan(sha, size, encoding=legacy_encoding)


def _first_guess(head: bytes, encoding: str) -> str:
    if encoding == "auto":
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith(_UTF16_BOMS):
            return "utf-16"
        return "utf-8"
    if codecs.lookup(encoding).name == "utf-8":
        # A BOM would otherwise become part of the first header cell.
        return "utf-8-sig"
    return encoding


def _trial_decode(open_file: Opener, encoding: str) -> _Failure | None:
    """Decode the whole file incrementally; where it first fails, or ``None``."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    # Counting b"\n" finds lines in every ASCII-compatible encoding, not in UTF-16/32.
    line_based = not codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    fed = 0
    newlines = 0
    non_ascii = False
    with open_file() as raw:
        for chunk in itertools.chain(iter(lambda: raw.read(CHUNK), b""), [b""]):
            pending = decoder.getstate()[0]
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                data = pending + chunk
                start = exc.start
                before = data[:start]
                return _Failure(
                    offset=fed - len(pending) + start,
                    line=newlines + before.count(b"\n") + 1 if line_based else None,
                    byte=data[start] if start < len(data) else -1,
                    non_ascii_before=non_ascii or not before.isascii(),
                )
            fed += len(chunk)
            if line_based:
                newlines += chunk.count(b"\n")
            non_ascii = non_ascii or not chunk.isascii()
    return None


def _describe(failure: _Failure, encoding: str) -> str:
    what = f"byte 0x{failure.byte:02x}" if failure.byte >= 0 else "a truncated character"
    where = f"offset {failure.offset}"
    if failure.line is not None:
        where += f", line {failure.line}"
    return f"{what} ({where}) is not valid {encoding}"
