"""Injected faults: failures, latency, dropped connections, the rate limit, and a script.

Nothing here is on unless asked for (command-line options or ``PUT /_sandbox/faults``).

Each API request first takes the next entry of the ``script``, if any is left:

- ``"ok"``: no fault for this request (random faults are skipped too);
- a status such as ``"503"``, ``"429"``, ``"500"``: answer it without touching the store;
- ``"drop"``: close the connection after the response head, before anything is applied;
- ``"drop_after_apply"``: apply the request, then close the connection the same way;
- ``"delay:MS"``: wait MS milliseconds, then handle normally;
- ``"stall:MS"``: log the request as arrived, hold the connection MS milliseconds
  without answering, then drop it; nothing is applied (an answer lost in a hung proxy);
- ``"stall_after_apply:MS"``: apply the request and log it, then hold and drop the same
  way (the write landed, its answer never comes). While a request stalls its client
  can be killed at a known point: before its write landed, or after.

``hide_from_list`` (a list of serials) makes the list endpoint leave those devices out
of its pages and its ``count``, consistently, as a lagging replica or search index
would: the listing looks complete but is not. Every other endpoint still finds them.

With the script empty, random faults apply: ``fail_rate`` answers ``fail_status``,
``drop_rate`` drops (the write is applied first only with ``drop_applied``), and
``latency_rate`` of requests wait ``latency_ms`` first. Three random numbers are
drawn per request whatever the settings, so with a fixed seed the same request
number meets the same fate.
"""

from __future__ import annotations

import random
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from syncd.sandbox.throttle import Rate, parse_rate, throttle_detail

_SCRIPT_ENTRY = re.compile(
    r"^(ok|drop|drop_after_apply|[45]\d\d|(delay|stall|stall_after_apply):\d+(\.\d+)?)$"
)

_STATUS_DETAIL = {
    500: "A server error occurred.",
    502: "Bad gateway.",
    503: "Service temporarily unavailable, try again later.",
    504: "Gateway timeout.",
}

DropMode = Literal["before", "after"]


@dataclass(frozen=True, slots=True)
class Fault:
    """What happens to one request: a status instead of handling, a drop, a delay."""

    status: int | None = None
    drop: DropMode | None = None
    delay_ms: float = 0.0
    #: How long to hold the connection after the request is handled and logged, before
    #: the drop (``stall``).
    hold_ms: float = 0.0
    #: Short name for the request log: ``"503"``, ``"drop"``, ``"drop_after_apply"``,
    #: ``"delay"``, ``"stall"``, ``"stall_after_apply"``.
    label: str | None = None


NO_FAULT = Fault()


def injected_detail(status: int, retry_after: int | None) -> str:
    """The ``detail`` of an injected error answer (DRF wording where DRF has one)."""
    if status == 429:
        return throttle_detail(1 if retry_after is None else retry_after)
    return _STATUS_DETAIL.get(status, f"Injected failure (HTTP {status}).")


@dataclass(slots=True)
class FaultSettings:
    """The current fault configuration; ``update`` validates before changing anything."""

    fail_rate: float = 0.0
    fail_status: int = 503
    retry_after: int | None = None
    latency_ms: float = 0.0
    latency_rate: float = 1.0
    drop_rate: float = 0.0
    drop_applied: bool = False
    rate_limit: Rate | None = None
    script: deque[str] = field(default_factory=deque)
    hide_from_list: frozenset[str] = frozenset()

    def copy(self) -> FaultSettings:
        """An independent copy (the script is copied too)."""
        return FaultSettings(
            fail_rate=self.fail_rate,
            fail_status=self.fail_status,
            retry_after=self.retry_after,
            latency_ms=self.latency_ms,
            latency_rate=self.latency_rate,
            drop_rate=self.drop_rate,
            drop_applied=self.drop_applied,
            rate_limit=self.rate_limit,
            script=deque(self.script),
            hide_from_list=self.hide_from_list,
        )

    def to_json(self) -> dict[str, Any]:
        """The settings as the control API shows them."""
        return {
            "fail_rate": self.fail_rate,
            "fail_status": self.fail_status,
            "retry_after": self.retry_after,
            "latency_ms": self.latency_ms,
            "latency_rate": self.latency_rate,
            "drop_rate": self.drop_rate,
            "drop_applied": self.drop_applied,
            "rate_limit": str(self.rate_limit) if self.rate_limit else None,
            "script": list(self.script),
            "hide_from_list": sorted(self.hide_from_list),
        }

    def update(self, data: Mapping[str, Any]) -> dict[str, list[str]]:
        """Set the keys given in ``data``; returns errors by key (nothing changes if any)."""
        errors: dict[str, list[str]] = {}
        staged: dict[str, Any] = {}
        for key, value in data.items():
            try:
                staged[key] = _clean_setting(key, value)
            except ValueError as exc:
                errors[key] = [str(exc)]
        if errors:
            return errors
        for key, value in staged.items():
            setattr(self, key, value)
        return {}

    def decide(self, rng: random.Random) -> Fault:
        """The fault for the next request (consumes a script entry if one is left)."""
        if self.script:
            return _scripted(self.script.popleft())
        fail_draw, drop_draw, latency_draw = rng.random(), rng.random(), rng.random()
        delay = self.latency_ms if self.latency_ms > 0 and latency_draw < self.latency_rate else 0.0
        if fail_draw < self.fail_rate:
            return Fault(status=self.fail_status, delay_ms=delay, label=str(self.fail_status))
        if drop_draw < self.drop_rate:
            if self.drop_applied:
                return Fault(drop="after", delay_ms=delay, label="drop_after_apply")
            return Fault(drop="before", delay_ms=delay, label="drop")
        if delay:
            return Fault(delay_ms=delay, label="delay")
        return NO_FAULT


#: Script entries without a parameter.
_PLAIN: dict[str, Fault] = {
    "ok": NO_FAULT,
    "drop": Fault(drop="before", label="drop"),
    "drop_after_apply": Fault(drop="after", label="drop_after_apply"),
}


def _scripted(entry: str) -> Fault:
    plain = _PLAIN.get(entry)
    if plain is not None:
        return plain
    name, _, ms = entry.partition(":")
    if name == "delay":
        return Fault(delay_ms=float(ms), label="delay")
    if name == "stall":
        return Fault(drop="before", hold_ms=float(ms), label="stall")
    if name == "stall_after_apply":
        return Fault(drop="after", hold_ms=float(ms), label="stall_after_apply")
    return Fault(status=int(entry), label=entry)


def _rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError("must be a number between 0 and 1")
    return float(value)


def _milliseconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError("must be a number of milliseconds >= 0")
    return float(value)


def _error_status(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise ValueError("must be an HTTP error status (400-599)")
    return value


def _seconds_or_null(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("must be whole seconds >= 0, or null")
    return value


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _rate_limit(value: object) -> Rate | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("must be a rate such as '10/s', or null")
    return parse_rate(value)


def parse_script(value: object) -> deque[str]:
    """Check a script (a list of entries, see the module docstring)."""
    if not isinstance(value, list):
        raise ValueError("must be a list of entries such as '503', 'drop', 'ok'")
    bad = [v for v in value if not isinstance(v, str) or not _SCRIPT_ENTRY.match(v)]
    if bad:
        raise ValueError(
            f"unknown entries {bad!r}: use 'ok', 'drop', 'drop_after_apply', 'delay:MS', "
            "'stall:MS', 'stall_after_apply:MS' or an HTTP status such as '503'"
        )
    return deque(value)


def _serials(value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of serial numbers")
    return frozenset(value)


_CLEANERS: dict[str, Callable[[object], object]] = {
    "fail_rate": _rate,
    "drop_rate": _rate,
    "latency_rate": _rate,
    "latency_ms": _milliseconds,
    "fail_status": _error_status,
    "retry_after": _seconds_or_null,
    "drop_applied": _flag,
    "rate_limit": _rate_limit,
    "script": parse_script,
    "hide_from_list": _serials,
}


def _clean_setting(key: str, value: object) -> object:
    clean = _CLEANERS.get(key)
    if clean is None:
        raise ValueError(f"unknown fault setting; known: {', '.join(sorted(_CLEANERS))}")
    return clean(value)
