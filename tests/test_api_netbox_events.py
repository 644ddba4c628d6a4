"""What a NetBox webhook asks for (``connectors.netbox.webhook``), and the signature check
(``syncd.api.auth``): pure, on the payload a real NetBox sent."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.netbox.webhook import WebhookEvent, read_event
from syncd.api.auth import bearer_credentials, signature_matches
from syncd.errors import DataError
from syncd.service.access import authenticate
from tests.apisupport import FIXTURES, recorded_webhook, sign, with_serial


def test_the_recorded_update_of_a_device_without_serial_is_ignored() -> None:
    event = read_event(recorded_webhook())

    assert event == WebhookEvent(
        "ignore",
        "dcim.device",
        "updated",
        109,
        note="device 109 has no serial in NetBox: nothing in the inventory can match it",
    )


@pytest.mark.parametrize("event", ["created", "updated", "deleted", "object_deleted"])
@pytest.mark.parametrize(("key", "model"), [("object_type", "dcim.device"), ("model", "device")])
def test_a_device_event_pulls_its_serial(event: str, key: str, model: str) -> None:
    body = with_serial(recorded_webhook(), " FOC4315T82M ")
    del body["object_type"]
    body.update({key: model, "event": event})

    found = read_event(body)

    assert (found.action, found.serials, found.device_id) == ("pull", ("FOC4315T82M",), 109)
    assert found.event == event.removeprefix("object_")


def test_a_serial_edit_pulls_the_new_and_the_old_serial() -> None:
    body = with_serial(recorded_webhook(), "NEW1", before="OLD1")

    assert read_event(body).serials == ("NEW1", "OLD1")


def test_a_serial_cleared_pulls_the_serial_it_had() -> None:
    body = with_serial(recorded_webhook(), "", before="OLD1")

    assert read_event(body).serials == ("OLD1",)


def test_a_deleted_device_without_snapshots_pulls_its_last_serial() -> None:
    body = with_serial(recorded_webhook(), "GONE1")
    body["event"] = "deleted"
    del body["snapshots"]

    assert read_event(body).serials == ("GONE1",)


def test_a_payload_without_any_serial_field_runs_the_whole_connector() -> None:
    body = {"object_type": "dcim.device", "event": "updated", "data": {"id": 107}}

    found = read_event(body)

    assert (found.action, found.device_id, found.serials) == ("pull_all", 107, ())
    assert "device 107" in found.note


@pytest.mark.parametrize(
    ("change", "note"),
    [
        ({"object_type": "dcim.site"}, "dcim.site is not a device: ignored"),
        ({"object_type": "ipam.ipaddress"}, "ipam.ipaddress is not a device: ignored"),
        ({"event": "job_started"}, "event job_started is not a create, update or delete"),
        ({"event": None}, "event None is not a create, update or delete"),
    ],
)
def test_other_models_and_events_are_ignored(change: dict[str, Any], note: str) -> None:
    body = with_serial(recorded_webhook(), "FOC4315T82M")
    body.update(change)

    found = read_event(body)

    assert (found.action, found.note) == ("ignore", note)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "the body is not a JSON object (a NetBox webhook payload)"),
        ({"event": "updated"}, "the payload names no model: neither 'object_type' nor 'model'"),
        ({"model": "device", "event": "updated"}, "'data' is missing or not an object"),
        (
            {"model": "device", "event": "updated", "data": {"name": "x"}},
            "'data' has neither 'serial' nor 'id'",
        ),
        (
            {"model": "device", "event": "updated", "data": {"id": 1, "serial": 42}},
            "data.serial is not text",
        ),
        (
            {"model": "device", "event": "created", "data": {"id": 1, "serial": "S" * 256}},
            "data.serial is longer than 255 characters",
        ),
    ],
)
def test_a_payload_that_names_no_device_is_a_data_error(body: Any, message: str) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_event(body)


def test_the_signature_is_netboxs_hmac_sha512_of_the_raw_body() -> None:
    secret = SecretStr("the-webhook-secret-0123")
    raw = json.dumps(json.loads((FIXTURES / "webhook_payload_device_updated.json").read_text()))
    body = raw.encode()
    good = sign(body, "the-webhook-secret-0123")

    assert signature_matches(body, good, secret)
    assert signature_matches(body, f" {good.upper()} ", secret)  # hex is hex
    assert not signature_matches(body + b" ", good, secret)  # a body changed in transit
    assert not signature_matches(body, sign(body, "another-secret-0000000"), secret)
    assert not signature_matches(body, good[:64], secret)  # a SHA-256-sized prefix
    assert not signature_matches(body, None, secret)
    assert not signature_matches(body, "", secret)
    assert not signature_matches(body, "é" * 128, secret)


def test_the_trigger_token_is_compared_whole() -> None:
    token = SecretStr("the-trigger-token-0123")

    def accepted(header: str | None) -> bool:
        presented = bearer_credentials(header)
        if presented is None:
            return False
        # no pepper: the store (of API tokens) is never asked
        found = authenticate(None, presented, pepper=None, trigger_token=token)  # type: ignore[arg-type]
        return found is not None

    assert accepted("Bearer the-trigger-token-0123")
    assert accepted("bearer  the-trigger-token-0123 ")
    for header in (
        None,
        "",
        "Bearer",
        "Bearer the-trigger-token-012",
        "Bearer the-trigger-token-01234",
        "Basic the-trigger-token-0123",
        "the-trigger-token-0123",
        "Bearer thé-trigger-token-0123",
    ):
        assert not accepted(header), header
