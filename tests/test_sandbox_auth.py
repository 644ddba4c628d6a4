"""Authentication (401) and organization scoping (403) in the sandbox."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from syncd.sandbox.testing import SandboxProcess
from tests.conftest import SCOPED_ORG

LIST = "/inventory_device_serial/"
OTHER_ORG = 2
DENIED = {"detail": "You do not have permission to perform this action."}


def device(serial: str, org: int, **fields: Any) -> dict[str, Any]:
    return {"serial_number": serial, "name": serial, "type": 1, "organization": org, **fields}


@pytest.fixture
def two_orgs(sandbox: SandboxProcess) -> None:
    sandbox.load([device("MINE-1", SCOPED_ORG), device("MINE-2", SCOPED_ORG)])
    sandbox.load([device("THEIRS-1", OTHER_ORG), device("THEIRS-2", 1)])


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", LIST),
        ("POST", LIST),
        ("GET", f"{LIST}ANY/"),
        ("PUT", f"{LIST}ANY/"),
        ("PATCH", f"{LIST}ANY/"),
        ("DELETE", f"{LIST}ANY/"),
    ],
)
def test_missing_token_is_401_before_anything_else(
    sandbox: SandboxProcess, method: str, path: str
) -> None:
    r = httpx.request(method, f"{sandbox.base_url}{path}", json={})
    assert r.status_code == 401
    assert r.json() == {"detail": "Authentication credentials were not provided."}
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        ("Bearer wrong-token", "Invalid token."),
        ("bearer wrong-token", "Invalid token."),
        ("Bearer", "Invalid token header. No credentials provided."),
        ("Bearer a b", "Invalid token header. Token string should not contain spaces."),
        ("Basic dXNlcjpwYXNz", "Authentication credentials were not provided."),
        ("Token abc", "Authentication credentials were not provided."),
    ],
)
def test_bad_authorization_header_is_401(sandbox: SandboxProcess, header: str, detail: str) -> None:
    r = httpx.get(f"{sandbox.base_url}{LIST}", headers={"Authorization": header})
    assert r.status_code == 401
    assert r.json() == {"detail": detail}
    assert r.headers["www-authenticate"] == "Bearer"


def test_token_of_another_case_is_invalid(sandbox: SandboxProcess) -> None:
    token = sandbox.token.get_secret_value()
    flipped = token.swapcase() if token.swapcase() != token else token + "x"
    r = httpx.get(f"{sandbox.base_url}{LIST}", headers={"Authorization": f"Bearer {flipped}"})
    assert r.status_code == 401


def test_unauthenticated_writes_change_nothing(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    r = httpx.post(f"{sandbox.base_url}{LIST}", json=device("X", 1))
    assert r.status_code == 401
    assert sandbox_api.get(LIST).json()["count"] == 0


def test_scheme_keyword_is_case_insensitive(sandbox: SandboxProcess) -> None:
    token = sandbox.token.get_secret_value()
    r = httpx.get(f"{sandbox.base_url}{LIST}", headers={"Authorization": f"BEARER {token}"})
    assert r.status_code == 200


def test_scoped_list_shows_only_its_organization(
    sandbox_scoped_api: httpx.Client, sandbox_api: httpx.Client, two_orgs: None
) -> None:
    page = sandbox_scoped_api.get(LIST).json()
    assert page["count"] == 2
    assert [d["serial_number"] for d in page["results"]] == ["MINE-1", "MINE-2"]
    assert sandbox_api.get(LIST).json()["count"] == 4
    own = sandbox_scoped_api.get(LIST, params={"organization": SCOPED_ORG})
    assert own.status_code == 200
    assert own.json()["count"] == 2


def test_scoped_organization_filter_outside_scope_is_403(
    sandbox_scoped_api: httpx.Client, two_orgs: None
) -> None:
    r = sandbox_scoped_api.get(LIST, params={"organization": OTHER_ORG})
    assert r.status_code == 403
    assert r.json() == DENIED


def test_scoped_token_cannot_touch_other_devices(
    sandbox_scoped_api: httpx.Client, sandbox_api: httpx.Client, two_orgs: None
) -> None:
    url = f"{LIST}THEIRS-1/"
    assert sandbox_scoped_api.get(url).json() == DENIED
    assert sandbox_scoped_api.get(url).status_code == 403
    assert sandbox_scoped_api.patch(url, json={"name": "hijack"}).status_code == 403
    put = sandbox_scoped_api.put(url, json={"name": "h", "type": 1, "organization": SCOPED_ORG})
    assert put.status_code == 403
    assert sandbox_scoped_api.delete(url).status_code == 403
    assert sandbox_api.get(url).json()["name"] == "THEIRS-1"
    assert sandbox_api.get(url).json()["organization"]["id"] == OTHER_ORG


def test_scoped_token_cannot_create_or_move_outside(
    sandbox_scoped_api: httpx.Client, sandbox_api: httpx.Client, two_orgs: None
) -> None:
    r = sandbox_scoped_api.post(LIST, json=device("NEW", OTHER_ORG))
    assert r.status_code == 403
    assert r.json() == DENIED
    assert sandbox_api.get(f"{LIST}NEW/").status_code == 404
    moved = sandbox_scoped_api.patch(f"{LIST}MINE-1/", json={"organization": OTHER_ORG})
    assert moved.status_code == 403
    assert sandbox_api.get(f"{LIST}MINE-1/").json()["organization"]["id"] == SCOPED_ORG


def test_scoped_token_works_inside_its_organization(
    sandbox_scoped_api: httpx.Client, two_orgs: None
) -> None:
    assert sandbox_scoped_api.post(LIST, json=device("NEW", SCOPED_ORG)).status_code == 201
    assert sandbox_scoped_api.patch(f"{LIST}NEW/", json={"name": "ok"}).status_code == 200
    assert sandbox_scoped_api.get(f"{LIST}NEW/").json()["name"] == "ok"
    assert sandbox_scoped_api.delete(f"{LIST}NEW/").status_code == 204


def test_unknown_serial_is_404_not_403_for_scoped_tokens(
    sandbox_scoped_api: httpx.Client, two_orgs: None
) -> None:
    assert sandbox_scoped_api.get(f"{LIST}NOPE/").status_code == 404
