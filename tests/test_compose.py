"""compose.yaml against the code it runs: no container engine runs here, so nothing
else would notice a service whose command syncd does not have, an option it does not
take, or a ``SYNCD_*`` variable no setting reads (pydantic-settings ignores it: the
deployment would run on a default without a word).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from typer.core import TyperGroup
from typer.main import get_command

from syncd.cli import _register, app
from syncd.config import ENV_DELIMITER, ENV_PREFIX, Settings

COMPOSE = Path(__file__).resolve().parent.parent / "compose.yaml"
#: Read by the command line (``--config``'s variable) and by ``tasks.app``, not a setting.
CONFIG_VARIABLE = "SYNCD_CONFIG"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def _syncd_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run syncd's image (``build: .``)."""
    return {name: s for name, s in compose["services"].items() if s.get("build") == "."}


def _cli() -> TyperGroup:
    _register()
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    return group


def _is_setting(variable: str) -> bool:
    """Whether ``SYNCD_SECTION__KEY`` names a field of ``Settings`` (nested)."""
    parts = variable.removeprefix(ENV_PREFIX).lower().split(ENV_DELIMITER)
    model: type[BaseModel] = Settings
    for index, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        last = index == len(parts) - 1
        annotation = field.annotation
        if last:
            return True
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return False
        model = annotation
    return False


def test_the_setting_lookup_tells_real_settings_from_misspelt_ones() -> None:
    assert _is_setting("SYNCD_INVENTORY__TOKEN_FILE")
    assert _is_setting("SYNCD_INVENTORY__RATE_LIMIT__STORAGE_URI")
    assert not _is_setting("SYNCD_INVENTORY__TOKENFILE")
    assert not _is_setting("SYNCD_API__PEPPER_FILE")
    assert not _is_setting("SYNCD_INVENTORY__TOKEN_FILE__X")


def test_every_service_runs_a_syncd_command_with_options_it_takes(
    compose: dict[str, Any],
) -> None:
    cli = _cli()
    services = _syncd_services(compose)
    assert {"sandbox", "worker", "beat", "api"} <= set(services)
    for name, service in services.items():
        command = service.get("command")
        if command is None:
            assert "cli" in service.get("profiles", []), f"{name} runs nothing"
            continue
        sub = cli.commands.get(command[0])
        assert sub is not None, f"{name}: syncd has no command {command[0]!r}"
        known = {opt for param in sub.params for opt in getattr(param, "opts", [])}
        given = [arg for arg in command[1:] if arg.startswith("--")]
        assert set(given) <= known, f"{name}: syncd {command[0]} has no {set(given) - known}"


def test_every_syncd_variable_is_a_setting(compose: dict[str, Any]) -> None:
    for name, service in _syncd_services(compose).items():
        for variable in service.get("environment") or {}:
            if variable.startswith(ENV_PREFIX) and variable != CONFIG_VARIABLE:
                assert _is_setting(variable), f"{name}: {variable} is no setting of syncd"


def test_every_secret_file_named_is_mounted_and_declared(compose: dict[str, Any]) -> None:
    declared = set(compose["secrets"])
    for name, service in compose["services"].items():
        mounted = set(service.get("secrets", []))
        assert mounted <= declared, f"{name}: undeclared secrets {mounted - declared}"
        values = [str(v) for v in (service.get("environment") or {}).values()]
        values += [str(arg) for arg in service.get("command") or []]
        for value in values:
            for secret in re.findall(r"/run/secrets/([\w.-]+)", value):
                assert secret in mounted, f"{name}: {value} but secret {secret} is not mounted"


def test_the_api_serves_with_the_pepper_and_is_checked_on_healthz(
    compose: dict[str, Any],
) -> None:
    api = compose["services"]["api"]
    command = api["command"]
    assert command[0] == "serve"
    port = command[command.index("--port") + 1]
    assert api["environment"]["SYNCD_API__TOKEN_PEPPER_FILE"] == "/run/secrets/token_pepper"
    probe = " ".join(api["healthcheck"]["test"])
    assert f"http://127.0.0.1:{port}/healthz" in probe
    # published on the host's loopback only: plain HTTP must not reach other machines
    assert all(str(p).startswith("127.0.0.1:") for p in api["ports"])
    assert {"postgres", "redis"} <= set(api["depends_on"])


def test_the_worker_health_check_pings_the_celery_app_syncd_runs(
    compose: dict[str, Any],
) -> None:
    test = compose["services"]["worker"]["healthcheck"]["test"]
    assert test[0] == "CMD-SHELL"
    words = shlex.split(test[1])
    app_module = words[words.index("-A") + 1]
    assert importlib.util.find_spec(app_module) is not None
    # compose turns $$ into $: the shell then matches this container's own node name
    assert words[-1] == "@$$HOSTNAME" + '"'
