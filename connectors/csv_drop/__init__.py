"""The CSV drop connector: procurement systems drop files into an inbox folder.

Configured as plugin ``csv_drop``::

    [[connectors]]
    name = "procurement"
    plugin = "csv_drop"
    [connectors.options]
    inbox = "/srv/syncd/inbox"
    mode = "snapshot"                       # or "delta": rows carry action = upsert | delete
    columns = { "Serial No." = "serial_number", "Notes" = "ignore" }

What it does with a file, and the choices made where the brief left one open:

- **Taking files.** Only names matching ``patterns`` (``*.csv``, ``*.txt``, ``*.tsv``)
  and none of ``ignore_patterns`` (dot files, ``~*``, ``*.tmp``, ``*.part``, …); only
  regular files whose mtime is at least ``stable_seconds`` old. That is the whole test
  in a one-shot run (``syncd run --once``); a long-running process also waits while a
  file's size or mtime differs from its previous listing. A file arriving with an old
  mtime (``cp -p``, an archive) is taken at once, so writers should write under an
  ignored name (``.po.csv``, ``po.csv.tmp``) and rename when done. A file whose size
  or mtime changes while it is read is refused as still being written and put back
  in the inbox for a later run. A file is claimed by an atomic rename into
  ``processing/``; racing processes cannot both get it. Claims held by a process that
  died are taken over at the next fetch (see ``inbox``).
- **Its own folders.** ``processing/``, ``processed/`` and ``failed/`` must be real
  directories: a symbolic link (or a file) in their place is a configuration error
  naming the folder, and once opened they are used through open descriptors, so a
  link planted later is never followed (see ``inbox``).
- **Not a regular file.** A symbolic link, pipe, socket or device dropped under a
  wanted name is never opened or followed: it is refused as a batch ("not a regular
  file: a symbolic link to ...") and moved, as it is, to ``failed/`` with its note.
- **Duplicate content.** A file whose SHA-256 equals that of the *last* file this
  connector accepted is not yielded (the store holds that content already); it goes
  to ``processed/`` with ``<file>.duplicate.txt`` naming that file. Only the last one
  counts: files A, B, A give three snapshots, the last being A again, and a delta
  "delete X" sent again after an "upsert X" deletes X again. That last content is kept
  in the store, saved in the transaction that stores the file's batch, so a fresh
  store or another database never skips a file it does not hold; only a connector
  used without a store keeps it in a JSON file (see ``ledger``).
- **Names.** Origins, locations (``<file>:<line>``), logs and reports show a file
  name that is not UTF-8, or holds control characters, with ``\\xNN`` escapes.
- **Encoding.** ``auto``: UTF-8 with or without BOM, UTF-16 with BOM, else
  ``legacy_encoding`` (cp1252); a file that is UTF-8 for a while and then not is refused
  as mixed. Undecodable bytes reject the whole file, with offset and line.
- **Dialect.** Delimiter sniffed from the header among ``,`` ``;`` tab ``|`` (or fixed);
  standard double-quote quoting with quoted newlines; blank lines skipped.
- **Header.** Built-in aliases (``serial``, ``sn``, ``hostname``, ``tenant``, ``mgmt_ip``…)
  matched case-insensitively ignoring spaces and punctuation; ``columns`` wins. A
  missing required column, or two columns for one field, rejects the whole file.
  Unknown columns go to ``DeviceRecord.extra``.
- **Rows.** See ``reader``: physical line numbers; empty cell = says nothing; IP
  normalised (compressed; a ``/prefix`` dropped); MAC to ``aa:bb:cc:dd:ee:ff``; status
  from true/false/up/down/1/0/yes/no. Control characters (NUL, ESC, C1…) are refused
  in every cell kept, named escaped (``\\x00``); only ``description`` and unmapped
  columns may hold tabs and line breaks. ``serial_number`` and ``name`` longer than
  the API's 255 characters are refused. Every bad row is a ``Reject`` naming the column
  and value. Serials keep their case: ``ABC`` and ``abc`` are two serials, and a serial
  listed twice is yielded twice (the engine reports both as a conflict).
- **Verdict.** Not accepted if the file is empty (0 bytes, or no header), unreadable,
  its header unusable, or more than ``max_error_ratio`` of its rows are bad. A header
  with no rows is accepted with zero records: in snapshot mode that empties the
  source, which the engine's safety gate holds for approval.
- **Setting down.** ``commit()`` -> ``processed/`` (+ ``.report.txt`` listing rejected
  rows), the checksum being remembered as the last accepted with the batch;
  ``fail(reason)`` -> ``failed/`` (+ ``.error.txt``), or back to the inbox if it was
  still being written.
  Names never clash: a taken name gets a UTC timestamp before its extension. A note
  that cannot be written is logged and never keeps the file from moving.
"""

from connectors.csv_drop.config import CsvDropConfig
from connectors.csv_drop.connector import CsvDropConnector, CsvFileBatch
from connectors.csv_drop.ledger import IngestLedger, JsonLedger, LedgerEntry, StateLedger

__all__ = [
    "CsvDropConfig",
    "CsvDropConnector",
    "CsvFileBatch",
    "IngestLedger",
    "JsonLedger",
    "LedgerEntry",
    "StateLedger",
]
