"""Pure parts of the inventory client: backoff decisions, header and body parsing, paths,
configuration checks. No network here; the sandbox tests cover the wire."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from pydantic import SecretStr

from syncd.config import InventorySettings, RetrySettings
from syncd.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    NotFoundError,
    RateLimitedError,
    ServerUnavailableError,
    TimeoutError_,
)
from syncd.inventory import InventoryClient, parse_retry_after
from syncd.inventory.client import _instant, _item_path
from syncd.inventory.failures import field_errors_of
from syncd.inventory.retrying import RetryBudget
from syncd.ratelimit import LimitsRateLimiter
from syncd.redact import REDACTED, RedactSecrets, redact, redact_value

TOKEN = SecretStr("unit-token-3c1f9a")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _budget(clock: FakeClock, **overrides: float) -> RetryBudget:
    values: dict[str, float] = {
        "attempts": 10,
        "timeout": 60.0,
        "wait_initial": 0.5,
        "wait_max": 4.0,
        "wait_jitter": 0.0,
    }
    values.update(overrides)
    return RetryBudget(RetrySettings.model_validate(values), clock=clock)


# -- retry decisions -------------------------------------------------------------------------


def test_backoff_grows_exponentially_up_to_wait_max() -> None:
    budget = _budget(FakeClock())
    waits = [budget(ServerUnavailableError("x")) for _ in range(6)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_backoff_adds_bounded_jitter() -> None:
    budget = _budget(FakeClock(), wait_jitter=1.0, wait_max=100.0)
    waits = [budget(TimeoutError_("x")) for _ in range(50)]
    assert all(isinstance(w, float) for w in waits)
    assert 0.5 <= float(waits[0]) <= 1.5


def test_retry_after_overrides_backoff_and_is_never_shortened() -> None:
    budget = _budget(FakeClock(), wait_jitter=0.3)
    wait = budget(RateLimitedError("x", retry_after=7))
    assert isinstance(wait, float)
    assert 7 <= wait <= 7.3


def test_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    """Waiting 120 s inside a 60 s budget would only fail later; the caller gets the 429
    (with its retry_after) now and can reschedule."""
    budget = _budget(FakeClock(), timeout=60)
    assert budget(RateLimitedError("x", retry_after=120)) is False


def test_waits_never_overrun_the_deadline() -> None:
    clock = FakeClock()
    budget = _budget(clock, timeout=10, wait_initial=8, wait_max=100)
    clock.now += 7
    assert budget(ConnectionFailedError("x")) == pytest.approx(3.0)
    clock.now += 3
    assert budget(ConnectionFailedError("x")) is False


def test_only_retriable_errors_are_retried() -> None:
    budget = _budget(FakeClock())
    assert budget(NotFoundError("x", status_code=404)) is False
    assert budget(AuthenticationError("x", status_code=401)) is False
    assert budget(ValueError("x")) is False
    assert budget.failures == 0


# -- Retry-After -----------------------------------------------------------------------------


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("1.5") == 1.5


def test_retry_after_as_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(30.0)
    earlier = format_datetime(now - timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(earlier, now=now.timestamp()) == 0.0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "nan", "inf", "Mon, 99 Foo 2026"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value) is None


# -- 400 bodies ------------------------------------------------------------------------------


def test_field_errors_from_drf_bodies() -> None:
    assert field_errors_of({"name": ["This field is required."], "type": ["Invalid pk."]}) == {
        "name": ["This field is required."],
        "type": ["Invalid pk."],
    }
    assert field_errors_of({"ip_address": "Enter a valid IPv4 or IPv6 address."}) == {
        "ip_address": ["Enter a valid IPv4 or IPv6 address."]
    }
    assert field_errors_of({"type": {"id": ["bad"]}}) == {"type.id": ["bad"]}
    assert field_errors_of({"non_field_errors": ["clash"]}) == {"non_field_errors": ["clash"]}


def test_field_errors_tolerate_other_bodies() -> None:
    assert field_errors_of({"detail": "Bad request."}) == {}
    assert field_errors_of("<html>Bad Request</html>") == {}
    assert field_errors_of(["one", "two"]) == {}
    assert field_errors_of(None) == {}


# -- paths and query values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "path"),
    [
        ("SN123", "inventory_device_serial/SN123/"),
        ("t8jkszp", "inventory_device_serial/t8jkszp/"),  # case kept
        ("A/B", "inventory_device_serial/A%2FB/"),
        ("a b?#", "inventory_device_serial/a%20b%3F%23/"),
        ("50%", "inventory_device_serial/50%25/"),
        ("..", "inventory_device_serial/%2E%2E/"),  # never a dot-segment
        (".", "inventory_device_serial/%2E/"),
        (" SN1 ", "inventory_device_serial/%20SN1%20/"),  # never trimmed
    ],
)
def test_serial_is_one_encoded_segment(serial: str, path: str) -> None:
    assert _item_path(serial) == path


def test_empty_serial_is_refused() -> None:
    with pytest.raises(ValueError, match="serial"):
        _item_path("")


def test_instants_go_out_in_utc_whole_seconds() -> None:
    cest = timezone(timedelta(hours=2))
    assert _instant(datetime(2026, 5, 1, 14, 0, 30, 999_999, tzinfo=cest)) == (
        "2026-05-01T12:00:30+00:00"
    )
    assert _instant(datetime(2026, 5, 1, 12, 0)) == "2026-05-01T12:00:00+00:00"  # naive = UTC
    assert _instant(date(2000, 1, 1)) == "2000-01-01"


# -- construction ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["", "tok en", "tok\n", "tök"])
def test_unusable_tokens_are_refused_without_quoting_them(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        InventoryClient("http://127.0.0.1:1/api/v1", SecretStr(bad))
    if bad:
        assert bad not in str(info.value)


def test_plain_string_token_is_refused() -> None:
    with pytest.raises(TypeError, match="SecretStr"):
        InventoryClient("http://127.0.0.1:1/api/v1", "plain")  # type: ignore[arg-type]


def test_base_url_must_be_http() -> None:
    with pytest.raises(ConfigError, match="base_url"):
        InventoryClient("ftp://127.0.0.1/api", TOKEN)


def test_from_settings_without_token_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SYNCD_INVENTORY__TOKEN", raising=False)
    with pytest.raises(ConfigError, match="SYNCD_INVENTORY__TOKEN"):
        InventoryClient.from_settings(InventorySettings())


def test_from_settings_takes_everything_from_the_settings() -> None:
    settings = InventorySettings(
        base_url="http://127.0.0.1:9/api/v1/",
        page_size=50,
        retry=RetrySettings(attempts=3),
    )
    with InventoryClient.from_settings(settings, token=TOKEN) as client:
        assert client.base_url == "http://127.0.0.1:9/api/v1"
        assert client.page_size == 50
        text = repr(client)
    assert "attempts=3" in text
    assert "LimitsRateLimiter(10 per 1s" in text
    assert TOKEN.get_secret_value() not in text


def test_from_settings_reads_a_token_file(tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("file-token-77\n", encoding="utf-8")
    settings = InventorySettings(token_file=secret)
    limiter = LimitsRateLimiter(5, 5)
    with InventoryClient.from_settings(settings, rate_limiter=limiter) as client:
        assert "file-token-77" not in repr(client)
        assert "5 per 1s" in repr(client)


def test_page_size_is_bounded() -> None:
    with pytest.raises(ValueError, match="page_size"):
        InventoryClient("http://127.0.0.1:1/api/v1", TOKEN, page_size=500)


# -- redaction -------------------------------------------------------------------------------


def test_redact_replaces_every_occurrence() -> None:
    assert redact("a tok b tok", [SecretStr("tok")]) == f"a {REDACTED} b {REDACTED}"
    assert redact_value({"tok": ["x tok"], "n": 1}, ["tok"]) == {
        REDACTED: [f"x {REDACTED}"],
        "n": 1,
    }


def test_structlog_processor_redacts_events() -> None:
    processor = RedactSecrets([TOKEN])
    secret = TOKEN.get_secret_value()
    event = processor(None, "info", {"event": f"saw {secret}", "err": RuntimeError(secret), "n": 3})
    assert secret not in repr(event)
    assert event["n"] == 3
    assert secret not in repr(processor)
