"""Parsing request bodies defensively: the sandbox must answer 400, never 500, to any body.

Python's ``json`` accepts things no JSON API should store: ``NaN`` and ``Infinity``
literals, numbers that overflow to ``inf`` (``1e400``), strings with lone surrogates
(``"\\ud800"``: a valid escape, but not Unicode, so the device could be stored and
never rendered again), and nesting deep enough to raise ``RecursionError``. Every
one of them is refused here with a ``BodyError`` whose message names the problem
and, where it can, the place (``$.serial_number``, ``line 1 column 3``).

The checks run at C speed where they can (``json.dumps`` finds a surrogate or an
infinity; only then is the value looked for) and never recurse, so checking costs
about as much again as parsing: a fraction of a second for the most contrived
1 MiB body.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any, cast

#: Deeper nesting is refused; no valid body of the sandbox nests more than three levels.
MAX_DEPTH = 32
#: Python's default limit for turning digits into an integer (``sys.get_int_max_str_digits``).
MAX_INT_DIGITS = 4300
#: Django's ``DATA_UPLOAD_MAX_NUMBER_FIELDS``.
MAX_FORM_FIELDS = 1000


class BodyError(ValueError):
    """A body the sandbox refuses to parse; the message is fit for a 400 ``detail``."""


def _reject_constant(name: str) -> Any:
    # DRF's ``strict_constant``, word for word
    raise BodyError(f"Out of range float values are not JSON compliant: {name!r}")


def _is_unicode(text: str) -> bool:
    """False when ``text`` holds a lone surrogate (it cannot be encoded as UTF-8)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(text: str) -> None:
    """Refuse decoded body text that holds lone surrogates (an exotic charset can make them)."""
    if not _is_unicode(text):
        raise BodyError("The body holds a lone surrogate.")


def _check_depth(data: object) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH``, a level at a time (no recursion)."""
    level = [data] if type(data) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise BodyError(f"Nested deeper than {MAX_DEPTH} levels.")
        below: list[object] = []
        for value in level:  # only dicts and lists
            if value:
                items = value.values() if isinstance(value, dict) else cast(list[object], value)
                below.extend([item for item in items if type(item) in _CONTAINERS])
        level = below


_CONTAINERS = (dict, list)


def _where(path: tuple[object, ...]) -> str:
    """``$.pending_details.x`` or ``$[3].name``, printable whatever the keys hold."""
    parts = ["$"]
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            name = str(step)
            name = name if len(name) <= 40 else f"{name[:40]}..."
            parts.append("." + name.encode("ascii", "backslashreplace").decode("ascii"))
    return "".join(parts)


def _problem(value: object) -> str | None:
    """What makes a scalar unfit for JSON output, if anything."""
    if type(value) is str and not _is_unicode(value):
        return "holds a lone surrogate"
    if type(value) is float and math.isinf(value):
        return "is a number out of range (it overflows a float)"
    return None


def _locate(data: object) -> str:
    """Where the lone surrogate or the infinite number is, for the message.

    Only containers go on the stack; scalars are checked where they stand.
    """
    if (problem := _problem(data)) is not None:
        return f"The body {problem}."
    stack: list[tuple[object, tuple[object, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            if not all(_is_unicode(key) for key in value):
                return f"A key in {_where(path)} holds a lone surrogate."
            pairs: Iterable[tuple[object, object]] = value.items()
        else:
            assert isinstance(value, list)
            pairs = enumerate(value)
        for step, item in pairs:
            if type(item) in _CONTAINERS:
                stack.append((item, (*path, step)))
            elif (problem := _problem(item)) is not None:
                return f"The value at {_where((*path, step))} {problem}."
    return "The body holds a value JSON cannot carry."


def _check_values(data: object) -> None:
    """Lone surrogates and infinite numbers, found at C speed; located only when there."""
    try:
        json.dumps(data, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:  # UnicodeEncodeError too
        raise BodyError(_locate(data)) from None


def parse_json(text: str) -> object:
    """``text`` as JSON, or ``BodyError`` for anything a strict JSON API refuses."""
    check_text(text)
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BodyError(f"Nested deeper than {MAX_DEPTH} levels.") from None
    except BodyError:
        raise
    except ValueError as exc:  # json.JSONDecodeError names line and column
        message = str(exc)
        if "integer string conversion" in message:  # Python's int digit limit
            message = f"An integer has more than {MAX_INT_DIGITS} digits."
        raise BodyError(message) from None
    _check_depth(data)
    _check_values(data)
    return data
