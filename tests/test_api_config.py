"""``[api]``: where the trigger token and the webhook secret may come from, and bounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.config import load_settings
from syncd.errors import ConfigError

TOKEN = "a-trigger-token-long-enough"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "syncd.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(config: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(config).api.resolved_trigger_token()
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("key", "env"),
    [
        ("trigger_token", "SYNCD_API__TRIGGER_TOKEN"),
        ("webhook_secret", "SYNCD_API__WEBHOOK_SECRET"),
    ],
)
def test_a_secret_written_in_the_file_is_refused_where_it_is(
    tmp_path: Path, key: str, env: str
) -> None:
    config = write(tmp_path, f'[store]\nurl = "sqlite://"\n\n[api]\n{key} = "{TOKEN}"\n')

    [problem] = problems(config)

    assert problem.startswith(f"{config}:5: api.{key} must not be written in the config file")
    assert env in problem
    assert f"api.{key}_file" in problem
    assert TOKEN not in problem


def test_a_short_secret_from_the_environment_is_refused_without_quoting_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_API__WEBHOOK_SECRET", "short-secret")
    config = write(tmp_path, "")

    [problem] = problems(config)

    assert problem.startswith("environment SYNCD_API__WEBHOOK_SECRET: api.webhook_secret")
    assert "at least 16 characters" in problem
    assert "short-secret" not in problem


def test_secrets_from_files_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text(f"  {TOKEN}\n", encoding="utf-8")
    (tmp_path / "secret").write_text("hook-secret-from-the-file\n", encoding="utf-8")
    config = write(
        tmp_path,
        f'[api]\ntrigger_token_file = "{tmp_path / "token"}"\n'
        f'webhook_secret_file = "{tmp_path / "secret"}"\n',
    )
    api = load_settings(config).api
    token, secret = api.resolved_trigger_token(), api.resolved_webhook_secret()
    assert token is not None
    assert secret is not None
    assert (token.get_secret_value(), secret.get_secret_value()) == (
        TOKEN,
        "hook-secret-from-the-file",
    )

    monkeypatch.setenv("SYNCD_API__TRIGGER_TOKEN", "the-environment-wins-over-files")
    token = load_settings(config).api.resolved_trigger_token()
    assert token is not None
    assert token.get_secret_value() == "the-environment-wins-over-files"


def test_an_empty_or_short_secret_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    (tmp_path / "short").write_text("tiny-token\n", encoding="utf-8")
    empty = write(tmp_path, f'[api]\nwebhook_secret_file = "{tmp_path / "empty"}"\n')

    assert problems(empty) == [f"{empty}:2: webhook_secret_file '{tmp_path / 'empty'}' is empty"]

    short = write(tmp_path, f'[api]\ntrigger_token_file = "{tmp_path / "short"}"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(short).api.resolved_trigger_token()
    [problem] = caught.value.problems
    assert str(problem) == (
        "api.trigger_token_file: the secret must be at least 16 characters long"
    )


def test_defaults_and_bounds(tmp_path: Path) -> None:
    api = load_settings(write(tmp_path, "")).api
    assert (api.host, api.port, api.max_body_bytes) == ("127.0.0.1", 8780, 1024 * 1024)
    assert api.resolved_trigger_token() is None
    assert api.resolved_webhook_secret() is None

    bad = write(tmp_path, '[api]\nmax_body_bytes = 10\nport = 70000\nhost = "a b"\n')
    found = problems(bad)
    assert [p.split(": ")[1] for p in found] == ["api.host", "api.port", "api.max_body_bytes"]


def test_the_api_secrets_are_redacted_once_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syncd import log
    from syncd.api.auth import ApiSecrets

    token, secret = "trigger-" + tmp_path.name + "-0123456789", "hook-" + tmp_path.name + "-0123"
    monkeypatch.setenv("SYNCD_API__TRIGGER_TOKEN", token)
    monkeypatch.setenv("SYNCD_API__WEBHOOK_SECRET", secret)

    ApiSecrets.from_settings(load_settings(write(tmp_path, "")))

    line = log.redact(f"a library said {token} and {secret.upper()}")
    assert token not in line
    assert secret.upper() not in line
