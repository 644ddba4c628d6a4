"""The device-type and organization catalogue the sandbox expands ids with.

The real API has no endpoint for either list: clients learn them from the expanded
``type`` / ``organization`` objects. The sandbox seeds a small catalogue from
``catalogue.json`` beside this module, or from a file given with ``--catalogue``
(same shape: ``{"types": [...], "organizations": [...]}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_CATALOGUE_FILE = Path(__file__).with_name("catalogue.json")


@dataclass(frozen=True, slots=True)
class DeviceType:
    """A device type: the list shows ``id``, ``name``, ``model``; detail adds ``manufacturer``."""

    id: int
    name: str
    model: str
    manufacturer: str


@dataclass(frozen=True, slots=True)
class Organization:
    """One tenant: the list shape shows ``id`` and ``name``; detail adds ``code``."""

    id: int
    name: str
    code: str


@dataclass(frozen=True, slots=True)
class Catalogue:
    """Types and organizations by id, with their rendered shapes precomputed."""

    types: dict[int, DeviceType]
    organizations: dict[int, Organization]

    def type_list_shape(self, type_id: int) -> dict[str, Any]:
        """``type`` as the list endpoint shows it."""
        t = self.types[type_id]
        return {"id": t.id, "name": t.name, "model": t.model}

    def type_detail_shape(self, type_id: int) -> dict[str, Any]:
        """``type`` as the detail endpoint shows it."""
        t = self.types[type_id]
        return {"id": t.id, "name": t.name, "model": t.model, "manufacturer": t.manufacturer}

    def org_list_shape(self, org_id: int) -> dict[str, Any]:
        """``organization`` as the list endpoint shows it."""
        o = self.organizations[org_id]
        return {"id": o.id, "name": o.name}

    def org_detail_shape(self, org_id: int) -> dict[str, Any]:
        """``organization`` as the detail endpoint shows it."""
        o = self.organizations[org_id]
        return {"id": o.id, "name": o.name, "code": o.code}


class CatalogueError(ValueError):
    """The catalogue file is malformed."""


def parse_catalogue(data: object) -> Catalogue:
    """Build a catalogue from decoded JSON, checking every entry."""
    if not isinstance(data, dict):
        raise CatalogueError("the catalogue must be an object with 'types' and 'organizations'")
    types: dict[int, DeviceType] = {}
    orgs: dict[int, Organization] = {}
    for i, raw in enumerate(_entries(data, "types")):
        t = DeviceType(
            id=_int(raw, "id", f"types[{i}]"),
            name=_str(raw, "name", f"types[{i}]"),
            model=_str(raw, "model", f"types[{i}]"),
            manufacturer=_str(raw, "manufacturer", f"types[{i}]"),
        )
        if t.id in types:
            raise CatalogueError(f"types[{i}]: duplicate id {t.id}")
        types[t.id] = t
    for i, raw in enumerate(_entries(data, "organizations")):
        o = Organization(
            id=_int(raw, "id", f"organizations[{i}]"),
            name=_str(raw, "name", f"organizations[{i}]"),
            code=_str(raw, "code", f"organizations[{i}]"),
        )
        if o.id in orgs:
            raise CatalogueError(f"organizations[{i}]: duplicate id {o.id}")
        orgs[o.id] = o
    if not types or not orgs:
        raise CatalogueError("the catalogue needs at least one type and one organization")
    return Catalogue(types=types, organizations=orgs)


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read the catalogue from ``path``, or the built-in one."""
    file = path or DEFAULT_CATALOGUE_FILE
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CatalogueError(f"{file}: {exc}") from exc
    try:
        return parse_catalogue(data)
    except CatalogueError as exc:
        raise CatalogueError(f"{file}: {exc}") from exc


def _entries(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CatalogueError(f"'{key}' must be a list of objects")
    return value


def _int(raw: dict[str, Any], key: str, where: str) -> int:
    value = raw.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CatalogueError(f"{where}.{key} must be an integer")
    return value


def _str(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str):
        raise CatalogueError(f"{where}.{key} must be a string")
    return value
