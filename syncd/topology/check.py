"""``--check``: a short end to end through the running topology, as an operator would
see it. Each step says what it saw; the first that fails raises ``CheckFailedError``.

1. ``GET /healthz`` and ``GET /readyz`` of the HTTP app answer 200 (ready: the store,
   and Redis when scaled out);
2. the sample procurement CSV dropped into the inbox is applied by a scheduled run:
   the run is ``done`` with every change applied;
3. each device that run created is in the sandbox's inventory;
4. ``POST /v1/triggers`` with the operator token queues a run that the daemon takes
   and finishes ``done`` with nothing left to change (``GET /v1/triggers/{id}``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from syncd.cli.demo import example_file
from syncd.topology import LocalStackError
from syncd.topology.stack import Stack

if TYPE_CHECKING:
    from syncd.store import RunRow, Store

T = TypeVar("T")

#: Seconds each step may wait for the daemon.
STEP_TIMEOUT = 60.0
CONNECTOR = "procurement"


class CheckFailedError(LocalStackError):
    """A step of the check saw something other than what it expects."""


def run_check(stack: Stack, say: Callable[[str], None]) -> None:
    """The steps of the module, in order; ``say`` gets one line per step passed."""
    from syncd.config import load_settings
    from syncd.store import Store

    operator = stack.secret("operator_token").read_text(encoding="utf-8").strip()
    with (
        httpx.Client(base_url=stack.api_url, timeout=10) as api,
        Store.from_settings(load_settings(stack.config).store, migrate=False) as store,
    ):
        _health(api, say)
        run_id = _drop_applied(stack, store, say)
        _in_sandbox(stack, store, run_id, say)
        _trigger(api, operator, stack, say)


def _health(api: httpx.Client, say: Callable[[str], None]) -> None:
    healthz = api.get("/healthz")
    _expect(healthz.status_code == 200, f"GET /healthz answered {healthz.status_code}")
    readyz = api.get("/readyz")
    checks = readyz.json().get("checks", {}) if readyz.status_code in (200, 503) else {}
    _expect(
        readyz.status_code == 200,
        f"GET /readyz answered {readyz.status_code} (checks: {checks})",
    )
    say(f"ok  /healthz 200, /readyz 200 (ready: {', '.join(sorted(checks))})")


def _drop_applied(stack: Stack, store: Store, say: Callable[[str], None]) -> int:
    """Drop the sample CSV; the id of the scheduled run that applied it."""
    part = stack.inbox / "procurement.csv.part"  # written under an ignored name, then renamed
    part.write_text(example_file("procurement.csv"), encoding="utf-8")
    part.rename(stack.inbox / "procurement.csv")
    begun = time.monotonic()

    def finished() -> tuple[RunRow, dict[str, int]] | None:
        for run in store.runs(limit=20, idle=False):
            counts = store.change_counts(run.id)
            if run.status not in ("planning", "applying") and counts:
                return run, counts
        return None

    run, counts = _wait(finished, "the dropped CSV to be applied by a scheduled run", stack)
    _expect(
        run.status == "done" and set(counts) == {"applied"},
        f"run {run.id} ended {run.status} with changes {counts}: {run.error or ''}",
    )
    took = time.monotonic() - begun
    say(f"ok  the CSV drop: run {run.id} ({run.trigger}) done in {took:.1f} s, {counts}")
    return int(run.id)


def _in_sandbox(stack: Stack, store: Store, run_id: int, say: Callable[[str], None]) -> None:
    created = {
        c.serial_number
        for c in store.changes(run_id=run_id, limit=10_000)
        if c.operation == "create" and c.status == "applied"
    }
    _expect(bool(created), f"run {run_id} created no device")
    token = stack.secret("inventory_token").read_text(encoding="utf-8").strip()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stack.sandbox_url + "/", headers=headers, timeout=10) as client:
        present = _sandbox_serials(client)
    missing = sorted(created - present)
    _expect(not missing, f"created but not in the sandbox: {', '.join(missing[:10])}")
    say(f"ok  the sandbox holds the {len(created)} devices run {run_id} created")


def _sandbox_serials(client: httpx.Client) -> set[str]:
    serials: set[str] = set()
    offset = 0
    while True:
        answer = client.get("inventory_device_serial/", params={"limit": 100, "offset": offset})
        _expect(answer.status_code == 200, f"the sandbox's list answered {answer.status_code}")
        page = answer.json()
        serials.update(item["serial_number"] for item in page["results"])
        if not page["next"]:
            return serials
        offset += 100


def _trigger(api: httpx.Client, token: str, stack: Stack, say: Callable[[str], None]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    asked = api.post("/v1/triggers", json={"connector": CONNECTOR}, headers=headers)
    _expect(asked.status_code == 202, f"POST /v1/triggers answered {asked.status_code}")
    url = asked.json()["url"]

    def answered() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(url, headers=headers).json()
        run = body.get("run")
        running = run is not None and run["status"] in ("planning", "applying")
        return body if body["state"] in ("done", "failed") and not running else None

    body = _wait(answered, f"the triggered run ({url})", stack)
    run = body.get("run") or {}
    _expect(
        body["state"] == "done" and run.get("status") == "done" and not run.get("changes"),
        f"{url}: state {body['state']}, run {run} (expected done with nothing to change)",
    )
    say(f"ok  POST /v1/triggers: {url} done by run {run['id']}, nothing left to change")


def _wait(probe: Callable[[], T | None], what: str, stack: Stack) -> T:
    deadline = time.monotonic() + STEP_TIMEOUT
    while True:
        found = probe()
        if found is not None:
            return found
        dead = stack.dead()
        if dead is not None:
            raise dead.died()
        if time.monotonic() > deadline:
            raise CheckFailedError(f"timed out after {STEP_TIMEOUT:.0f} s waiting for {what}")
        time.sleep(0.2)


def _expect(condition: bool, failure: str) -> None:
    if not condition:
        raise CheckFailedError(failure)
