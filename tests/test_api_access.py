"""Who may do what over HTTP: API tokens made, listed and revoked with the real
``syncd tokens`` command, and their effect on a real ``syncd serve`` process.

The role table below is the contract: every route of the app, who may call it, and a
path to call it by. ``test_every_route_declares_exactly_its_access`` walks
``app.routes``, so a route added without a role (or missing from the table) fails it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from syncd.api import create_app
from syncd.api.auth import operator, route_access, viewer
from syncd.config import load_settings
from syncd.store import Store
from tests.apisupport import PROCUREMENT, ApiProcess, netbox, write_config
from tests.test_cli_errors import Cli, said
from tests.test_cli_errors import cli as cli  # noqa: PLC0414 - the fixture

PEPPER = "pepper-" + secrets.token_hex(16)
TRIGGER = "trig-" + secrets.token_urlsafe(24)
HOOK = "hook-" + secrets.token_urlsafe(24)
#: What ``syncd tokens list`` calls the trigger token.
TRIGGER_NAME = "env:trigger_token"

#: (method, route path) -> (who may call it, a path to call it by). Every route of the
#: app must be here, with the one access it declares.
ROLE_TABLE: dict[tuple[str, str], tuple[str, str]] = {
    ("POST", "/v1/triggers"): ("operator", "/v1/triggers"),
    ("GET", "/v1/triggers/{request_id}"): ("viewer", "/v1/triggers/1"),
    ("POST", "/v1/webhooks/netbox"): ("netbox-signature", "/v1/webhooks/netbox"),
    ("POST", "/v1/webhooks/netbox/{connector}"): (
        "netbox-signature",
        "/v1/webhooks/netbox/netbox",
    ),
    ("GET", "/metrics"): ("viewer", "/metrics"),
    ("GET", "/healthz"): ("public", "/healthz"),
    ("GET", "/readyz"): ("public", "/readyz"),
    ("GET", "/openapi.json"): ("public", "/openapi.json"),
    ("GET", "/v1/runs"): ("viewer", "/v1/runs"),
    ("GET", "/v1/runs/{run_id}"): ("viewer", "/v1/runs/1"),
    ("GET", "/v1/changes"): ("viewer", "/v1/changes"),
    ("GET", "/v1/rejects"): ("viewer", "/v1/rejects"),
    ("GET", "/v1/devices/{serial:path}/history"): ("viewer", "/v1/devices/A/B/history"),
    ("GET", "/v1/drift"): ("viewer", "/v1/drift"),
    ("POST", "/v1/runs/{run_id}/approve"): ("operator", "/v1/runs/1/approve"),
    ("POST", "/v1/runs/{run_id}/discard"): ("operator", "/v1/runs/1/discard"),
    ("POST", "/v1/runs/{run_id}/revert"): ("operator", "/v1/runs/1/revert"),
    ("POST", "/v1/changes/retry"): ("operator", "/v1/changes/retry"),
}
#: A body each POST route accepts from a caller with the right role.
BODIES: dict[str, Any] = {
    "/v1/triggers": {"connector": "procurement"},
    "/v1/changes/retry": {"run": 1},
}


def access_problems(app: FastAPI, table: dict[tuple[str, str], tuple[str, str]]) -> list[str]:
    """What is wrong between ``app``'s routes and ``table`` (empty: nothing)."""
    problems = []
    seen = set()
    for route in route_access(app):
        if not route.methods:
            problems.append(f"{route.path} is not an API route: it cannot declare who may call it")
        for method in sorted(route.methods):
            key = (method, route.path)
            seen.add(key)
            if len(route.declared) != 1:
                problems.append(
                    f"{method} {route.path} declares {list(route.declared) or 'no access'}"
                )
            elif key not in table:
                problems.append(
                    f"{method} {route.path} ({route.declared[0]}) is not in the role table"
                )
            elif table[key][0] != route.declared[0]:
                problems.append(
                    f"{method} {route.path} is {route.declared[0]}, the table says {table[key][0]}"
                )
    problems += [
        f"{m} {p} is in the table but not in the app" for m, p in sorted(set(table) - seen)
    ]
    return problems


def syncd(
    config: Path, *args: str, pepper: str | None = PEPPER
) -> subprocess.CompletedProcess[str]:
    """``syncd ARGS --config CONFIG`` as a process, with the server's environment (the
    pepper: ``pepper``; and the trigger token)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    env["COLUMNS"] = "200"
    env["SYNCD_API__TRIGGER_TOKEN"] = TRIGGER
    if pepper is not None:
        env["SYNCD_API__TOKEN_PEPPER"] = pepper
    return subprocess.run(
        [sys.executable, "-m", "syncd", *args, "--config", str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def make_token(config: Path, name: str, role: str) -> str:
    made = syncd(config, "tokens", "add", name, "--role", role)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("syncd_"), "the token alone on stdout"
    assert f"token {name!r} ({role}) made" in " ".join(made.stderr.split())
    return token


def listed(config: Path) -> dict[str, dict[str, Any]]:
    shown = syncd(config, "tokens", "list", "--json")
    assert shown.returncode == 0, shown.stderr
    assert TRIGGER not in shown.stdout + shown.stderr
    assert PEPPER not in shown.stdout + shown.stderr
    return {entry["name"]: entry for entry in json.loads(shown.stdout)}


@dataclass
class Server:
    api: ApiProcess
    http: httpx.Client
    config: Path
    viewer: str
    operator: str
    #: every answer's body, to prove no secret is ever in one
    answers: list[str]

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        answer = self.http.request(method, path, headers=headers, **kwargs)
        self.answers.append(answer.text)
        return answer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("access")
    config = write_config(root, PROCUREMENT, netbox("netbox"))
    viewer_token = make_token(config, "grafana", "viewer")
    operator_token = make_token(config, "ci", "operator")
    env = {
        "SYNCD_API__TOKEN_PEPPER": PEPPER,
        "SYNCD_API__TRIGGER_TOKEN": TRIGGER,
        "SYNCD_API__WEBHOOK_SECRET": HOOK,
    }
    with ApiProcess(config, env=env) as api, api.client() as http:
        yield Server(api, http, config, viewer_token, operator_token, [])


def test_every_route_declares_exactly_its_access(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, PROCUREMENT))
    with Store.open(settings.store.url) as store:
        app = create_app(settings, store=store)

    assert access_problems(app, ROLE_TABLE) == []


def test_the_role_check_finds_a_route_without_a_role_or_with_two(tmp_path: Path) -> None:
    settings = load_settings(write_config(tmp_path, PROCUREMENT))
    with Store.open(settings.store.url) as store:
        app = create_app(settings, store=store)

    @app.get("/v1/forgotten")
    async def forgotten() -> None: ...

    @app.post("/v1/confused", dependencies=[Depends(viewer), Depends(operator)])
    async def confused() -> None: ...

    assert access_problems(app, ROLE_TABLE) == [
        "GET /v1/forgotten declares no access",
        "POST /v1/confused declares ['viewer', 'operator']",
    ]


@pytest.mark.parametrize(
    "route", [key for key, (role, _) in ROLE_TABLE.items() if role in ("viewer", "operator")]
)
def test_a_route_refuses_no_token_a_wrong_one_and_a_weaker_role(
    server: Server, route: tuple[str, str]
) -> None:
    method, _ = route
    role, path = ROLE_TABLE[route]
    body = BODIES.get(path)

    for token in (None, "syncd_" + "x" * 43, PEPPER, server.viewer + "x"):
        refused = server.call(method, path, token, json=body)
        assert refused.status_code == 401, (token, refused.text)
        assert refused.headers["WWW-Authenticate"] == 'Bearer realm="syncd"'
        assert "a valid API token is required" in refused.json()["detail"]
    weaker = server.call(method, path, server.viewer, json=body)
    allowed = server.call(method, path, server.operator, json=body)
    trigger_token = server.call(method, path, TRIGGER, json=body)

    if role == "operator":
        assert weaker.status_code == 403
        assert weaker.json()["detail"] == (
            "this needs the operator role; the token 'grafana' is a viewer"
        )
    else:
        assert weaker.status_code not in (401, 403), weaker.text
    assert allowed.status_code not in (401, 403), allowed.text
    assert trigger_token.status_code not in (401, 403), "the trigger token is an operator's"


@pytest.mark.parametrize("route", [k for k, (role, _) in ROLE_TABLE.items() if role == "public"])
def test_a_public_route_needs_no_token(server: Server, route: tuple[str, str]) -> None:
    method, _ = route
    answer = server.call(method, ROLE_TABLE[route][1])

    assert answer.status_code == 200


@pytest.mark.parametrize(
    "route", [k for k, (role, _) in ROLE_TABLE.items() if role == "netbox-signature"]
)
def test_a_webhook_needs_its_signature_not_a_token(server: Server, route: tuple[str, str]) -> None:
    method, _ = route
    for token in (None, server.operator, TRIGGER):
        answer = server.call(method, ROLE_TABLE[route][1], token, content=b"{}")
        assert answer.status_code == 401
        assert "X-Hook-Signature" in answer.json()["detail"]


def test_tokens_made_listed_and_revoked_with_the_cli_take_effect_over_http(
    server: Server,
) -> None:
    token = make_token(server.config, "lifecycle", "operator")
    before = listed(server.config)
    used = server.call("POST", "/v1/triggers", token, json={"connector": "procurement"})
    revoked = syncd(server.config, "tokens", "revoke", "lifecycle")
    refused = server.call("POST", "/v1/triggers", token, json={"connector": "procurement"})
    again = syncd(server.config, "tokens", "add", "lifecycle", "--role", "viewer")
    after = listed(server.config)

    assert before["lifecycle"]["role"] == "operator"
    assert (before["lifecycle"]["last_used_at"], before["lifecycle"]["revoked_at"]) == (None, None)
    assert before[TRIGGER_NAME]["role"] == "operator"
    assert before[TRIGGER_NAME]["source"] == "environment"
    assert used.status_code == 202
    assert revoked.returncode == 0
    assert "token 'lifecycle' (operator) revoked" in " ".join(revoked.stdout.split())
    assert refused.status_code == 401
    assert again.returncode == 1, "a name is never reused"
    assert "a token named 'lifecycle' exists already (revoked)" in " ".join(again.stderr.split())
    assert after["lifecycle"]["last_used_at"] is not None
    assert after["lifecycle"]["revoked_at"] is not None
    assert after["lifecycle"]["role"] == "operator"


def test_tokens_cannot_be_made_without_the_pepper_nor_with_a_bad_name_or_role(
    server: Server, cli: Cli
) -> None:
    # in this process, through the console script's entry point (faster than processes)
    config = ("--config", str(server.config))
    pepper = {"SYNCD_API__TOKEN_PEPPER": PEPPER}
    no_pepper = cli("tokens", "add", "nopepper", "--role", "viewer", *config)
    bad_name = cli("tokens", "add", "two words", "--role", "viewer", *config, env=pepper)
    bad_role = cli("tokens", "add", "boss", "--role", "admin", *config, env=pepper)
    unknown = cli("tokens", "revoke", "nobody", *config, env=pepper)
    shown = cli("tokens", "list", "--json", *config)

    assert no_pepper.returncode == 2
    assert "set SYNCD_API__TOKEN_PEPPER" in said(no_pepper)
    assert no_pepper.stdout == ""
    assert bad_name.returncode == 2
    assert "a token name is 1 to 64 letters" in said(bad_name)
    assert bad_role.returncode == 2
    assert "'admin' is not one of 'viewer', 'operator'" in said(bad_role)
    assert unknown.returncode == 1
    assert "no token named 'nobody'" in said(unknown)
    names = {entry["name"] for entry in json.loads(shown.stdout)}
    assert {"grafana", "ci"} <= names
    assert not {"nopepper", "two words", "boss"} & names


def test_the_store_keeps_only_a_keyed_hash_and_no_secret_leaves_the_server(server: Server) -> None:
    # (runs after the others in this module: the whole log so far is checked)
    server.call("POST", "/v1/triggers", server.viewer, json={"connector": "procurement"})  # 403
    server.call("GET", "/metrics", server.operator[::-1])  # 401
    server.call("GET", "/metrics", server.viewer)
    database = b"".join(path.read_bytes() for path in server.config.parent.glob("syncd.db*"))
    url = f"sqlite:///{server.config.parent / 'syncd.db'}"
    with Store.open(url) as store, store.engine.connect() as conn:
        stored: dict[str, str] = dict(
            conn.exec_driver_sql("SELECT name, token_hash FROM api_token").all()
        )
    expected = hmac.new(PEPPER.encode(), server.viewer.encode(), hashlib.sha256).hexdigest()
    output = server.api.output()

    assert stored["grafana"] == expected
    for secret in (server.viewer, server.operator, PEPPER, TRIGGER, HOOK):
        assert secret.encode() not in database
        assert secret not in output
        assert all(secret not in answer for answer in server.answers)
    assert "api.forbidden" in output
    assert "token=grafana" in output  # the log names who was refused, never with what
