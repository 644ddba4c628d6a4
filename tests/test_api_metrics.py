"""``/metrics`` after real runs against the sandbox, and what every log line of a run says.

Three ``syncd run --once`` processes (each its own process, as daemon workers would
be) reconcile a procurement CSV against the sandbox: creates, a create the API
refuses, a hand edit reported as a conflict, a shrunken source held by the gate. Then a
real ``syncd serve`` is scraped with a viewer token, the text is parsed with
``prometheus_client``'s own parser, and every number is checked against the store and
against what the sandbox says it received.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from syncd.sandbox.testing import SandboxProcess
from syncd.store import Store
from tests.apisupport import ApiProcess
from tests.runsupport import Row, RunEnv, rows, toml_text

SYNCD = (sys.executable, "-m", "syncd")
PEPPER = "pepper-" + secrets.token_hex(16)
#: A device type the config maps but the sandbox does not know: its create gets a 400.
GHOST = Row("GHOST00001", "ghost", device_type="Ghost Type")


def syncd_run(env: RunEnv, config: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """``syncd run --once`` as its own process, the inventory token in its environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    token = env.sandbox.token.get_secret_value()
    return subprocess.run(
        [*SYNCD, "run", "--once", "--config", str(config)],
        env={**base, "SYNCD_INVENTORY__TOKEN": token, "COLUMNS": "200", **extra_env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def write_config(env: RunEnv, root: Path) -> Path:
    config = env.config()
    config["policy"]["type_map"] = {**config["policy"]["type_map"], "Ghost Type": 999}
    config["daemon"] = {"data_dir": str(root / "daemon")}
    path = root / "syncd.toml"
    path.write_text(toml_text(config), encoding="utf-8")
    return path


def make_viewer(config: Path) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    made = subprocess.run(
        [*SYNCD, "tokens", "add", "prometheus", "--role", "viewer", "--config", str(config)],
        env={**base, "SYNCD_API__TOKEN_PEPPER": PEPPER},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return made.stdout.strip()


def scrape(text: str) -> dict[str, list[Sample]]:
    """The samples of each metric family, by family name."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    [found] = [s.value for s in samples if s.name == name and s.labels == labels]
    return found


@pytest.fixture
def env(sandbox: SandboxProcess, tmp_path: Path) -> RunEnv:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")


def test_metrics_after_real_runs_match_the_store_and_the_sandbox(
    env: RunEnv, tmp_path: Path
) -> None:
    config = write_config(env, tmp_path)
    wanted = rows(10)
    env.sandbox.clear_requests()
    env.drop([*wanted, GHOST])
    first = syncd_run(env, config)  # 10 creates, one refused
    sent = env.sandbox.requests()  # what syncd sent (the hand edit below is not syncd's)
    with env.sandbox.client() as sandbox:  # hand edits of two devices syncd created
        for row in wanted[:2]:
            edited = sandbox.patch(
                f"inventory_device_serial/{row.serial_number}/", json={"name": "by-hand"}
            )
            assert edited.status_code == 200
    env.sandbox.clear_requests()
    second = syncd_run(env, config)  # the edits are reported as conflicts
    moved = dataclasses.replace(wanted[1], location="DC2")  # a change after the conflict
    env.drop([wanted[0], moved, GHOST])
    third = syncd_run(env, config)  # 3 of 11 rows: the volume gate holds the plan
    sent += env.sandbox.requests()
    viewer = make_viewer(config)

    with ApiProcess(config, env={"SYNCD_API__TOKEN_PEPPER": PEPPER}) as api, api.client() as http:
        answer = http.get("/metrics", headers={"Authorization": f"Bearer {viewer}"})
    assert (first.returncode, second.returncode, third.returncode) == (1, 0, 5), (
        first.stdout + first.stderr + third.stdout
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    metrics = scrape(answer.text)

    with Store.open(env.store_url) as store, store.engine.connect() as conn:
        runs = conn.execute(
            sa.text("SELECT connector, status, count(*) FROM sync_run GROUP BY 1, 2")
        ).all()
        changes = conn.execute(
            sa.text("SELECT operation, status, count(*) FROM change GROUP BY 1, 2")
        ).all()
        tombstones = conn.execute(sa.text("SELECT count(*) FROM tombstone")).scalar_one()

    # runs and changes: the store's rows, label by label
    assert {(c, s): n for c, s, n in runs} == {
        ("(all)", "failed"): 1,
        ("(all)", "done"): 1,
        ("(all)", "held"): 1,
    }
    assert {
        (s.labels["connector"], s.labels["status"]): s.value for s in metrics["syncd_runs"]
    } == {(c, s): n for c, s, n in runs}
    assert {
        (s.labels["operation"], s.labels["status"]): s.value for s in metrics["syncd_changes"]
    } == {(o, s): n for o, s, n in changes}
    assert (
        value(metrics["syncd_changes"], "syncd_changes", operation="create", status="applied") == 10
    )
    assert (
        value(metrics["syncd_changes"], "syncd_changes", operation="create", status="failed") == 1
    )
    # the outbox is empty; the gate holds one plan
    for status in ("pending", "dispatched", "applying"):
        assert value(metrics["syncd_outbox_depth"], "syncd_outbox_depth", status=status) == 0
    assert metrics["syncd_outbox_oldest_age_seconds"][0].value == 0
    assert metrics["syncd_held_runs"][0].value == 1
    # drift: the refused device is missing, the 8 dropped ones wait as orphans, and both
    # hand edits stand as conflicts (3 conflict rows: the moved device's is reported again)
    drift = {s.labels["kind"]: s.value for s in metrics["syncd_drift_devices"]}
    assert drift["missing"] == 1
    assert drift["orphans"] == tombstones == 8
    assert (
        value(metrics["syncd_changes"], "syncd_changes", operation="conflict", status="skipped")
        == 3
    )
    assert drift["conflicts"] == 2
    # requests: exactly what the sandbox received, by method and status, from 3 processes
    received = Counter((r.method, str(r.status)) for r in sent)
    requests = {
        (s.labels["method"], s.labels["status"]): s.value
        for s in metrics["syncd_inventory_requests"]
        if s.name == "syncd_inventory_requests_total"
    }
    assert requests == dict(received)
    assert requests[("POST", "400")] == 1
    by_method = Counter(r.method for r in sent)
    durations = metrics["syncd_inventory_request_duration_seconds"]
    for method, count in by_method.items():
        name = "syncd_inventory_request_duration_seconds"
        assert value(durations, f"{name}_count", method=method) == count
        assert value(durations, f"{name}_bucket", method=method, le="+Inf") == count
    waits = metrics["syncd_ratelimit_wait_seconds"]
    assert value(waits, "syncd_ratelimit_wait_seconds_count") == len(sent)
    # no serial, no URL, no token in the text (labels stay few, secrets stay home)
    for leak in ("SN0", "GHOST", "127.0.0.1", viewer, PEPPER, env.sandbox.token.get_secret_value()):
        assert leak not in answer.text


def test_every_log_line_of_a_run_names_the_run_and_each_change_its_serial(
    env: RunEnv, tmp_path: Path
) -> None:
    config = write_config(env, tmp_path)
    env.drop(rows(3))
    done = syncd_run(env, config, SYNCD_LOGGING__FORMAT="json", SYNCD_LOGGING__LEVEL="DEBUG")

    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    start = events.index("run.start")
    run_id = lines[start]["run"]
    # from the run's start to its last line (then the client closes, the command exits)
    end = max(i for i, line in enumerate(lines) if line.get("run") == run_id)
    in_run = lines[start : end + 1]
    writes = [
        line
        for line in in_run
        if line["event"] == "inventory.request" and line["method"] in ("POST", "PATCH", "DELETE")
    ]
    assert len(in_run) > 20, "the requests, the libraries' own lines, the changes' lines"
    assert {line.get("logger") for line in in_run} >= {"httpcore.http11", None}
    assert [line for line in in_run if line.get("run") != run_id] == []
    assert len(writes) == 3
    assert sorted(line["serial"] for line in writes) == [r.serial_number for r in rows(3)]
    for line in in_run:
        if line["event"] == "inventory.request" and line["method"] in ("PATCH", "DELETE"):
            assert line["path"].endswith(f"/{quote(line['serial'], safe='')}/")
