"""Text templates over a NetBox device: ``"{manufacturer} {model}"``, ``"{cf_sw_version}"``.

A template is checked when the config is loaded (unknown placeholders, format specs
and positional ``{}`` are refused) and compiled into getters, so rendering 50 000
devices costs a few dictionary reads each. A template renders empty as soon as one
of its placeholders is empty: ``"{manufacturer} {model}"`` never becomes ``" R650"``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

Device = Mapping[str, Any]
Getter = Callable[[Device], str]

_CUSTOM_FIELD = re.compile(r"cf_([A-Za-z0-9_]+)")


class TemplateError(ValueError):
    """The template cannot be used (says which placeholder and why)."""


def text(value: object) -> str:  # noqa: PLR0911 - one return per JSON type
    """A NetBox value as text: ``None`` -> ``""``; object -> its name; list -> ``a, b``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, Mapping):
        for key in ("name", "model", "display", "value", "id"):
            if value.get(key) not in (None, ""):
                return text(value[key])
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(t for t in (text(v) for v in value) if t)
    return str(value).strip()


def _field(key: str) -> Getter:
    return lambda device: text(device.get(key))


def _nested(key: str, attr: str) -> Getter:
    def get(device: Device) -> str:
        node = device.get(key)
        return text(node.get(attr)) if isinstance(node, Mapping) else ""

    return get


def _manufacturer(attr: str) -> Getter:
    def get(device: Device) -> str:
        device_type = device.get("device_type")
        if not isinstance(device_type, Mapping):
            return ""
        maker = device_type.get("manufacturer")
        return text(maker.get(attr)) if isinstance(maker, Mapping) else ""

    return get


def _status(device: Device) -> str:
    status = device.get("status")
    return text(status.get("value")) if isinstance(status, Mapping) else text(status)


def _custom_field(name: str) -> Getter:
    def get(device: Device) -> str:
        fields = device.get("custom_fields")
        return text(fields.get(name)) if isinstance(fields, Mapping) else ""

    return get


#: Placeholders a template may use, and how each is read from a device.
KEYS: dict[str, Getter] = {
    "id": _field("id"),
    "name": _field("name"),
    "serial": _field("serial"),
    "asset_tag": _field("asset_tag"),
    "status": _status,
    "description": _field("description"),
    "model": _nested("device_type", "model"),
    "device_type": _nested("device_type", "model"),
    "device_type_slug": _nested("device_type", "slug"),
    "manufacturer": _manufacturer("name"),
    "manufacturer_slug": _manufacturer("slug"),
    "tenant": _nested("tenant", "name"),
    "tenant_slug": _nested("tenant", "slug"),
    "site": _nested("site", "name"),
    "site_slug": _nested("site", "slug"),
    "location": _nested("location", "name"),
    "location_slug": _nested("location", "slug"),
    "rack": _nested("rack", "name"),
    "role": _nested("role", "name"),
    "role_slug": _nested("role", "slug"),
    "platform": _nested("platform", "name"),
    "platform_slug": _nested("platform", "slug"),
    "cluster": _nested("cluster", "name"),
    "virtual_chassis": _nested("virtual_chassis", "name"),
}


def getter(key: str) -> Getter:
    """The getter for one placeholder name (``cf_<name>`` reads a custom field)."""
    if key in KEYS:
        return KEYS[key]
    match = _CUSTOM_FIELD.fullmatch(key)
    if match:
        return _custom_field(match.group(1))
    known = ", ".join(KEYS)
    raise TemplateError(f"unknown placeholder {{{key}}} (known: {known}, cf_<custom field>)")


class Template:
    """A checked, compiled template; a pydantic field type (validated from a string)."""

    __slots__ = ("_parts", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        parts: list[tuple[str, Getter | None]] = []
        try:
            parsed = list(string.Formatter().parse(source))
        except ValueError as exc:
            raise TemplateError(f"template {source!r}: {exc}") from None
        for literal, key, spec, conversion in parsed:
            if literal:
                parts.append((literal, None))
            if key is None:
                continue
            if not key or spec or conversion:
                raise TemplateError(
                    f"template {source!r}: placeholders are plain names such as {{model}}"
                )
            parts.append(("", getter(key)))
        if not any(get for _, get in parts):
            raise TemplateError(f"template {source!r} has no placeholder")
        self._parts = tuple(parts)

    def render(self, device: Device) -> str:
        """The text for ``device``; empty when any placeholder is empty."""
        out: list[str] = []
        for literal, get in self._parts:
            if get is None:
                out.append(literal)
                continue
            value = get(device)
            if not value:
                return ""
            out.append(value)
        return "".join(out).strip()

    def __repr__(self) -> str:
        return f"Template({self.source!r})"

    def __str__(self) -> str:
        return self.source

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Template) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """Validated from a string (or a ``Template``); serialized back to its source."""
        return core_schema.no_info_plain_validator_function(
            _validate, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


def _validate(value: object) -> Template:
    if isinstance(value, Template):
        return value
    if not isinstance(value, str):
        raise TemplateError("must be a text template such as '{model}'")
    return Template(value)
