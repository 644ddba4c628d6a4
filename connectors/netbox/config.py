"""Options of the NetBox connector (``[connectors.options]`` of a ``netbox`` plugin).

The token is never an option: it comes from the environment variable named by
``token_env`` or from ``token_file`` (a Docker/Kubernetes secret). A ``token`` key in
the options is refused with a message that says where to put it instead.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from connectors.netbox.templates import Template, getter
from syncd.config import RetrySettings

#: NetBox's device lifecycle states (``DeviceStatusChoices``).
NETBOX_STATUSES: tuple[str, ...] = (
    "offline",
    "active",
    "planned",
    "staged",
    "failed",
    "inventory",
    "decommissioning",
)

#: Query parameters the connector sets itself; a filter may not override them.
RESERVED_FILTERS: frozenset[str] = frozenset(
    {"limit", "offset", "ordering", "fields", "brief", "exclude", "start", "q", "id", "serial"}
)
_FILTER_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

#: Ceilings of the two durations (a larger one would overflow a date, or mean nothing).
MAX_OVERLAP = timedelta(days=30)
MAX_FULL_PULL_INTERVAL = timedelta(days=366)

IpSource = Literal["primary_ip4", "primary_ip6", "primary_ip", "oob_ip"]
FilterScalar = str | int | bool
FilterValue = FilterScalar | list[FilterScalar]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NetBoxMapping(_Section):
    """How a NetBox device becomes a ``DeviceRecord``.

    Text values are templates over the device's attributes (``{model}``,
    ``{manufacturer}``, ``{tenant_slug}``, ``{cf_sw_version}`` …; see
    ``connectors.netbox.templates.KEYS``). A template with any empty placeholder
    renders empty, and an empty value "says nothing" (``empty_values = "ignore"``) or
    clears the inventory field (``"clear"``, optional text fields only).
    """

    device_type: Template = Field(
        Template("{model}"), description='inventory type key: "{model}", "{manufacturer} {model}"'
    )
    organization: Template = Field(
        Template("{tenant}"), description='inventory organization key: "{tenant}", "{tenant_slug}"'
    )
    default_organization: str | None = Field(
        None, description="organization key for devices without a tenant"
    )
    unnamed: Literal["serial", "skip", "template"] = Field(
        "serial", description="a device without a name: named by its serial, skipped, or templated"
    )
    unnamed_template: Template = Template("{model}-{serial}")
    ip_from: tuple[IpSource, ...] = Field(
        ("primary_ip4", "primary_ip"), min_length=1, description="first one set wins"
    )
    location: tuple[str, ...] = Field(
        ("site", "location", "rack"),
        description="parts joined by location_separator, empty ones left out",
    )
    location_separator: str = " / "
    description: Template | None = Template("{description}")
    firmware: Template | None = Field(
        Template("{platform}"), description='"{platform}" or a custom field: "{cf_sw_version}"'
    )
    empty_values: Literal["ignore", "clear"] = "ignore"
    unwanted_statuses: tuple[str, ...] = Field(
        ("decommissioning", "offline", "inventory"),
        description="NetBox statuses meaning 'should not be in the inventory'",
    )

    @field_validator("description", "firmware", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("location")
    @classmethod
    def _location_parts(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for part in value:
            getter(part)  # raises TemplateError (a ValueError) naming the known parts
        return value

    @field_validator("unwanted_statuses")
    @classmethod
    def _statuses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in value if s not in NETBOX_STATUSES]
        if unknown:
            raise ValueError(
                f"unknown status(es) {unknown} (NetBox has: {', '.join(NETBOX_STATUSES)})"
            )
        return value


class NetBoxConfig(_Section):
    """Where NetBox is, which devices to read, how to map them and how often to pull all."""

    # A refused ``token`` option must not come back in the error's text.
    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, allow_inf_nan=False
    )

    url: str = Field(description="NetBox's base URL, e.g. https://netbox.example.com")
    token_env: str = Field("NETBOX_TOKEN", description="environment variable holding the token")
    token_file: Path | None = Field(None, description="file holding the token (wins over the env)")
    token: SecretStr | None = Field(None, description="refused: never put a token in the config")
    verify_tls: bool = True
    ca_bundle: Path | None = Field(None, description="CA certificates to trust (PEM)")
    timeout: float = Field(30.0, gt=0, le=3600, description="read timeout per request, seconds")
    connect_timeout: float = Field(5.0, gt=0, le=3600)
    page_size: int = Field(
        250, ge=1, le=1000, description="devices per request (NetBox's cap: 1000)"
    )
    threading: bool = Field(False, description="fetch the pages of a pull concurrently")
    max_workers: int = Field(4, ge=1, le=32, description="concurrent page requests with threading")
    filters: dict[str, FilterValue] = Field(
        default_factory=dict,
        description="NetBox device filters: site, tenant, role, status, tag, cf_<name>, …",
    )
    mapping: NetBoxMapping = Field(default_factory=NetBoxMapping)
    incremental: bool = Field(
        True, description="between full pulls, read only changes (needs the change log)"
    )
    full_pull_interval: timedelta = Field(
        timedelta(hours=24), description="a full pull at least this often (the backstop)"
    )
    overlap: timedelta = Field(
        timedelta(minutes=5), description="incremental pulls re-read this much before the mark"
    )
    state_file: Path | None = Field(
        None, description="where watermarks are kept; default: in memory (every run pulls all)"
    )
    retry: RetrySettings = Field(default_factory=RetrySettings)
    auth_attempts: int = Field(
        2,
        ge=1,
        le=10,
        description="tries of a request NetBox refused with 401/403 (a token being rotated, "
        "a proxy warming up), with the same backoff; then the run fails",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://netbox.example.com")
        # pynetbox adds /api itself; a pasted API URL would become /api/api.
        return value.removesuffix("/api")

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("must be an environment variable name such as NETBOX_TOKEN")
        return value

    @field_validator("filters")
    @classmethod
    def _filters(cls, value: dict[str, FilterValue]) -> dict[str, FilterValue]:
        for name in value:
            if name in RESERVED_FILTERS or name.startswith("last_updated"):
                raise ValueError(f"filter {name!r} is set by the connector itself")
            if not _FILTER_NAME.match(name):
                raise ValueError(f"{name!r} is not a NetBox filter name (e.g. site, tag, cf_env)")
        return value

    @field_validator("overlap")
    @classmethod
    def _overlap(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        if value > MAX_OVERLAP:  # the watermark minus it must stay a date
            raise ValueError(f"must be at most {MAX_OVERLAP.days} days")
        return value

    @field_validator("full_pull_interval")
    @classmethod
    def _interval(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be positive")
        if value > MAX_FULL_PULL_INTERVAL:  # the last pull plus it must stay a date
            raise ValueError(f"must be at most {MAX_FULL_PULL_INTERVAL.days} days")
        return value

    @model_validator(mode="before")
    @classmethod
    def _mask_token(cls, data: object) -> object:
        # Masked in place: a validation error carries the caller's dict as its input,
        # and the options dict itself may be logged later.
        if isinstance(data, dict) and isinstance(data.get("token"), str):
            data["token"] = SecretStr(data["token"])
        return data

    @model_validator(mode="after")
    def _no_token_here(self) -> NetBoxConfig:
        if self.token is not None:
            raise ValueError(
                "a token is never put in the configuration: set the environment variable "
                f"{self.token_env} (see token_env) or name a file in token_file"
            )
        return self

    def query_filters(self) -> dict[str, str | list[str]]:
        """``filters`` as query values (booleans as ``true``/``false``, lists kept)."""
        return {name: _query_value(value) for name, value in self.filters.items()}


def _query_value(value: FilterValue) -> str | list[str]:
    if isinstance(value, list):
        return [_scalar(v) for v in value]
    return _scalar(value)


def _scalar(value: FilterScalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
