"""The reconciliation policy: which fields syncd manages, from which sources, and its limits.

Field names are the ``DeviceRecord`` names (``device_type`` is the API's ``type``).
A field absent from ``Policy.fields`` is ignored: syncd never writes what it was not
told to manage. ``Policy.default()`` manages every descriptive field and leaves
``status`` to the inventory (``pending_changes`` and ``last_status_change`` are
server-owned and cannot be written at all).

Every class here is frozen and validated on construction, so a bad value fails where
the config is loaded, with a message that names it, not halfway through a plan.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Literal, get_args

from syncd.records import RECORD_FIELDS

Mode = Literal["managed", "create_only", "ignore"]
OnManualEdit = Literal["report", "overwrite"]
Case = Literal["preserve", "upper", "lower"]

MODES: tuple[str, ...] = get_args(Mode)
ON_MANUAL_EDIT: tuple[str, ...] = get_args(OnManualEdit)
CASES: tuple[str, ...] = get_args(Case)

#: A grace longer than a ``timedelta`` can hold (about 2.7 million years) is a typo.
_MAX_GRACE_SECONDS = timedelta.max.total_seconds()

#: Bumped when the meaning of a policy changes in a way its values do not show.
_FINGERPRINT_VERSION = 1


def _check_sources(sources: Sequence[str], where: str) -> tuple[str, ...]:
    if isinstance(sources, str):
        raise ValueError(f"{where}: must be a list of source names, not one string")
    result = tuple(sources)
    if not all(isinstance(s, str) and s for s in result):
        raise ValueError(f"{where}: must be a list of non-empty source names")
    if len(set(result)) != len(result):
        raise ValueError(f"{where}: names a source twice: {list(result)}")
    return result


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    """How syncd treats one field.

    ``mode``: ``managed`` keeps the inventory equal to the sources; ``create_only``
    sets it on create (and on adopt when the inventory has no value) and never again;
    ``ignore`` never writes it. ``sources`` is the priority order for this field
    (first source with a value wins) and the only sources that may set it; empty
    means every source, in the policy's global order.
    ``on_manual_edit`` says what happens when the inventory value differs from the
    last value syncd wrote: ``report`` a conflict and keep it, or ``overwrite`` it.
    """

    mode: Mode = "managed"
    sources: tuple[str, ...] = ()
    on_manual_edit: OnManualEdit = "report"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode {self.mode!r}: must be one of {', '.join(MODES)}")
        if self.on_manual_edit not in ON_MANUAL_EDIT:
            allowed = ", ".join(ON_MANUAL_EDIT)
            raise ValueError(f"on_manual_edit {self.on_manual_edit!r}: must be one of {allowed}")
        object.__setattr__(self, "sources", _check_sources(self.sources, "sources"))


@dataclass(frozen=True, slots=True)
class SerialRules:
    """Explicit serial normalisation, applied in this order by ``normalize_serial``:

    1. ``strip``: trim surrounding whitespace;
    2. ``remove_chars``: delete every one of these characters anywhere;
    3. ``strip_prefixes``: remove the first prefix (in the given order, compared
       exactly) the serial starts with, once; then trim again if ``strip``;
    4. ``case``: ``preserve`` (default: the API is case-sensitive), ``upper``, ``lower``.
    """

    strip: bool = True
    case: Case = "preserve"
    strip_prefixes: tuple[str, ...] = ()
    remove_chars: str = ""

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise ValueError(f"serial case {self.case!r}: must be one of {', '.join(CASES)}")
        if isinstance(self.strip_prefixes, str) or not all(
            isinstance(p, str) and p for p in self.strip_prefixes
        ):
            raise ValueError("serial strip_prefixes: must be a list of non-empty strings")
        object.__setattr__(self, "strip_prefixes", tuple(self.strip_prefixes))


#: The fields ``Policy.default()`` manages; ``status`` belongs to the inventory.
DEFAULT_FIELDS: Mapping[str, FieldPolicy] = MappingProxyType(
    {
        "name": FieldPolicy("managed"),
        "device_type": FieldPolicy("managed"),
        "organization": FieldPolicy("managed"),
        "status": FieldPolicy("ignore"),
        "ip_address": FieldPolicy("managed"),
        "mac_address": FieldPolicy("managed"),
        "location": FieldPolicy("managed"),
        "description": FieldPolicy("managed"),
        "firmware_version": FieldPolicy("managed"),
    }
)

_IGNORE = FieldPolicy("ignore")


def _check_map(mapping: Mapping[str, int], where: str) -> Mapping[str, int]:
    for key, value in mapping.items():
        if not isinstance(key, str) or not key:
            raise ValueError(f"{where}: key {key!r} must be a non-empty string")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{where}[{key!r}]: {value!r} must be a positive integer id")
    return MappingProxyType(dict(mapping))


def _check_share(value: float, where: str) -> None:
    # NaN fails the range test too
    if isinstance(value, bool) or not (isinstance(value, int | float) and 0 <= value <= 1):
        raise ValueError(f"{where}: {value!r} must be a number between 0 and 1")


@dataclass(frozen=True, slots=True)
class Policy:
    """Everything the planner needs to decide, besides the data.

    ``source_priority`` is the global source order; a source it does not name ranks
    after those it does, by name. Orphans (owned devices no source wants) are deleted
    only when both grace conditions hold: missing for ``orphan_grace_runs`` runs *and*
    ``orphan_grace_seconds`` (0 disables either). A plan is held for approval when it
    deletes more than ``max_delete_share`` of the owned devices (unless it deletes no
    more than ``max_delete_count_without_gate``), or when a source returns fewer than
    ``min_source_ratio`` of its previous run's records (0 disables). ``type_map`` and
    ``organization_map`` map source values (exact strings) to inventory ids, ahead of
    the catalogue learned from the API.
    """

    fields: Mapping[str, FieldPolicy] = field(default_factory=lambda: DEFAULT_FIELDS)
    source_priority: tuple[str, ...] = ()
    serial: SerialRules = field(default_factory=SerialRules)
    adopt: bool = True
    delete_orphans: bool = True
    orphan_grace_runs: int = 3
    orphan_grace_seconds: float = 86400.0
    max_delete_share: float = 0.10
    max_delete_count_without_gate: int = 0
    min_source_ratio: float = 0.5
    type_map: Mapping[str, int] = field(default_factory=dict)
    organization_map: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.fields) - set(RECORD_FIELDS))
        if unknown:
            hint = " (the API's 'type' is 'device_type' here)" if "type" in unknown else ""
            raise ValueError(
                f"fields: unknown field(s) {', '.join(map(repr, unknown))}{hint}; "
                f"known: {', '.join(RECORD_FIELDS)}"
            )
        for name, fp in self.fields.items():
            if not isinstance(fp, FieldPolicy):
                raise ValueError(f"fields[{name!r}]: must be a FieldPolicy")
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        object.__setattr__(
            self, "source_priority", _check_sources(self.source_priority, "source_priority")
        )
        for name in ("orphan_grace_runs", "max_delete_count_without_gate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}: {value!r} must be a whole number >= 0")
        grace = self.orphan_grace_seconds
        if isinstance(grace, bool) or not (
            isinstance(grace, int | float) and 0 <= grace <= _MAX_GRACE_SECONDS
        ):
            raise ValueError(
                f"orphan_grace_seconds: {grace!r} must be a number of seconds "
                f"between 0 and {_MAX_GRACE_SECONDS:.0f}"
            )
        _check_share(self.max_delete_share, "max_delete_share")
        _check_share(self.min_source_ratio, "min_source_ratio")
        object.__setattr__(self, "type_map", _check_map(self.type_map, "type_map"))
        object.__setattr__(
            self, "organization_map", _check_map(self.organization_map, "organization_map")
        )

    @classmethod
    def default(cls, **overrides: Any) -> Policy:
        """The default policy; ``fields=`` given here are merged over ``DEFAULT_FIELDS``."""
        fields = {**DEFAULT_FIELDS, **overrides.pop("fields", {})}
        return cls(fields=fields, **overrides)

    def field_policy(self, name: str) -> FieldPolicy:
        """The policy of one record field (``ignore`` when the policy does not name it)."""
        return self.fields.get(name, _IGNORE)

    def source_order(self, name: str) -> tuple[str, ...]:
        """The explicit source order of one field (its own, else the global one)."""
        return self.field_policy(name).sources or self.source_priority

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable, keys sorted where order has no meaning)."""
        return {
            "fields": {
                name: {
                    "mode": fp.mode,
                    "sources": list(fp.sources),
                    "on_manual_edit": fp.on_manual_edit,
                }
                for name, fp in sorted(self.fields.items())
            },
            "source_priority": list(self.source_priority),
            "serial": {
                "strip": self.serial.strip,
                "case": self.serial.case,
                "strip_prefixes": list(self.serial.strip_prefixes),
                "remove_chars": self.serial.remove_chars,
            },
            "adopt": self.adopt,
            "delete_orphans": self.delete_orphans,
            "orphan_grace_runs": self.orphan_grace_runs,
            "orphan_grace_seconds": float(self.orphan_grace_seconds),
            "max_delete_share": float(self.max_delete_share),
            "max_delete_count_without_gate": self.max_delete_count_without_gate,
            "min_source_ratio": float(self.min_source_ratio),
            "type_map": dict(sorted(self.type_map.items())),
            "organization_map": dict(sorted(self.organization_map.items())),
        }

    def fingerprint(self) -> str:
        """A stable hash of the policy's meaning (the same across processes and runs).

        An ignored field is the same whether it is named or not, so
        ``fields={"status": ignore}`` and leaving ``status`` out give one fingerprint.
        """
        data = self.to_dict()
        data["fields"] = {k: v for k, v in data["fields"].items() if v["mode"] != "ignore"}
        data["version"] = _FINGERPRINT_VERSION
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()
