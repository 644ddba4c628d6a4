"""The daemon's steps in-process (``syncd.service.daemon``), against the sandbox over HTTP.

The Celery tasks are thin calls into these functions; here a ``send`` that queues the
message in a list stands for the broker, so each test decides when (and whether) a
message is delivered: late, twice, or never.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time
from pydantic import SecretStr

from syncd.errors import AuthenticationError
from syncd.inventory import InventoryClient
from syncd.locks import StoreLocks
from syncd.process import GIVEN_UP
from syncd.ratelimit import RateLimiter
from syncd.sandbox.testing import SandboxProcess
from syncd.service import daemon
from syncd.service.apply import ApplyOutcome
from syncd.service.outbox import halted
from syncd.store import Store
from tests.runsupport import RunEnv, dead_owner, method_counts, rows


@pytest.fixture
def env(sandbox: SandboxProcess, tmp_path: Path) -> RunEnv:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    return RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")


class Mailbox:
    """The broker, as a list: ``send`` queues a change id, ``deliver`` applies them."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def send(self, change_id: int) -> None:
        self.sent.append(change_id)

    def deliver(self, worker: daemon.Worker) -> list[ApplyOutcome]:
        outcomes = [daemon.apply(worker, change_id) for change_id in self.sent]
        self.sent.clear()
        return outcomes


@contextmanager
def open_worker(
    env: RunEnv, *, token: SecretStr | None = None, limiter: RateLimiter | None = None
) -> Iterator[daemon.Worker]:
    settings = env.settings()
    with (
        Store.open(env.store_url) as store,
        InventoryClient.from_settings(
            settings.inventory, token=token or env.sandbox.token, rate_limiter=limiter
        ) as client,
    ):
        yield daemon.Worker(settings, store, client, StoreLocks(store))


class _BrokenBudget:
    """A rate limit whose shared storage went away (Redis restarting)."""

    def acquire(self) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    def pause(self, seconds: float) -> None:
        raise ConnectionError("Connection refused.")


def test_a_run_dispatches_and_the_last_change_closes_it(env: RunEnv) -> None:
    env.drop(rows(5))
    box = Mailbox()
    with open_worker(env) as worker:
        outcome = daemon.run_connector(worker, "procurement", send=box.send)
        assert outcome.status == "applying"
        assert outcome.dispatched == 5
        assert len(box.sent) == 5
        assert env.writes() == []  # committed and sent, not applied yet

        results = box.deliver(worker)

        assert {r.kind for r in results} == {"applied"}
        run = worker.store.run(outcome.run_id or 0)
    assert run is not None
    assert run.status == "done"
    assert method_counts(env.writes()) == {"POST": 5}


def test_a_message_delivered_twice_writes_once(env: RunEnv) -> None:
    env.drop(rows(2))
    box = Mailbox()
    with open_worker(env) as worker:
        daemon.run_connector(worker, "procurement", send=box.send)
        box.sent = box.sent + box.sent  # the broker redelivers every message
        kinds = sorted(r.kind for r in box.deliver(worker))
    assert kinds == ["applied", "applied", "gone", "gone"]
    assert method_counts(env.writes()) == {"POST": 2}


def test_a_lost_message_is_sent_again_by_the_sweeper_after_its_lease(env: RunEnv) -> None:
    env.outbox = {"dispatch_lease": 60}
    env.drop(rows(3))
    box = Mailbox()
    with open_worker(env) as worker:
        daemon.run_connector(worker, "procurement", send=box.send)
        box.sent.clear()  # the broker lost them all
        assert daemon.sweep(worker, box.send).resent == 0  # the lease still runs
        with freeze_time(datetime.now(UTC) + timedelta(seconds=61)):
            report = daemon.sweep(worker, box.send)
        assert report.resent == 3
        box.deliver(worker)
    assert method_counts(env.writes()) == {"POST": 3}


def test_a_run_of_a_connector_already_running_is_recorded_as_skipped(env: RunEnv) -> None:
    env.drop(rows(1))
    with open_worker(env) as worker:
        assert worker.locks.acquire("connector:procurement", "another-worker", 60)
        outcome = daemon.run_connector(worker, "procurement", send=Mailbox().send)
        run = worker.store.run(outcome.run_id or 0)
    assert outcome.status == "skipped"
    assert run is not None
    assert run.status == "skipped"
    assert "already running (another-worker)" in (run.error or "")
    assert env.writes() == []


def test_trigger_requests_for_one_connector_are_coalesced_into_one_run(env: RunEnv) -> None:
    env.drop(rows(2))
    box = Mailbox()
    with open_worker(env) as worker:
        first = daemon.request_run(worker.store, "procurement", source="webhook")
        second = daemon.request_run(worker.store, "procurement", source="http")
        assert first == second  # one request, asked for twice
        report = daemon.sweep(worker, box.send, send_run=lambda name: None)
        assert report.triggers == ["procurement"]
        outcome = daemon.run_connector(worker, "procurement", trigger="request", send=box.send)
        row = worker.store.trigger(first)
        run = worker.store.run(outcome.run_id or 0)
    assert row is not None
    assert (row.state, row.run_id) == ("done", outcome.run_id)
    assert run is not None
    assert run.trigger == "http+webhook"


def test_a_run_message_whose_requests_an_earlier_run_took_runs_nothing(env: RunEnv) -> None:
    env.drop(rows(2))
    box = Mailbox()
    with open_worker(env) as worker:
        daemon.request_run(worker.store, "procurement", serials=["SN00001"], source="webhook")
        first = daemon.run_connector(worker, "procurement", trigger="request", send=box.send)
        runs = len(worker.store.runs())
        # a second message for the same request (the sweeper sent one too, the broker
        # delivered twice): not a run of the whole source
        again = daemon.run_connector(worker, "procurement", trigger="request", send=box.send)
        assert len(worker.store.runs()) == runs
    assert first.run_id is not None
    assert (again.run_id, again.dispatched) == (None, 0)


def test_a_queued_dry_run_is_taken_as_a_dry_run_by_the_sweepers_message(env: RunEnv) -> None:
    env.drop(rows(2))
    box = Mailbox()
    with open_worker(env) as worker:
        request = daemon.request_run(worker.store, "procurement", dry_run=True, source="cli")
        sent: list[str] = []
        daemon.sweep(worker, box.send, send_run=sent.append)
        assert sent == ["procurement"]
        # the sweeper's message names no kind: the queued request's own is used
        outcome = daemon.run_connector(worker, "procurement", trigger="request", send=box.send)
        row = worker.store.trigger(request)
        changes = worker.store.changes(run_id=outcome.run_id)
        assert worker.store.queued_triggers() == []
    assert row is not None
    assert (row.state, row.run_id, outcome.run_id) == ("done", None, None)  # no run kept
    assert row.detail == "dry run: done"
    assert changes == []  # planned, not recorded: a dry run
    assert box.sent == []
    assert env.writes() == []


def test_an_idle_scheduled_poll_leaves_no_run_behind(env: RunEnv) -> None:
    env.drop(rows(1))
    with open_worker(env) as worker:
        busy = daemon.run_connector(worker, "procurement", send=Mailbox().send)
        idle = daemon.run_connector(worker, "procurement", send=Mailbox().send)
        shown = [r.id for r in worker.store.runs(idle=False)]
        kept = [(r.id, r.status) for r in worker.store.runs()]
    assert (idle.status, idle.detail) == ("idle", "nothing to do")
    assert shown == [busy.run_id]
    assert kept == [(idle.run_id, "idle"), (busy.run_id, "applying")]


def test_a_refused_token_fails_the_run_and_halts_dispatching(env: RunEnv) -> None:
    env.drop(rows(3))
    box = Mailbox()
    with open_worker(env) as worker:
        outcome = daemon.run_connector(worker, "procurement", send=box.send)
    with open_worker(env, token=SecretStr("not-the-right-token")) as worker:
        with pytest.raises(AuthenticationError):
            daemon.apply(worker, box.sent[0])
        run = worker.store.run(outcome.run_id or 0)
        reason = halted(worker.store)
        assert daemon.sweep(worker, box.send).dispatched == 0  # nothing sent while halted
    assert run is not None
    assert run.status == "failed"
    assert "refused the token" in (run.error or "")
    assert reason is not None
    assert "not-the-right-token" not in (run.error or "") + reason
    assert [(r.method, r.status) for r in env.writes()] == [("POST", 401)]  # one, not three


def test_a_transient_failure_is_retried_with_the_servers_delay(env: RunEnv) -> None:
    env.inventory = {"retry": {"attempts": 1, "wait_initial": 0, "wait_max": 0}}
    env.drop(rows(1))
    box = Mailbox()
    with open_worker(env) as worker:
        daemon.run_connector(worker, "procurement", send=box.send)
        env.sandbox.set_faults(script=["503"], retry_after=7)
        (first,) = box.deliver(worker)
        change = worker.store.change(first.change_id)
        assert (first.kind, first.delay) == ("retry", 7)
        assert change is not None
        assert change.status == "dispatched"  # waiting for its retry; the sweeper's lease
        again = daemon.apply(worker, first.change_id)
    assert again.kind == "applied"
    assert len(env.devices()) == 1


def test_messages_sent_before_the_token_was_refused_make_no_more_calls(env: RunEnv) -> None:
    env.drop(rows(5))
    box = Mailbox()
    with open_worker(env) as worker:
        outcome = daemon.run_connector(worker, "procurement", send=box.send)
    with open_worker(env, token=SecretStr("not-the-right-token")) as worker:
        first, *rest = box.sent
        with pytest.raises(AuthenticationError):
            daemon.apply(worker, first)
        later = [daemon.apply(worker, change_id) for change_id in rest]  # already queued
        waiting = worker.store.count_waiting(outcome.run_id)
    assert {o.kind for o in later} == {"halted"}
    assert [(r.method, r.status) for r in env.writes()] == [("POST", 401)]
    assert waiting == 5  # nothing failed: they wait for a good token


def test_a_change_whose_apply_broke_unexpectedly_is_recovered_not_stuck(env: RunEnv) -> None:
    env.drop(rows(3))
    box = Mailbox()
    with open_worker(env) as worker:
        daemon.run_connector(worker, "procurement", send=box.send)
    with open_worker(env, limiter=_BrokenBudget()) as worker:
        with pytest.raises(ConnectionError):
            daemon.apply(worker, box.sent[0])
        (held,) = worker.store.claimed_changes()
    assert held.claimed_by is not None
    assert held.claimed_by.startswith(GIVEN_UP)  # not left to this (live) process

    with open_worker(env) as worker:  # the budget is back
        report = daemon.sweep(worker, box.send)
        assert report.recovered == 1  # read back: never created, so planned again
        box.deliver(worker)
        daemon.run_connector(worker, "procurement", send=box.send)  # plans it again
        box.deliver(worker)
        assert worker.store.claimed_changes() == []
    assert len(env.devices()) == 3
    assert method_counts(env.writes()) == {"POST": 3}


def test_a_token_refused_while_the_run_still_dispatches_leaves_the_run_failed(
    env: RunEnv,
) -> None:
    env.drop(rows(4))
    with open_worker(env) as worker, open_worker(env, token=SecretStr("revoked")) as other:

        def send(change_id: int) -> None:  # a worker takes each message at once
            with contextlib.suppress(AuthenticationError):
                daemon.apply(other, change_id)

        outcome = daemon.run_connector(worker, "procurement", send=send)
        run = worker.store.run(outcome.run_id or 0)
    assert run is not None
    assert (outcome.status, run.status) == ("failed", "failed")  # not "applying" again
    assert "refused the token" in (run.error or "")


def test_a_run_whose_changes_were_applied_while_it_dispatched_is_done(env: RunEnv) -> None:
    env.drop(rows(4))
    with open_worker(env) as worker:

        def send(change_id: int) -> None:  # applied at once, while the run dispatches
            daemon.apply(worker, change_id)

        outcome = daemon.run_connector(worker, "procurement", send=send)
        run = worker.store.run(outcome.run_id or 0)
    assert run is not None
    assert (outcome.status, run.status) == ("done", "done")
    assert run.summary.get("dispatched") == 4


def test_a_connector_lock_left_by_a_killed_process_does_not_skip_runs(env: RunEnv) -> None:
    env.drop(rows(2))
    with open_worker(env) as worker:
        killed = dead_owner()  # killed mid-run: its lease would last daemon.run_lease
        assert worker.locks.acquire("connector:procurement", killed, 3600)
        outcome = daemon.run_connector(worker, "procurement", send=Mailbox().send)
        holder = worker.locks.holder("connector:procurement")
    assert outcome.status == "applying"  # it ran
    assert outcome.dispatched == 2
    assert holder is None  # and let go of the lock it took over
