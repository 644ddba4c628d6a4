"""The sandbox against hostile but fair clients: bodies the JSON parser cannot take."""

from __future__ import annotations

import json

import httpx
import pytest

from syncd.sandbox.testing import SandboxProcess

LIST = "/inventory_device_serial/"

DEVICE = {"serial_number": "H1", "name": "h", "type": 1, "organization": 123}


# -- 2. bodies the JSON parser cannot take ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 100_000, "JSON parse error - Nested deeper than 32 levels."),
        (b'{"a":' * 50_000, "JSON parse error - Nested deeper than 32 levels."),
        (
            b'{"name": {"a": ' + b"[" * 40 + b"]" * 40 + b"}}",
            "JSON parse error - Nested deeper than 32 levels.",
        ),
        (
            b'{"name": ' + b"9" * 5000 + b"}",
            "JSON parse error - An integer has more than 4300 digits.",
        ),
        (
            b'{"serial_number": 1e400, "name": "n", "type": 1, "organization": 1}',
            "JSON parse error - The value at $.serial_number is a number out of range "
            "(it overflows a float).",
        ),
        (
            b'{"name": -Infinity}',
            "JSON parse error - Out of range float values are not JSON compliant: '-Infinity'",
        ),
        (
            b'{"name": "\xff"}',
            "JSON parse error - 'utf-8' codec can't decode byte 0xff in position 10: "
            "invalid start byte",
        ),
    ],
    ids=["deep-array", "deep-object", "deep-value", "huge-int", "huge-float", "infinity", "utf8"],
)
def test_a_body_the_parser_cannot_take_is_400(
    sandbox_api: httpx.Client, body: bytes, detail: str
) -> None:
    r = sandbox_api.post(LIST, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json() == {"detail": detail}
    assert sandbox_api.get(LIST).json()["count"] == 0


def test_a_lone_surrogate_is_refused_and_cannot_poison_the_list(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    body = b'{"serial_number": "A\\ud800", "name": "n", "type": 1, "organization": 1}'
    r = sandbox_api.post(LIST, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    detail = "JSON parse error - The value at $.serial_number holds a lone surrogate."
    assert r.json() == {"detail": detail}
    # the same through a charset that decodes escapes, as form data
    r = sandbox_api.post(
        LIST,
        content=b"serial_number=A\\ud800&name=n&type=1&organization=1",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=unicode_escape"},
    )
    assert r.status_code == 400
    assert r.json() == {"detail": "Form parse error - The body holds a lone surrogate."}
    # and through the control API's bulk load
    bad_load = httpx.post(
        f"{sandbox.root_url}/_sandbox/devices",
        content=b'[{"serial_number": "B\\udfff", "name": "n", "type": 1, "organization": 1}]',
    )
    assert bad_load.status_code == 400
    listing = sandbox_api.get(LIST)
    assert listing.status_code == 200
    assert listing.json()["count"] == 0


def test_a_codec_that_is_not_a_text_encoding_is_ignored(sandbox_api: httpx.Client) -> None:
    # rot13 is a str-to-str codec: Django would ignore it like any unknown charset
    r = sandbox_api.post(
        LIST,
        content=json.dumps(DEVICE).encode(),
        headers={"Content-Type": "application/json; charset=rot13"},
    )
    assert r.status_code == 201


def test_a_form_with_too_many_fields_is_400(sandbox_api: httpx.Client) -> None:
    r = sandbox_api.post(
        LIST,
        content="&".join(f"f{i}=1" for i in range(1001)).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 400
    assert r.json() == {"detail": "Form parse error - More than 1000 fields."}


def test_control_bodies_are_parsed_as_strictly(sandbox: SandboxProcess) -> None:
    control = f"{sandbox.root_url}/_sandbox"
    deep = httpx.post(f"{control}/devices", content=b"[" * 100_000)
    assert deep.status_code == 400
    assert deep.json() == {"detail": "JSON parse error - Nested deeper than 32 levels."}
    for literal, detail in [
        (b"NaN", "Out of range float values are not JSON compliant: 'NaN'"),
        (b"1e999", "The value at $.latency_ms is a number out of range (it overflows a float)."),
    ]:
        r = httpx.put(f"{control}/faults", content=b'{"latency_ms": ' + literal + b"}")
        assert r.status_code == 400
        assert r.json() == {"detail": f"JSON parse error - {detail}"}
    assert sandbox.faults()["latency_ms"] == 0.0
