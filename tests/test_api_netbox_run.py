"""From a NetBox webhook to the inventory: the request the API queues for an event is
served by the daemon's run as a targeted pull of that device only (fake NetBox with
the recorded devices, the sandbox as the inventory, the daemon's steps in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from connectors.netbox.webhook import read_event
from syncd.inventory import InventoryClient
from syncd.locks import StoreLocks
from syncd.service import daemon
from syncd.service.triggers import WEBHOOK, queue_run
from syncd.store import Store
from tests.apisupport import recorded_webhook
from tests.fakenetbox import FakeNetBox
from tests.runsupport import method_counts
from tests.test_netbox_run import NetBoxEnv, env, expected_creates, fake

__all__ = ["env", "fake"]  # the fixtures, shared with the NetBox run tests


@contextmanager
def worker_of(env: NetBoxEnv) -> Iterator[daemon.Worker]:
    settings = env.settings()
    with (
        Store.open(env.store_url) as store,
        InventoryClient.from_settings(settings.inventory, token=env.sandbox.token) as client,
    ):
        yield daemon.Worker(settings, store, client, StoreLocks(store))


def test_a_device_event_becomes_a_targeted_pull_and_its_write(
    env: NetBoxEnv, fake: FakeNetBox
) -> None:
    serial = sorted(expected_creates(fake))[0]
    device = next(d for d in fake.devices if d["serial"] == serial)
    body = recorded_webhook()
    body.update(event="created", data=device, snapshots={"prechange": None, "postchange": None})
    event = read_event(body)  # what POST /v1/webhooks/netbox reads
    sent: list[int] = []

    with worker_of(env) as worker:
        queued = queue_run(worker.store, "netbox", serials=event.serials, source=WEBHOOK)
        fake.clear_log()
        outcome = daemon.run_connector(worker, "netbox", trigger="request", send=sent.append)
        for change_id in sent:
            daemon.apply(worker, change_id)
        request = worker.store.trigger(queued.id)
        run = worker.store.run(outcome.run_id or 0)

    assert event.serials == (serial,)
    device_reads = fake.requests_to("/api/dcim/devices/")
    assert device_reads, "the run read nothing from NetBox"
    assert {r.param("serial") for r in device_reads} == {serial}  # that device, no full pull
    assert method_counts(env.writes()) == {"POST": 1}
    assert request is not None
    assert (request.state, request.run_id) == ("done", outcome.run_id)
    assert run is not None
    assert (run.trigger, run.status) == ("webhook", "done")
