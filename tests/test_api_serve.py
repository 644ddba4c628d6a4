"""``syncd serve`` as a user runs it: a real process on loopback, spoken to over HTTP.

One server for the module (each test starts with no trigger request and an empty
broker queue), with the embedded broker: a message the API sends is a file under
``daemon.data_dir``, read here as the worker would find it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from syncd.store import Store
from tests.apisupport import (
    LIMIT,
    PROCUREMENT,
    ApiProcess,
    clear_requests,
    messages,
    netbox,
    queued_requests,
    recorded_webhook,
    sign,
    wait_for,
    with_serial,
    write_config,
)

TOKEN = "trig-" + secrets.token_urlsafe(24)
SECRET = "hook-" + secrets.token_urlsafe(24)
RUN = "syncd.run_connector"


class Server:
    """The module's ``syncd serve``, its store and its broker queue."""

    def __init__(self, api: ApiProcess, store: Store, queue: Path) -> None:
        self.api = api
        self.store = store
        self.queue = queue
        self.http = api.client()
        #: every answer's body, to prove no secret is ever in one
        self.answers: list[str] = []

    def trigger(self, body: Any, token: str | None = TOKEN, **headers: str) -> httpx.Response:
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self._keep(self.http.post("/v1/triggers", json=body, headers=headers))

    def poll(self, url: str, token: str = TOKEN) -> httpx.Response:
        return self._keep(self.http.get(url, headers={"Authorization": f"Bearer {token}"}))

    def hook(
        self, body: Any, *, secret: str | None = SECRET, path: str = "/v1/webhooks/netbox"
    ) -> httpx.Response:
        raw = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Hook-Signature"] = sign(raw, secret)
        return self._keep(self.http.post(path, content=raw, headers=headers))

    def _keep(self, response: httpx.Response) -> httpx.Response:
        self.answers.append(response.text)
        return response

    def messages(self) -> list[dict[str, Any]]:
        return messages(self.queue)

    def requests(self) -> list[dict[str, Any]]:
        return queued_requests(self.store)


@pytest.fixture(scope="module")
def server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("api")
    config = write_config(root, PROCUREMENT, netbox("netbox"), netbox("old-netbox", enabled=False))
    env = {"SYNCD_API__TRIGGER_TOKEN": TOKEN, "SYNCD_API__WEBHOOK_SECRET": SECRET}
    with (
        ApiProcess(config, env=env) as api,
        Store.open(f"sqlite:///{root / 'syncd.db'}") as store,
    ):
        server = Server(api, store, root / "daemon" / "broker" / "queue")
        yield server
        server.http.close()


@pytest.fixture
def server(server_process: Server) -> Iterator[Server]:
    """The module's server, with no trigger request and no message waiting; afterwards
    the messages of the test's requests (sent once answered) have arrived."""
    clear_requests(server_process.store)
    for message in server_process.queue.glob("*.msg"):
        message.unlink()
    yield server_process
    # one message per request row: a request merged into another sends none
    wait_for(lambda: len(server_process.messages()) >= len(server_process.requests()))


# -- POST /v1/triggers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token-at-all-0000"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
    ],
    ids=["none", "wrong", "longer", "basic", "no-scheme"],
)
def test_a_trigger_without_the_token_is_refused_and_queues_nothing(
    server: Server, headers: dict[str, str]
) -> None:
    answer = server.trigger({"connector": "procurement"}, token=None, **headers)

    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert "trigger token" in answer.json()["detail"]
    assert server.requests() == []
    assert server.messages() == []


def test_a_trigger_queues_a_request_sends_the_task_and_can_be_polled(server: Server) -> None:
    body = {"connector": "netbox", "serials": ["FOC4315T82M", "JPE42634115"], "dry_run": True}

    answer = server.trigger(body)

    assert answer.status_code == 202
    queued = answer.json()
    assert queued["state"] == "queued"
    assert queued["merged"] is False
    assert answer.headers["Location"] == queued["url"] == f"/v1/triggers/{queued['id']}"
    [row] = server.requests()
    assert (row["id"], row["connector"], row["source"]) == (queued["id"], "netbox", "http")
    assert (json.loads(row["serials"]), bool(row["dry_run"])) == (body["serials"], True)
    sent = wait_for(server.messages)
    assert sent == [
        {"task": RUN, "args": ["netbox"], "kwargs": {"trigger": "request", "dry_run": True}}
    ]
    polled = server.poll(queued["url"]).json()
    assert (polled["state"], polled["run"]) == ("queued", None)
    assert polled["serials"] == body["serials"]
    # kombu's exchange table lives with the broker's folders, not where syncd was started
    assert (server.queue.parent / "control").is_dir()
    assert not (server.api.config.parent / "control").exists()


def test_polling_shows_the_run_that_took_the_request(server: Server) -> None:
    request = server.trigger({"connector": "procurement"}).json()
    store = server.store
    taken = store.take_triggers("procurement")  # what a worker does
    assert taken is not None
    run_id = store.begin_run("http", "policy")
    store.finish_run(run_id, "done")
    store.finish_triggers(taken.ids, "done", run_id=run_id, detail="done")

    polled = server.poll(request["url"]).json()

    assert polled["state"] == "done"
    assert polled["run"]["id"] == run_id
    assert polled["run"]["status"] == "done"
    assert polled["run"]["changes"] == {}


def test_polling_needs_the_token_and_an_existing_request(server: Server) -> None:
    request = server.trigger({"connector": "procurement"}).json()

    assert server.poll(request["url"], token="wrong-token-wrong-token").status_code == 401
    missing = server.poll(f"/v1/triggers/{request['id'] + 1000}")
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"no trigger request {request['id'] + 1000}"
    zero = server.poll("/v1/triggers/0")
    assert zero.status_code == 422
    assert zero.json()["detail"] == "request_id: Input should be greater than or equal to 1"


def test_an_unknown_or_disabled_connector_is_refused_by_name(server: Server) -> None:
    for name in ("nope", "old-netbox"):
        answer = server.trigger({"connector": name})

        assert answer.status_code == 422
        detail = answer.json()["detail"]
        assert detail == (
            f"connector: no enabled connector named {name!r} (enabled: procurement, netbox)"
        )
    assert server.requests() == []
    assert server.messages() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "connector"),
        ({"connector": "netbox", "serials": []}, "serials"),
        ({"connector": "netbox", "serials": ["ok", "  "]}, "serials.1"),
        ({"connector": "netbox", "serials": "FOC4315T82M"}, "serials"),
        ({"connector": "netbox", "dry_run": "yes"}, "dry_run"),
        ({"connector": "netbox", "dryrun": True}, "dryrun"),
        (["netbox"], "(body)"),
    ],
)
def test_a_malformed_trigger_names_the_field_and_queues_nothing(
    server: Server, body: Any, field: str
) -> None:
    answer = server.trigger(body)

    assert answer.status_code == 422
    assert field in [error["field"] for error in answer.json()["errors"]]
    assert server.requests() == []


def test_a_trigger_body_that_is_not_json_is_a_400(server: Server) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    answer = server.http.post("/v1/triggers", content=b'{"connector": ', headers=headers)

    assert answer.status_code == 400
    assert answer.json()["detail"].startswith("the request body is not JSON")


def test_requests_that_wait_together_are_one_request_and_one_message(server: Server) -> None:
    first = server.trigger({"connector": "netbox", "serials": ["A1"]}).json()
    second = server.trigger({"connector": "netbox", "serials": ["B2"]}).json()

    assert second["id"] == first["id"]
    assert (first["merged"], second["merged"]) == (False, True)
    [row] = server.requests()
    assert json.loads(row["serials"]) == ["A1", "B2"]
    assert len(wait_for(server.messages)) == 1


# -- POST /v1/webhooks/netbox -----------------------------------------------------------------


def test_the_recorded_webhook_of_a_device_without_serial_is_accepted_and_ignored(
    server: Server,
) -> None:
    answer = server.hook(recorded_webhook())  # device 109 has no serial in NetBox

    assert answer.status_code == 202
    assert answer.json() == {
        "queued": False,
        "connector": "netbox",
        "model": "dcim.device",
        "event": "updated",
        "device": 109,
        "note": "device 109 has no serial in NetBox: nothing in the inventory can match it",
    }
    assert server.requests() == []


@pytest.mark.parametrize(
    ("key", "model"),
    [("object_type", "dcim.device"), ("model", "device"), ("model", "dcim.device")],
)
def test_a_signed_device_event_queues_a_targeted_run(server: Server, key: str, model: str) -> None:
    body = with_serial(recorded_webhook(), "FOC4315T82M")
    body.pop("object_type")
    body[key] = model

    answer = server.hook(body)

    assert answer.status_code == 202
    queued = answer.json()
    assert (queued["queued"], queued["serials"], queued["merged"]) == (True, ["FOC4315T82M"], False)
    [row] = server.requests()
    assert (row["id"], row["connector"], row["source"]) == (queued["request"], "netbox", "webhook")
    assert json.loads(row["serials"]) == ["FOC4315T82M"]
    assert not row["dry_run"]
    sent = wait_for(server.messages)
    assert sent == [
        {"task": RUN, "args": ["netbox"], "kwargs": {"trigger": "request", "dry_run": False}}
    ]


def test_an_edited_serial_pulls_the_old_one_too(server: Server) -> None:
    body = with_serial(recorded_webhook(), "NEW-SERIAL", before="OLD-SERIAL")

    assert server.hook(body).json()["serials"] == ["NEW-SERIAL", "OLD-SERIAL"]


@pytest.mark.parametrize(
    "signature",
    ["none", "other secret", "body changed", "truncated"],
)
def test_a_webhook_without_the_right_signature_is_refused_and_queues_nothing(
    server: Server, signature: str
) -> None:
    body = with_serial(recorded_webhook(), "FOC4315T82M")
    raw = json.dumps(body).encode()
    headers = {
        "none": {},
        "other secret": {"X-Hook-Signature": sign(raw, SECRET + "x")},
        "body changed": {"X-Hook-Signature": sign(raw.replace(b"FOC", b"FOX"), SECRET)},
        "truncated": {"X-Hook-Signature": sign(raw, SECRET)[:-2]},
    }[signature]

    answer = server.http.post("/v1/webhooks/netbox", content=raw, headers=headers)

    assert answer.status_code == 401
    assert "X-Hook-Signature" in answer.json()["detail"]
    assert server.requests() == []
    assert server.messages() == []


def test_a_burst_of_events_for_one_connector_is_one_request(server: Server) -> None:
    first = server.hook(with_serial(recorded_webhook(), "FOC4315T82M")).json()
    second = server.hook(with_serial(recorded_webhook(), "JPE42634115")).json()
    again = server.hook(with_serial(recorded_webhook(), "FOC4315T82M")).json()

    assert first["request"] == second["request"] == again["request"]
    assert [first["merged"], second["merged"], again["merged"]] == [False, True, True]
    [row] = server.requests()
    assert json.loads(row["serials"]) == ["FOC4315T82M", "JPE42634115"]
    assert len(wait_for(server.messages)) == 1


def test_another_model_is_accepted_with_a_note_and_queues_nothing(server: Server) -> None:
    body = recorded_webhook()
    body["object_type"] = "dcim.site"

    answer = server.hook(body)

    assert answer.status_code == 202
    assert answer.json()["queued"] is False
    assert answer.json()["note"] == "dcim.site is not a device: ignored"
    assert server.requests() == []
    assert server.messages() == []


def test_a_signed_body_that_is_not_a_webhook_is_a_400(server: Server) -> None:
    answer = server.hook({"event": "updated", "data": {"id": 1}})

    assert answer.status_code == 400
    assert answer.json()["detail"] == (
        "the payload names no model: neither 'object_type' nor 'model' is set"
    )
    assert server.requests() == []


def test_the_connector_can_be_named_and_must_be_an_enabled_netbox_one(server: Server) -> None:
    body = with_serial(recorded_webhook(), "FOC4315T82M")

    assert server.hook(body, path="/v1/webhooks/netbox/netbox").status_code == 202
    for name in ("procurement", "old-netbox", "nope"):
        refused = server.hook(body, path=f"/v1/webhooks/netbox/{name}")
        assert refused.status_code == 404
        assert refused.json()["detail"] == (
            f"no enabled NetBox connector named {name!r} (enabled: netbox)"
        )
    assert len(server.requests()) == 1


# -- limits and secrets -----------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_unread(server: Server) -> None:
    big = with_serial(recorded_webhook(), "FOC4315T82M")
    big["data"]["comments"] = "x" * LIMIT
    raw = json.dumps(big).encode()
    headers = {"X-Hook-Signature": sign(raw, SECRET)}

    declared = server.http.post("/v1/webhooks/netbox", content=raw, headers=headers)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(raw), 4096):
            yield raw[start : start + 4096]

    streamed = server.http.post("/v1/webhooks/netbox", content=chunks(), headers=headers)
    trigger = server.trigger({"connector": "netbox", "serials": ["S" * 200] * 100})

    for answer in (declared, streamed, trigger):
        assert answer.status_code == 413
        assert answer.json()["detail"] == (
            f"the request body is larger than {LIMIT} bytes (api.max_body_bytes)"
        )
    assert server.requests() == []


def test_no_secret_reaches_an_answer_or_the_log(server: Server) -> None:
    # (runs after the others in this module: the whole log so far is checked)
    server.trigger({"connector": "procurement"}, token=TOKEN[:-1])
    server.hook(with_serial(recorded_webhook(), "FOC4315T82M"), secret=SECRET[:-1])
    server.trigger({"connector": "procurement"})
    server.hook(with_serial(recorded_webhook(), "FOC4315T82M"))
    output = server.api.output()

    assert "api.refused" in output  # the log does speak of refusals...
    assert "api.webhook" in output
    for secret in (TOKEN, SECRET):
        assert secret not in output  # ...never of the secrets
        assert secret[:-1] not in output
        assert all(secret not in answer for answer in server.answers)
