"""Control characters in cells and headers: found, and named the way Python escapes them.

Control characters are Unicode category Cc: C0 (``\\x00``-``\\x1f``), DEL and C1
(``\\x7f``-``\\x9f``). The inventory API refuses NUL, and the others (ESC, a lone
carriage return, ...) could rewrite what a terminal shows when a value is printed.
Free text that may span lines keeps tab, line feed and CR-LF.
"""

from __future__ import annotations

import re

CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
#: ``CONTROL`` less tab, line feed and a carriage return that starts a CR-LF.
CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]|\r(?!\n)")


def escaped(ch: str) -> str:
    """One character as Python escapes it: ``\\x00``, ``\\t``, ``\\u200b``."""
    return ascii(ch)[1:-1]


def find_control(text: str, *, multiline: bool = False) -> tuple[int, str] | None:
    """The first control character in ``text`` (1-based position, escaped), or ``None``.

    ``multiline`` allows tab, line feed and CR-LF."""
    found = (CONTROL_IN_TEXT if multiline else CONTROL).search(text)
    if found is None:
        return None
    return found.start() + 1, escaped(found.group())
