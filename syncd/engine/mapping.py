"""Source values -> inventory ids for ``type`` and ``organization``.

Order of lookup for a string: the policy's map (exact key), then the catalogue
learned from the API, exact matches before case-insensitive ones (types: by model,
then by name; organizations: by name, then by code). The first step that matches
decides: one id is the answer, several are "ambiguous" (a weaker step is not tried,
since it could only guess). An integer passes when the catalogue or the policy's
map knows it, or when the catalogue is still empty and the id is positive.

A digit string (``"12"``) is looked up like any other string, never read as an id:
a connector that means an id gives an ``int``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from syncd.engine.model import Catalogue


class UnmappedError(ValueError):
    """A source value that names no id, or several (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class _Step:
    label: str  # "model", "name", "name (any case)", ...
    index: dict[str, tuple[int, ...]]
    fold: bool


def _index(items: Iterable[tuple[int, str | None]], *, fold: bool) -> dict[str, tuple[int, ...]]:
    found: dict[str, set[int]] = {}
    for ident, text in items:
        if text:
            found.setdefault(text.casefold() if fold else text, set()).add(ident)
    return {key: tuple(sorted(ids)) for key, ids in found.items()}


class Resolver:
    """Resolves one kind of value (``device_type`` or ``organization``), memoised:
    a run sees few distinct values, so each is looked up once."""

    def __init__(
        self,
        field: str,
        noun: str,
        policy_map: Mapping[str, int],
        known_ids: Iterable[int],
        attributes: list[tuple[str, Callable[[int], str | None]]],
    ) -> None:
        self._field = field
        self._noun = noun
        self._map = policy_map
        known = set(known_ids)
        self._catalogue_empty = not known
        self._known = known | set(policy_map.values())
        self._labels = " or ".join(label for label, _ in attributes)
        self._steps: list[_Step] = []
        for fold in (False, True):
            for label, get in attributes:
                step_label = f"{label} (any case)" if fold else label
                items = ((ident, get(ident)) for ident in known)
                self._steps.append(_Step(step_label, _index(items, fold=fold), fold))
        # id, or the reason there is none (a message, not an exception: re-raising one
        # instance would grow its traceback on every raise)
        self._memo: dict[object, int | str] = {}

    def resolve(self, value: object) -> int:
        """The id ``value`` stands for; ``UnmappedError`` if none or several."""
        if value is True or value is False:  # bools hash like 1 and 0: keep them out of the memo
            raise UnmappedError(f"{self._field} {value!r} is neither a name nor an id")
        try:
            result = self._memo[value]
        except KeyError:
            result = self._memo[value] = self._lookup(value)
        except TypeError:  # an unhashable value cannot be a type or organization
            result = f"{self._field} {value!r} is neither a name nor an id"
        if isinstance(result, str):
            raise UnmappedError(result)
        return result

    def _lookup(self, value: object) -> int | str:
        if isinstance(value, str):
            return self._lookup_text(value)
        if isinstance(value, int) and not isinstance(value, bool):
            if value in self._known or (self._catalogue_empty and value > 0):
                return value
            return (
                f"{self._field} {value} is not a known {self._noun} id "
                f"(not seen in the inventory, not in the policy's map)"
            )
        return f"{self._field} {value!r} is neither a name nor an id"

    def _lookup_text(self, value: str) -> int | str:
        if value in self._map:
            return self._map[value]
        for step in self._steps:
            ids = step.index.get(value.casefold() if step.fold else value)
            if ids is None:
                continue
            if len(ids) == 1:
                return ids[0]
            listed = ", ".join(map(str, ids))
            return (
                f"{self._field} {value!r} is ambiguous: {self._noun} ids {listed} "
                f"match by {step.label}; map it in the policy"
            )
        return (
            f"{self._field} {value!r} matches no known {self._noun} (by {self._labels}, "
            f"in any case) and is not in the policy's map"
        )


def type_resolver(catalogue: Catalogue, policy_map: Mapping[str, int]) -> Resolver:
    """Resolves ``device_type`` values (types: by model, then by name)."""
    types = catalogue.types
    return Resolver(
        "device_type",
        "type",
        policy_map,
        types,
        [("model", lambda i: types[i].model), ("name", lambda i: types[i].name)],
    )


def organization_resolver(catalogue: Catalogue, policy_map: Mapping[str, int]) -> Resolver:
    """Resolves ``organization`` values (by name, then by code)."""
    orgs = catalogue.organizations
    return Resolver(
        "organization",
        "organization",
        policy_map,
        orgs,
        [("name", lambda i: orgs[i].name), ("code", lambda i: orgs[i].code)],
    )
