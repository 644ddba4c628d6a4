"""Small JSON files a connector keeps beside its data (a ledger, a watermark).

Written atomically (temporary file, fsync, rename), so a crash leaves the old or the
new content; read forgivingly, since losing such a file only costs a re-read of the
source, while refusing to run until somebody edits JSON by hand costs more.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger("connectors.jsonfile")


def read_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` if it is missing, or unreadable (then it is
    renamed to ``<name>.corrupt`` and the problem logged as ``what``)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        # Decoded here, not by read_text: bytes that are not UTF-8 are a corrupt file too.
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
    except (ValueError, TypeError) as exc:
        aside = path.with_name(f"{path.name}.corrupt")
        path.replace(aside)
        log.error(f"{what} unreadable, set aside", path=str(path), aside=str(aside), error=str(exc))
        return {}
    return data


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Replace ``path`` with ``data`` as JSON: write beside it, fsync, rename over.

    The temporary file is made afresh (``O_EXCL|O_NOFOLLOW``, after removing whatever
    had its name) and renamed over ``path``: a link planted at either name, in a folder
    others can write (an inbox), is replaced, never written through.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with os.fdopen(os.open(tmp, flags, 0o666), "w", encoding="utf-8") as out:
        json.dump(data, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
