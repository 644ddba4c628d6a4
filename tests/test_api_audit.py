"""The audit over HTTP: a real ``syncd serve`` answers from a store that real runs wrote
against the sandbox, and every answer is checked against that store; the operator's
actions (approve, discard, retry, revert) are checked against the sandbox's state.

Run 1 created five devices (one with a ``/`` in its serial), failed one (a type the
sandbox does not know) and rejected a row; then SN00001 was renamed by hand and run 2
reported the conflict.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from syncd.sandbox.testing import SandboxProcess
from syncd.service.access import issue
from syncd.store import Store
from tests.apisupport import LIMIT, ApiProcess
from tests.runsupport import HEADER, TYPE_MAP, Row, RunEnv, rows, toml_text
from tests.test_api_access import ROLE_TABLE

PEPPER = "pepper-" + secrets.token_hex(16)
SLASHED = Row("AB/12-x", "slashed")
GHOST = Row("GHOST00001", "ghost", device_type="Ghost Type")
BAD_ROW = "BAD1,bad,Cisco Catalyst 9300,Acme Corp IT,999.1.1.1,DC1\n"


@dataclass
class Served:
    """A store written by real runs, and ``syncd serve`` over it."""

    env: RunEnv
    api: ApiProcess
    http: httpx.Client
    viewer: dict[str, str]
    operator: dict[str, str]
    operator_name: str

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params, headers=self.viewer)

    def ok(self, path: str, **params: Any) -> Any:
        answer = self.get(path, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def sql(self, query: str, **params: Any) -> list[Any]:
        with Store.open(self.env.store_url) as store, store.engine.connect() as conn:
            return list(conn.execute(sa.text(query), params).all())


def _csv(devices: list[Row], extra: str = "") -> str:
    lines = [",".join(HEADER), *(",".join(d.cells()) for d in devices)]
    return "\n".join(lines) + "\n" + extra


def _serve(env: RunEnv, root: Path) -> Iterator[Served]:
    """``syncd serve`` over ``env``'s store, with a viewer and an operator token."""
    config = env.config()
    config["daemon"] = {"data_dir": str(root / "daemon")}
    config["api"] = {"max_body_bytes": LIMIT}
    path = root / "syncd.toml"
    path.write_text(toml_text(config), encoding="utf-8")
    pepper = SecretStr(PEPPER)
    with Store.open(env.store_url) as store:
        _, viewer = issue(store, "grafana", "viewer", pepper)
        _, operator = issue(store, "alice", "operator", pepper)
    environment = {
        "SYNCD_API__TOKEN_PEPPER": PEPPER,
        "SYNCD_INVENTORY__TOKEN": env.sandbox.token.get_secret_value(),
    }
    with ApiProcess(path, env=environment) as api, api.client() as http:
        yield Served(
            env,
            api,
            http,
            {"Authorization": f"Bearer {viewer.get_secret_value()}"},
            {"Authorization": f"Bearer {operator.get_secret_value()}"},
            "alice",
        )


def _env(sandbox: SandboxProcess, root: Path) -> RunEnv:
    inbox = root / "inbox"
    inbox.mkdir()
    env = RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{root / 'syncd.db'}")
    env.csv_options = {"max_error_ratio": 0.5}
    env.policy = {"type_map": {**TYPE_MAP, "Ghost Type": 999}}
    return env


@pytest.fixture(scope="module")
def audited(
    sandbox_process: SandboxProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """Read only: the runs of the module docstring, served (one world for the module)."""
    sandbox_process.reset()
    root = tmp_path_factory.mktemp("audited")
    env = _env(sandbox_process, root)
    env.drop(_csv([*rows(4), SLASHED, GHOST], BAD_ROW))
    env.run()
    with sandbox_process.client() as api:
        assert api.patch("inventory_device_serial/SN00001/", json={"name": "by-hand"}).is_success
    env.run()
    yield from _serve(env, root)


@pytest.fixture
def served(sandbox: SandboxProcess, tmp_path: Path) -> Iterator[Served]:
    """Run 1 created SN00001..SN00010; nothing else yet (each test acts on its own)."""
    env = _env(sandbox, tmp_path)
    env.drop(rows(10))
    assert env.run().status == "done"
    yield from _serve(env, tmp_path)


def _ids(items: list[dict[str, Any]]) -> list[int]:
    return [item["id"] for item in items]


# -- reads -----------------------------------------------------------------------------------


def test_runs_and_one_run_answer_what_the_store_holds(audited: Served) -> None:
    runs = audited.ok("/v1/runs")
    stored = audited.sql("SELECT id, status, trigger, error FROM sync_run ORDER BY id DESC")
    one = audited.ok("/v1/runs/1")
    inbox = audited.env.inbox

    assert [(r["id"], r["status"], r["trigger"], r["error"]) for r in runs["items"]] == [
        tuple(row) for row in stored
    ]
    assert (runs["next_before"], runs["next"]) == (None, None)
    assert _ids(audited.ok("/v1/runs", status="failed")["items"]) == [1]
    assert audited.ok("/v1/runs", trigger="schedule")["items"] == []
    assert one["status"] == "failed"
    assert one["error"] == stored[-1][3] is not None
    assert one["changes_by_operation"] == {"create": 6}
    assert one["changes_by_status"] == dict(
        audited.sql("SELECT status, count(*) FROM change WHERE run_id = 1 GROUP BY status")
    )
    assert [b["stored_at"] for b in one["batches"]] == [str(inbox / "processed" / "drop-001.csv")]
    assert [r["location_now"] for r in one["rejects"]] == [
        f"{inbox / 'processed' / 'drop-001.csv'}:8"
    ]
    assert (inbox / "processed" / "drop-001.csv").read_text().splitlines()[7].startswith("BAD1")
    assert sorted(_ids(one["changes"])) == [
        i for (i,) in audited.sql("SELECT id FROM change WHERE run_id = 1 ORDER BY id")
    ]
    assert "orphans_waiting" in one


def test_changes_filtered_as_the_cli_filters_them(audited: Served) -> None:
    every = audited.ok("/v1/changes", limit=100)["items"]
    stored = audited.sql("SELECT id, serial_number, operation, status FROM change ORDER BY id DESC")
    conflict = audited.ok("/v1/changes", serial="SN00001", conflicts="true")["items"]
    failed = audited.ok("/v1/changes", status="failed")["items"]
    two_ops = audited.ok("/v1/changes", operation=["conflict", "create"], run=2)["items"]

    assert [(c["id"], c["serial_number"], c["operation"], c["status"]) for c in every] == [
        tuple(row) for row in stored
    ]
    assert [(c["run"], c["operation"], c["status"]) for c in conflict] == [
        (2, "conflict", "skipped")
    ]
    assert conflict[0]["changes"]["name"] == {
        "before": "by-hand",
        "after": "sw-00001",
        "before_known": True,
    }
    assert conflict[0]["trigger"] == "cli"
    assert [(c["serial_number"], c["response"]["status_code"]) for c in failed] == [
        ("GHOST00001", 400)
    ]
    assert _ids(two_ops) == _ids(conflict)
    assert audited.ok("/v1/changes", held="true")["items"] == []
    assert audited.ok("/v1/changes", connector="netbox")["items"] == []
    assert len(audited.ok("/v1/changes", connector="procurement", limit=100)["items"]) == 7
    assert audited.ok("/v1/changes", since="2h")["items"] == every[:50]
    assert audited.ok("/v1/changes", until="2000-01-01")["items"] == []


def test_paging_walks_every_change_exactly_once(audited: Served) -> None:
    seen: list[int] = []
    url: str | None = "/v1/changes?limit=2"
    pages = 0
    while url is not None:
        page = audited.http.get(url, headers=audited.viewer).json()
        seen += _ids(page["items"])
        url = page["next"]
        pages += 1
        assert page["next_before"] == (page["items"][-1]["id"] if url else None)
    applied = audited.ok("/v1/changes", status="applied", limit=2)

    assert seen == [i for (i,) in audited.sql("SELECT id FROM change ORDER BY id DESC")]
    assert pages == 4  # 7 changes, 2 a page
    assert applied["next"].startswith("/v1/changes?")  # relative: right behind any proxy
    assert "status=applied" in applied["next"]  # the next page keeps the filters
    older = audited.http.get(applied["next"], headers=audited.viewer).json()["items"]
    assert {c["status"] for c in older} == {"applied"}
    assert max(_ids(older)) < min(_ids(applied["items"]))


def test_rejects_and_drift(audited: Served) -> None:
    rejects = audited.ok("/v1/rejects")["items"]
    drift = audited.ok("/v1/drift")

    assert [(r["serial_number"], r["run"]) for r in rejects] == [("BAD1", 1)]
    assert rejects[0]["location_now"].endswith("processed/drop-001.csv:8")
    assert audited.ok("/v1/rejects", run=2)["items"] == []
    assert [(c["serial_number"], c["field"]) for c in drift["conflicts"]] == [("SN00001", "name")]
    assert [m["serial_number"] for m in drift["missing_from_inventory"]] == ["GHOST00001"]
    assert drift["missing_total"] == 1


def test_a_device_history_by_exact_serial_even_with_a_slash(audited: Served) -> None:
    plain = audited.ok("/v1/devices/AB/12-x/history")
    encoded = audited.ok(f"/v1/devices/{quote('AB/12-x', safe='')}/history")
    hand_edited = audited.ok("/v1/devices/SN00001/history")
    other_case = audited.get("/v1/devices/sn00001/history")

    assert plain == encoded
    assert plain["serial_number"] == "AB/12-x"
    assert [(c["operation"], c["status"]) for c in plain["changes"]] == [("create", "applied")]
    assert plain["inventory"]["values"]["name"] == "slashed"
    assert [c["operation"] for c in hand_edited["changes"]] == ["conflict", "create"]
    assert hand_edited["inventory"]["values"]["name"] == "by-hand"
    assert other_case.status_code == 404  # serials are case-sensitive
    assert "'sn00001'" in other_case.json()["detail"]


def test_bad_query_values_are_refused_naming_the_parameter(audited: Served) -> None:
    cases = {
        ("/v1/changes", "operation", "frobnicate"): 422,
        ("/v1/changes", "status", "lost"): 422,
        ("/v1/changes", "since", "yesterday"): 422,
        ("/v1/runs", "until", "soon"): 422,
        ("/v1/changes", "limit", "0"): 422,
        ("/v1/changes", "before", "x"): 422,
        ("/v1/changes", "held", "maybe"): 422,
        ("/v1/runs", "all", "perhaps"): 422,
        ("/v1/rejects", "run", "-1"): 422,
    }
    for (path, name, value), status in cases.items():
        answer = audited.get(path, **{name: value})
        assert answer.status_code == status, (path, name, answer.text)
        assert answer.json()["detail"].startswith(name), answer.json()
    assert audited.get("/v1/runs/99").status_code == 404
    assert audited.get("/v1/runs/99").json()["detail"] == "no run 99"
    assert audited.get("/v1/runs/abc").status_code == 422


# -- actions ---------------------------------------------------------------------------------


def _held(served: Served) -> int:
    """A held plan: the source shrank from 10 rows to 2 (below min_source_ratio), one of
    them with SN00002 moved to DC2. Returns its run id."""
    wanted = rows(10)
    moved = dataclasses.replace(wanted[1], location="DC2")
    served.env.drop([wanted[0], moved])
    result = served.env.run()
    assert result.status == "held", result.summary()
    return result.run_id


def test_approve_of_a_held_plan_applies_it_and_names_who(served: Served) -> None:
    run_id = _held(served)
    path = f"/v1/runs/{run_id}/approve"
    as_viewer = served.http.post(path, headers=served.viewer)
    before = served.env.devices()["SN00002"]["location"]
    approved = served.http.post(path, headers=served.operator)
    after = served.env.devices()["SN00002"]["location"]
    again = served.http.post(path, headers=served.operator)
    [(status, by)] = served.sql("SELECT status, approved_by FROM sync_run WHERE id = :i", i=run_id)
    detail = served.ok(f"/v1/runs/{run_id}")
    with Store.open(served.env.store_url) as store:
        orphans = store.orphans()

    assert as_viewer.status_code == 403
    assert before == "DC1"  # the viewer's attempt did nothing
    assert approved.status_code == 200, approved.text
    assert approved.json()["released"] >= 1
    assert approved.json()["failed"] == 0
    assert approved.json()["run"]["approved_by"] == "alice"
    assert after == "DC2"
    assert (status, by) == ("done", "alice")
    assert again.status_code == 409
    assert f"run {run_id} is done, not held" in again.json()["detail"]
    assert served.http.post("/v1/runs/99/approve", headers=served.operator).status_code == 404
    # the run's detail names the orphans the smaller source left, with when each falls due
    waiting = {o["serial_number"]: o for o in detail["orphans_waiting"]}
    assert (
        sorted(waiting)
        == sorted(o.serial_number for o in orphans)
        == [f"SN{i:05d}" for i in range(3, 11)]
    )
    for orphan in orphans:
        due = datetime.fromisoformat(waiting[orphan.serial_number]["due_not_before"])
        assert due - orphan.first_missing.replace(tzinfo=UTC) == timedelta(hours=24)
        assert waiting[orphan.serial_number]["runs_left"] == 3 - orphan.runs_missing
    # no secret reached the server's output
    output = served.api.output()
    for secret in (served.viewer, served.operator):
        assert secret["Authorization"].removeprefix("Bearer ") not in output
    assert served.env.sandbox.token.get_secret_value() not in output


def test_discard_of_a_held_plan_skips_it(served: Served) -> None:
    run_id = _held(served)
    held = served.sql("SELECT count(*) FROM change WHERE run_id = :i AND status = 'held'", i=run_id)
    answer = served.http.post(
        f"/v1/runs/{run_id}/discard", json={"reason": "not today"}, headers=served.operator
    )
    [(status, error)] = served.sql("SELECT status, error FROM sync_run WHERE id = :i", i=run_id)

    assert answer.status_code == 200, answer.text
    assert answer.json()["discarded"] == held[0][0] > 0
    assert answer.json()["run"]["status"] == "discarded"
    assert (status, error) == ("discarded", "discarded by alice: not today")
    assert served.env.devices()["SN00002"]["location"] == "DC1"


def test_retry_sends_failed_changes_again(served: Served) -> None:
    served.env.sandbox.set_faults(script=["ok", "400", "400"])  # the listing, two creates
    served.env.drop(rows(12))
    failed_run = served.env.run()
    failed = served.sql("SELECT id FROM change WHERE status = 'failed' ORDER BY id")
    as_viewer = served.http.post(
        "/v1/changes/retry", json={"run": failed_run.run_id}, headers=served.viewer
    )
    answer = served.http.post(
        "/v1/changes/retry", json={"run": failed_run.run_id}, headers=served.operator
    )

    assert len(failed) == 2  # SN00011 and SN00012
    assert as_viewer.status_code == 403
    assert answer.status_code == 200, answer.text
    assert sorted(answer.json()["sent"]) == [i for (i,) in failed]
    assert answer.json()["applied"] == len(failed)
    assert answer.json()["failed"] == []
    assert {"SN00011", "SN00012"} <= set(served.env.devices())
    assert served.sql("SELECT count(*) FROM change WHERE status = 'failed'") == [(0,)]


def test_revert_dry_run_then_for_real(served: Served) -> None:
    renamed = rows(10)
    renamed[2].name = "renamed"
    served.env.drop(renamed)
    run_id = served.env.run().run_id
    assert served.env.devices()["SN00003"]["name"] == "renamed"
    path = f"/v1/runs/{run_id}/revert"

    dry = served.http.post(path, json={"dry_run": True}, headers=served.operator)
    untouched = served.env.devices()["SN00003"]["name"]
    done = served.http.post(path, headers=served.operator)

    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True
    assert dry.json()["revert_of"] == run_id
    assert [(op["operation"], op["serial_number"]) for op in dry.json()["plan"]] == [
        ("update", "SN00003")
    ]
    assert dry.json()["plan"][0]["changes"]["name"] == {"before": "renamed", "after": "sw-00003"}
    assert untouched == "renamed"
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done"
    assert done.json()["refused"] == []
    assert served.env.devices()["SN00003"]["name"] == "sw-00003"
    with Store.open(served.env.store_url) as store:
        revert_run = store.run(done.json()["run"])
    assert revert_run is not None
    assert revert_run.trigger == "revert"
    assert revert_run.summary["requested_by"] == "alice"


def test_action_bodies_are_checked_and_size_limited(served: Served) -> None:
    post, who = served.http.post, served.operator
    unknown_field = post("/v1/runs/1/revert", json={"dryrun": True}, headers=who)
    wrong_type = post("/v1/runs/1/revert", json={"dry_run": "yes"}, headers=who)
    neither = post("/v1/changes/retry", json={}, headers=who)
    both = post("/v1/changes/retry", json={"run": 1, "changes": [1]}, headers=who)
    not_json = post("/v1/runs/1/discard", content=b"{", headers=who)
    too_large = post("/v1/runs/1/discard", json={"reason": "x" * (LIMIT + 1)}, headers=who)
    no_run = post("/v1/runs/99/revert", headers=who)
    not_held = post("/v1/runs/1/discard", headers=who)

    assert unknown_field.status_code == 422
    assert unknown_field.json()["errors"] == [
        {"field": "dryrun", "message": "unknown field (misspelt?)"}
    ]
    assert wrong_type.status_code == 422
    assert wrong_type.json()["detail"].startswith("dry_run:")
    assert neither.status_code == both.status_code == 422
    assert "run, or changes (not both)" in neither.json()["detail"]
    assert not_json.status_code == 400
    assert too_large.status_code == 413
    assert no_run.status_code == 404
    assert not_held.status_code == 409
    assert served.sql("SELECT status FROM sync_run WHERE id = 1") == [("done",)]


# -- the OpenAPI document --------------------------------------------------------------------


def test_the_openapi_document_lists_every_route_with_its_security(audited: Served) -> None:
    answer = audited.http.get("/openapi.json")  # public: no token
    document = answer.json()
    listed = {
        (method.upper(), path): operation
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
    }
    wanted = {
        (method, path.replace(":path}", "}")): role
        for (method, path), (role, _) in ROLE_TABLE.items()
        if path != "/openapi.json"
    }
    security: dict[str, list[dict[str, list[str]]]] = {
        "public": [],
        "viewer": [{"bearer": []}],
        "operator": [{"bearer": []}],
        "netbox-signature": [{"hookSignature": []}],
    }

    assert answer.status_code == 200
    assert set(listed) == set(wanted)
    for key, role in wanted.items():
        assert listed[key]["security"] == security[role], key
        assert listed[key]["x-syncd-role"] == role, key
    assert set(document["components"]["securitySchemes"]) == {"bearer", "hookSignature"}
    params = {p["name"] for p in listed["GET", "/v1/changes"]["parameters"]}
    assert {"serial", "connector", "run", "operation", "status", "since", "until"} <= params
    assert {"conflicts", "held", "limit", "before"} <= params
    retry = listed["POST", "/v1/changes/retry"]["requestBody"]["content"]["application/json"]
    assert set(retry["schema"]["properties"]) == {"run", "changes"}
