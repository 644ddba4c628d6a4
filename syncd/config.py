"""Configuration: one TOML file, validated by pydantic, every value overridable from the
environment as ``SYNCD_<SECTION>__<KEY>`` (``SYNCD_INVENTORY__PAGE_SIZE=50``).

The inventory token is never read from the TOML file: it comes from
``SYNCD_INVENTORY__TOKEN`` or from the file named by ``inventory.token_file``
(a Docker/Kubernetes secret). ``load_settings`` collects *every* problem and
raises one ``ConfigError`` that says where each one is (``syncd.toml:12``, or the
environment variable's name).

Every number is bounded: no setting takes ``inf`` or ``nan``, and each has a ceiling
well below what would overflow a timer, a date or a 64-bit database integer, so a
value that passes ``syncd config check`` cannot crash a run later.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from syncd.errors import ConfigError, Problem
from syncd.records import RECORD_FIELDS

ENV_PREFIX = "SYNCD_"
ENV_DELIMITER = "__"
DEFAULT_CONFIG_FILE = "syncd.toml"

#: The largest integer SQLite (and PostgreSQL's bigint) stores: ids and limits above it
#: cannot be looked up, so they are refused where they are typed.
INT64_MAX = 2**63 - 1

#: An inventory id (type, organization) as the config may name it.
Id = Annotated[int, Field(ge=1, le=INT64_MAX)]


class _Section(BaseModel):
    # ``inf`` and ``nan`` parse as floats, and pass ``gt=0``: refuse them everywhere.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class RetrySettings(_Section):
    """Retries of retriable failures (429, 502/503/504, timeouts, connection errors)."""

    attempts: int = Field(6, ge=1, le=100, description="tries in all, the first included")
    timeout: float = Field(
        60.0, gt=0, le=300, description="total seconds one call may spend retrying (max 300)"
    )
    # A wait longer than the whole retry budget could never happen: 300 s at most.
    wait_initial: float = Field(0.5, ge=0, le=300)
    wait_max: float = Field(30.0, ge=0, le=300)
    wait_jitter: float = Field(1.0, ge=0, le=300)


class RateLimitSettings(_Section):
    """Client-side pacing of requests to the inventory API: one budget per token, shared
    by every thread and process that uses the same storage."""

    requests_per_second: float = Field(10.0, ge=0.01, le=10_000)
    burst: int = Field(10, ge=1, le=100_000)
    guard: float = Field(
        0.05,
        ge=0,
        le=5,
        description="seconds added to the window before a slot is reused: room for the "
        "time between taking a slot and the request reaching the server (a busy machine, "
        "the network); costs guard/window of the budget at full speed",
    )
    storage_uri: str = Field(
        "auto",
        description='where the budget lives: "memory://" (this process), "redis://host:6379/1" '
        '(every process), or "auto": the daemon\'s Redis broker if it has one, else memory',
    )

    @field_validator("storage_uri")
    @classmethod
    def _storage(cls, value: str) -> str:
        if value != "auto" and not re.match(r"^(memory|redis|rediss|redis\+sentinel)://", value):
            raise ValueError('must be "auto", "memory://" or a redis:// URL')
        return value


class InventorySettings(_Section):
    """Where the inventory API is and how to talk to it."""

    base_url: str = "http://127.0.0.1:8765/api/v1"
    token: SecretStr | None = Field(
        None, description="only from the environment: SYNCD_INVENTORY__TOKEN"
    )
    token_file: Path | None = None
    # One request may not outlast the retry budget's ceiling (300 s), well inside the
    # 10-minute window after which a claimed change counts as abandoned.
    timeout: float = Field(30.0, gt=0, le=300, description="read/write timeout, seconds")
    connect_timeout: float = Field(5.0, gt=0, le=300)
    max_connections: int = Field(10, ge=1, le=1000)
    max_keepalive_connections: int = Field(5, ge=0, le=1000)
    page_size: int = Field(100, ge=25, le=100, description="the vendor asks for 25-100")
    verify_tls: bool = True
    retry: RetrySettings = Field(default_factory=RetrySettings)
    rate_limit: RateLimitSettings = Field(default_factory=RateLimitSettings)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        example = "must be an http(s) URL such as https://host/api/v1"
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(example)
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises for a port outside 0-65535
        except ValueError as exc:
            raise ValueError(f"{example} ({exc})") from None
        if not parts.hostname or any(c.isspace() for c in value):
            raise ValueError(f"{example}, with a host name and no blanks")
        return value.rstrip("/")

    def resolved_token(self) -> SecretStr | None:
        """The token from the environment, else from ``token_file``; ``None`` if neither.

        ``ConfigError`` when ``token_file`` cannot be read or holds nothing: a secret file
        that is there but empty is a failed deployment, not an unset token."""
        return read_secret(self.token, self.token_file, setting="inventory.token_file")


def read_secret(value: SecretStr | None, file: Path | None, *, setting: str) -> SecretStr | None:
    """A secret from the environment (``value``), else from ``file``; ``None`` if neither.

    ``ConfigError`` naming ``setting`` (``inventory.token_file``) when the file cannot be
    read or holds nothing."""
    if value is not None and value.get_secret_value():
        return value
    if file is None:
        return None
    name = setting.rsplit(".", 1)[-1]
    problem = token_file_problem(file, name)
    if problem is None:
        try:
            return SecretStr(file.read_text(encoding="utf-8").strip())
        except (OSError, UnicodeDecodeError) as exc:  # changed since the check
            problem = f"{name} {str(file)!r} cannot be read: {exc}"
    raise ConfigError([Problem(setting, problem)])


def token_file_problem(path: Path, name: str = "token_file") -> str | None:
    """What is wrong with a secret file (missing, unreadable, empty), or ``None``.
    The message names the setting and the file, and never quotes its content."""
    shown = f"{name} {str(path)!r}"
    if not path.exists():
        return f"{shown} does not exist"
    if not path.is_file():
        return f"{shown} is not a file"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return f"{shown} is not UTF-8 text"
    except OSError as exc:
        return f"{shown} cannot be read: {exc.strerror or exc}"
    if not text.strip():
        return f"{shown} is empty"
    return None


class StoreSettings(_Section):
    """The state store: SQLite (embedded default) or PostgreSQL (scale-out)."""

    url: str = "sqlite:///var/syncd.db"
    echo: bool = False


_DURATION = re.compile(r"^\s*(?:every\s+)?(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
#: The shortest schedule interval (the daemon's clock ticks once a second).
MIN_INTERVAL = 1.0
MAX_INTERVAL = 366 * 86400.0


def parse_interval(text: str) -> float | None:
    """Seconds of ``"30s"``, ``"10m"``, ``"every 2h"``, ``"1d"``, ``"45"`` (seconds);
    ``None`` if ``text`` is not an interval (it may be a cron expression)."""
    found = _DURATION.match(text)
    if found is None:
        return None
    return float(found.group(1)) * _UNIT_SECONDS[(found.group(2) or "s").lower()]


def check_schedule(value: str | None) -> str | None:
    """A schedule is an interval (``"10m"``) or a five-field cron expression
    (``"*/15 * * * *"``: minute hour day-of-month month day-of-week)."""
    if value is None:
        return None
    seconds = parse_interval(value)
    if seconds is not None:
        if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
            raise ValueError(
                f"an interval must be between {MIN_INTERVAL:.0f} s and 366 days, not {value!r}"
            )
        return value
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(
            f"{value!r} is neither an interval (30s, 10m, 2h, 1d) nor a cron expression of "
            "five fields (minute hour day-of-month month day-of-week)"
        )
    from celery.schedules import crontab  # only when a cron expression is configured

    minute, hour, day_of_month, month, day_of_week = fields
    try:
        crontab(minute, hour, day_of_week, day_of_month, month)
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"{value!r} is not a valid cron expression: {exc}") from None
    return value


Schedule = Annotated[str | None, Field(description="an interval or a cron expression")]


class ConnectorSettings(_Section):
    """One configured source: an instance name, the plugin that reads it, and its options."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="the records' source name"
    )
    plugin: str = Field(description="entry point in the syncd.connectors group, e.g. csv_drop")
    enabled: bool = True
    schedule: Schedule = Field(
        None,
        description='when the daemon runs it: an interval ("10m") or a cron expression '
        '("*/15 * * * *"); none: only on demand',
    )
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)


class OutboxSettings(_Section):
    """How changes go out: how many at once, how often a transient failure is tried."""

    concurrency: int = Field(
        8, ge=1, le=256, description="changes in flight at once in one process"
    )
    max_attempts: int = Field(
        5, ge=1, le=100, description="tries of a change that meets transient failures"
    )
    retry_delay: float = Field(
        5.0, ge=0, le=3600, description="seconds before a retry when the server names none"
    )
    dispatch_lease: float = Field(
        120.0, ge=1, le=86400, description="a sent change not taken by then is sent again"
    )
    claim_lease: float = Field(
        600.0,
        ge=60,
        le=86400,
        description="a change claimed by a process on another machine is recovered after",
    )
    max_mirror_age: float = Field(
        3600.0,
        ge=0,
        le=366 * 86400,
        description="an update or adoption planned against an inventory listing older than "
        "this reads its device first (0: always trust the mirror)",
    )


class DaemonSettings(_Section):
    """The daemon: its broker, its own schedules, and where it keeps its files."""

    broker_url: str = Field(
        "",
        description='"" for the embedded broker (files under data_dir: one process, no '
        'server); "redis://host:6379/0" to scale out over several workers',
    )
    data_dir: Path = Field(Path("var/daemon"), description="the embedded broker and beat files")
    mirror_refresh: Schedule = Field("15m", description="how often the inventory is listed")
    sweep_interval: float = Field(
        10.0, ge=1, le=3600, description="seconds between sweeps of the outbox"
    )
    run_lease: float = Field(
        3600.0, ge=10, le=86400, description="a connector run's lock lease, seconds"
    )
    visibility_timeout: float = Field(
        1800.0,
        ge=60,
        le=86400,
        description="Redis broker: an unacknowledged task is delivered again after this",
    )
    worker_concurrency: int = Field(8, ge=1, le=256, description="threads per worker")

    @field_validator("mirror_refresh")
    @classmethod
    def _refresh(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, value: str) -> str:
        if value and not re.match(r"^(redis|rediss|redis\+sentinel|filesystem|memory)://", value):
            raise ValueError('must be "" (embedded), a redis:// URL, or filesystem://')
        return value

    @property
    def scale_out(self) -> bool:
        """True with a Redis broker: locks and the rate budget live in Redis."""
        return self.broker_url.startswith(("redis", "rediss"))


#: The shortest trigger token or webhook secret accepted: a guessable one would let
#: anyone start runs.
MIN_API_SECRET = 16
#: The largest request body the API may be configured to accept (64 MiB).
MAX_API_BODY = 64 * 1024 * 1024


class ApiSettings(_Section):
    """The HTTP API (``syncd serve``): on-demand runs and the NetBox webhook receiver.

    Its secrets, like the inventory token, never come from the TOML file: the
    trigger token (``Authorization: Bearer`` of ``POST /v1/triggers``) from
    ``SYNCD_API__TRIGGER_TOKEN`` or ``trigger_token_file``, the webhook secret (the key
    NetBox signs its webhooks with) from ``SYNCD_API__WEBHOOK_SECRET`` or
    ``webhook_secret_file``, and the pepper API tokens are hashed with (``syncd tokens``)
    from ``SYNCD_API__TOKEN_PEPPER`` or ``token_pepper_file``. An endpoint whose secret
    is not set answers 503."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, hide_input_in_errors=True)

    host: str = Field(
        "127.0.0.1",
        pattern=r"^[^\s/]+$",
        description="address to listen on (0.0.0.0: every interface)",
    )
    port: int = Field(8780, ge=0, le=65535, description="port to listen on; 0 picks a free one")
    trigger_token: SecretStr | None = Field(
        None, description="only from the environment: SYNCD_API__TRIGGER_TOKEN"
    )
    trigger_token_file: Path | None = None
    webhook_secret: SecretStr | None = Field(
        None, description="only from the environment: SYNCD_API__WEBHOOK_SECRET"
    )
    webhook_secret_file: Path | None = None
    token_pepper: SecretStr | None = Field(
        None, description="only from the environment: SYNCD_API__TOKEN_PEPPER"
    )
    token_pepper_file: Path | None = None
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=MAX_API_BODY,
        description="largest request body accepted (a larger one is refused with 413)",
    )

    @field_validator("trigger_token", "webhook_secret", "token_pepper")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and 0 < len(value.get_secret_value().strip()) < MIN_API_SECRET:
            raise ValueError(f"must be at least {MIN_API_SECRET} characters long")
        return value

    def resolved_trigger_token(self) -> SecretStr | None:
        """The trigger token (environment, else ``trigger_token_file``), or ``None``."""
        return _long_secret(
            read_secret(
                self.trigger_token, self.trigger_token_file, setting="api.trigger_token_file"
            ),
            "api.trigger_token_file",
        )

    def resolved_webhook_secret(self) -> SecretStr | None:
        """The webhook secret (environment, else ``webhook_secret_file``), or ``None``."""
        return _long_secret(
            read_secret(
                self.webhook_secret, self.webhook_secret_file, setting="api.webhook_secret_file"
            ),
            "api.webhook_secret_file",
        )

    def resolved_token_pepper(self) -> SecretStr | None:
        """The key API tokens are hashed with (``syncd.service.access``): environment,
        else ``token_pepper_file``; ``None`` when neither is set."""
        return _long_secret(
            read_secret(self.token_pepper, self.token_pepper_file, setting="api.token_pepper_file"),
            "api.token_pepper_file",
        )


def _long_secret(secret: SecretStr | None, setting: str) -> SecretStr | None:
    """``secret`` unless it is too short to be safe (``ConfigError`` naming ``setting``)."""
    if secret is not None and len(secret.get_secret_value().strip()) < MIN_API_SECRET:
        problem = f"the secret must be at least {MIN_API_SECRET} characters long"
        raise ConfigError([Problem(setting, problem)])
    return secret


class RetentionSettings(_Section):
    """How long the audit log keeps its detail (``syncd prune``, and the daemon on
    ``schedule``). Run summaries are kept forever; change rows and rejects past either
    limit (age, or beyond the newest N) are exported to gzip'd JSON lines under
    ``export_dir`` and then deleted; changes still on their way (pending, dispatched,
    applying, held) never are. ``0`` turns a limit off."""

    schedule: Schedule = Field(
        "1d", description="when the daemon prunes: an interval or a cron line; none: never"
    )
    changes_max_age_days: float = Field(
        365.0, ge=0, le=36_600, description="final change rows older than this go (0: no limit)"
    )
    changes_max_count: int = Field(
        0, ge=0, le=INT64_MAX, description="keep at most the newest N change rows (0: no limit)"
    )
    rejects_max_age_days: float = Field(
        90.0, ge=0, le=36_600, description="rejects older than this go (0: no limit)"
    )
    rejects_max_count: int = Field(
        0, ge=0, le=INT64_MAX, description="keep at most the newest N rejects (0: no limit)"
    )
    idle_runs_max_age_hours: float = Field(
        24.0, ge=0, le=876_000, description="idle polls (nothing found) are deleted after this"
    )
    export: bool = Field(True, description="write what is pruned to export_dir first")
    export_dir: Path = Field(Path("var/audit-export"), description="where exports go")
    chunk_rows: int = Field(
        5000, ge=100, le=100_000, description="rows exported and deleted per transaction"
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value or None)


class FieldPolicySettings(_Section):
    """How syncd treats one inventory field."""

    mode: Literal["managed", "create_only", "ignore"] = "managed"
    sources: list[str] = Field(default_factory=list, description="priority order for this field")
    on_manual_edit: Literal["report", "overwrite"] = "report"


class SerialSettings(_Section):
    """Explicit serial normalisation. The default is exact: only surrounding blanks go."""

    strip: bool = True
    case: Literal["preserve", "upper", "lower"] = "preserve"
    strip_prefixes: list[str] = Field(default_factory=list)
    remove_chars: str = ""


class PolicySettings(_Section):
    """What syncd may change, in what order of trust, and when it must stop and ask."""

    source_priority: list[str] = Field(default_factory=list)
    fields: dict[str, FieldPolicySettings] = Field(default_factory=dict)
    serial: SerialSettings = Field(default_factory=SerialSettings)
    adopt: bool = True
    delete_orphans: bool = True
    orphan_grace_runs: int = Field(3, ge=0, le=1_000_000)
    orphan_grace_hours: float = Field(24.0, ge=0, le=876_000, description="at most 100 years")
    max_delete_share: float = Field(0.10, ge=0, le=1)
    max_delete_count_without_gate: int = Field(0, ge=0, le=INT64_MAX)
    min_source_ratio: float = Field(0.6, ge=0, le=1)
    type_map: dict[str, Id] = Field(default_factory=dict)
    organization_map: dict[str, Id] = Field(default_factory=dict)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["console", "json"] = "console"


class Settings(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_DELIMITER,
        extra="forbid",
        case_sensitive=False,
    )

    inventory: InventorySettings = Field(default_factory=InventorySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    connectors: list[ConnectorSettings] = Field(default_factory=list)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    def rate_limit_key(self) -> str:
        """The request budget's name: one per API token (a short hash, never the token)."""
        token = self.inventory.resolved_token()
        secret = token.get_secret_value() if token is not None else ""
        digest = hashlib.sha256(secret.encode()).hexdigest()[:16] if secret else "no-token"
        return f"inventory:{digest}"

    def rate_limit_storage(self) -> str:
        """Where the request budget lives (``inventory.rate_limit.storage_uri``, with
        ``auto`` resolved: the Redis broker's server when scaling out, else memory)."""
        uri = self.inventory.rate_limit.storage_uri
        if uri != "auto":
            return uri
        return self.daemon.broker_url if self.daemon.scale_out else "memory://"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file (the file's values arrive as init kwargs).
        return (env_settings, init_settings)


# -- loading -------------------------------------------------------------------------------


def load_settings(path: str | Path | None = None, *, required: bool = False) -> Settings:
    """Read, validate and return the configuration, or raise ``ConfigError`` listing every
    problem with its location.

    With ``path=None`` the default file is read when it exists. ``required`` makes a
    missing file an error.
    """
    file = Path(path) if path is not None else Path(DEFAULT_CONFIG_FILE)
    label = str(file)
    data: dict[str, Any] = {}
    text = ""
    if file.exists():
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([Problem(label, f"cannot read: {exc}")], source=label) from exc
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            problem = Problem(_toml_error_location(label, exc), f"not valid TOML: {message}")
            raise ConfigError([problem], source=label) from exc
    elif required or path is not None:
        raise ConfigError([Problem(label, "no such file")], source=label)

    problems = list(_forbidden_secrets(data, label, text))
    problems.extend(_check_connectors(data.get("connectors"), label, text))
    problems.extend(_check_policy_names(data, label, text))
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        problems.extend(_problems_from_validation(exc, label, text))
        raise ConfigError(problems, source=label) from None
    except SettingsError as exc:
        problems.extend(_problems_from_environment(exc))
        raise ConfigError(problems, source=label) from None
    problems.extend(_check_token_file(settings, label, text))
    if problems:
        raise ConfigError(problems, source=label)
    return _anchor_paths(settings, file.parent if file.exists() else Path.cwd())


def _anchor_paths(settings: Settings, base: Path) -> Settings:
    """A relative SQLite path is relative to the config file's folder, not to wherever
    the command happens to run (cron runs from $HOME): else a run from elsewhere would
    start on an empty store and forget ownership, tombstones and what it wrote."""
    if not settings.daemon.data_dir.is_absolute():
        daemon = settings.daemon.model_copy(
            update={"data_dir": (base / settings.daemon.data_dir).resolve()}
        )
        settings = settings.model_copy(update={"daemon": daemon})
    if not settings.retention.export_dir.is_absolute():
        retention = settings.retention.model_copy(
            update={"export_dir": (base / settings.retention.export_dir).resolve()}
        )
        settings = settings.model_copy(update={"retention": retention})
    prefix = "sqlite:///"
    url = settings.store.url
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        relative = url[len(prefix) :]
        if relative and relative != ":memory:" and not relative.startswith("file:"):
            anchored = (base / relative).resolve()
            store = settings.store.model_copy(update={"url": f"{prefix}{anchored}"})
            return settings.model_copy(update={"store": store})
    return settings


#: ``(section, key)`` of every secret that comes only from the environment or a file.
_SECRETS: tuple[tuple[str, str], ...] = (
    ("inventory", "token"),
    ("api", "trigger_token"),
    ("api", "webhook_secret"),
    ("api", "token_pepper"),
)


def _forbidden_secrets(data: Mapping[str, Any], label: str, text: str) -> Iterable[Problem]:
    for section, key in _SECRETS:
        table = data.get(section)
        if isinstance(table, Mapping) and key in table:
            env = f"{ENV_PREFIX}{section.upper()}{ENV_DELIMITER}{key.upper()}"
            what = "the token" if key == "token" else f"{section}.{key}"
            yield Problem(
                _locate(label, text, (section, key)),
                f"{what} must not be written in the config file: set {env} "
                f"or point {section}.{key}_file at a secret file",
            )


def _check_policy_names(data: Mapping[str, Any], label: str, text: str) -> Iterable[Problem]:
    """Field names in ``[policy.fields]`` must be record fields, and source names in the
    policy must be connectors of this config: a misspelt name would silently never match."""
    policy = data.get("policy")
    if not isinstance(policy, Mapping):
        return
    fields = policy.get("fields")
    fields = fields if isinstance(fields, Mapping) else {}
    for name in fields:
        if name not in RECORD_FIELDS:
            hint = " (the API's 'type' is 'device_type' here)" if name == "type" else ""
            yield Problem(
                _locate(label, text, ("policy", "fields", name)),
                f"policy.fields.{name}: unknown field{hint}; known: {', '.join(RECORD_FIELDS)}",
            )
    raw = data.get("connectors")
    names = (
        {c.get("name") for c in raw if isinstance(c, Mapping)} if isinstance(raw, list) else set()
    )
    if not names:
        return
    named: list[tuple[tuple[str, ...], object]] = []
    priority = policy.get("source_priority")
    if isinstance(priority, list):
        named.extend((("policy", "source_priority"), n) for n in priority)
    for field, settings in fields.items():
        sources = settings.get("sources") if isinstance(settings, Mapping) else None
        if isinstance(sources, list):
            named.extend((("policy", "fields", str(field), "sources"), n) for n in sources)
    known = ", ".join(sorted(str(n) for n in names))
    for loc, name in named:
        if name not in names:
            yield Problem(
                _locate(label, text, loc),
                f"{'.'.join(loc)}: no connector is named {name!r} (connectors: {known})",
            )


def _check_token_file(settings: Settings, label: str, text: str) -> Iterable[Problem]:
    for section, key in _SECRETS:
        owner = getattr(settings, section)
        file: Path | None = getattr(owner, f"{key}_file")
        if file is None:
            continue
        value: SecretStr | None = getattr(owner, key)
        problem = token_file_problem(file, f"{key}_file")
        if problem and not (value is not None and value.get_secret_value() and file.is_file()):
            # (the environment's secret wins: then the file may be an empty placeholder)
            yield Problem(_locate(label, text, (section, f"{key}_file")), problem)


def _problems_from_environment(exc: SettingsError) -> list[Problem]:
    """pydantic-settings could not parse an environment variable (a list or table setting
    must be JSON there): name the variables that may be at fault."""
    match = re.search(r'field "([^"]+)"', str(exc))
    prefix = ENV_PREFIX + (match.group(1).upper() if match else "")
    names = sorted(k for k in os.environ if k.upper().startswith(prefix)) or [prefix + "*"]
    hint = "lists and tables are given as JSON there, e.g. SYNCD_POLICY__TYPE_MAP='{\"X\": 1}'"
    return [Problem(f"environment {name}", f"cannot be parsed ({hint})") for name in names]


def _check_connectors(raw: Any, label: str, text: str) -> Iterable[Problem]:
    """Each connector's options against its plugin's own ``Config`` model (the shape of
    the list itself is the ``Settings`` model's business)."""
    if not isinstance(raw, list):
        return
    from connectors.base import available_plugins, load_plugin

    plugins = available_plugins()
    seen: set[str] = set()
    for index, connector in enumerate(raw):
        if not isinstance(connector, Mapping):
            continue
        base = ("connectors", str(index))
        name, plugin = connector.get("name"), connector.get("plugin")
        if isinstance(name, str):
            if name in seen:
                where = _locate(label, text, (*base, "name"))
                yield Problem(where, f"connector name {name!r} is used twice")
            seen.add(name)
        if not isinstance(plugin, str):
            continue
        if plugin not in plugins:
            known = ", ".join(sorted(plugins)) or "none installed"
            where = _locate(label, text, (*base, "plugin"))
            yield Problem(where, f"no connector plugin {plugin!r} (available: {known})")
            continue
        try:
            load_plugin(plugin).Config.model_validate(connector.get("options", {}))
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                loc = (*base, "options", *(str(p) for p in error["loc"]))
                message = error["msg"]
                if error["type"] == "extra_forbidden":
                    message = "unknown option (misspelt?)"
                yield Problem(_locate(label, text, loc), f"{'.'.join(loc)}: {message}")


def locate(path: Path, loc: tuple[str, ...]) -> str:
    """Where the setting ``loc`` of the config file ``path`` comes from: ``environment
    SYNCD_...`` when the environment sets it, else ``file:line`` (or ``file``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    return _where(str(path), text, loc)


def _where(label: str, text: str, loc: tuple[str, ...]) -> str:
    env_name = ENV_PREFIX + ENV_DELIMITER.join(p.upper() for p in loc)
    if env_name in {k.upper() for k in os.environ}:
        return f"environment {env_name}"
    return _locate(label, text, loc)


def _problems_from_validation(exc: ValidationError, label: str, text: str) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(str(part) for part in error["loc"])
        where = _where(label, text, loc)
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown setting (misspelt?)"
        problems.append(Problem(where, f"{'.'.join(loc)}: {message}"))
    return problems


_TABLE = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"' ]+?)\s*=")


def _locate(label: str, text: str, loc: tuple[str, ...]) -> str:
    """``file:line`` of the deepest part of ``loc`` found in the TOML text, else ``file``.

    Understands tables, arrays of tables (``[[connectors]]`` -> ``connectors.0``, the
    sub-tables that follow them) and dotted keys; good enough to point a person at
    the right line, which is all it is for.
    """
    best_line, best_depth = 0, 0
    table: tuple[str, ...] = ()
    arrays: dict[tuple[str, ...], int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE.match(line)
        if header:
            table = _resolve_table(_split_key(header.group(2)), arrays, header.group(1) == "[[")
            depth = _common_prefix(table, loc)
            if depth == len(table) and depth > best_depth:
                best_line, best_depth = number, depth
            continue
        key = _KEY.match(line)
        if key:
            full = table + _split_key(key.group(1))
            depth = _common_prefix(full, loc)
            if depth == min(len(full), len(loc)) and depth > best_depth:
                best_line, best_depth = number, depth
    return f"{label}:{best_line}" if best_line else label


def _resolve_table(
    path: tuple[str, ...], arrays: dict[tuple[str, ...], int], is_array: bool
) -> tuple[str, ...]:
    resolved: tuple[str, ...] = ()
    for index, part in enumerate(path):
        resolved += (part,)
        prefix = path[: index + 1]
        last = index == len(path) - 1
        if last and is_array:
            arrays[prefix] = arrays.get(prefix, -1) + 1
            resolved += (str(arrays[prefix]),)
        elif not last and prefix in arrays:
            resolved += (str(arrays[prefix]),)
    return resolved


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _split_key(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in key.split("."))


def _toml_error_location(label: str, exc: tomllib.TOMLDecodeError) -> str:
    match = re.search(r"line (\d+), column (\d+)", str(exc))
    return f"{label}:{match.group(1)}:{match.group(2)}" if match else label
