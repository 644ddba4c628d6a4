"""Error mapping for answers the sandbox cannot give: broken success bodies, HTTP-date
``Retry-After``, redirects, a server that ignores paging, a rejected TLS certificate.

The TLS case runs a real HTTPS server on loopback. The rest use ``httpx.MockTransport``
as a last resort: the sandbox is a faithful server and will not misbehave this way.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from syncd.config import RetrySettings
from syncd.errors import (
    ProtocolError,
    RateLimitedError,
    ValidationRejectedError,
)
from syncd.inventory import InventoryClient

TOKEN = SecretStr("mock-token-5d2e77")
FAST = RetrySettings(attempts=3, timeout=30, wait_initial=0, wait_max=0, wait_jitter=0)

Handler = Callable[[httpx.Request], httpx.Response]


def _device(serial: str = "SN1") -> dict[str, Any]:
    return {
        "serial_number": serial,
        "name": "edge-1",
        "type": {"id": 1, "name": "Router", "model": "X1"},
        "organization": {"id": 2, "name": "Acme"},
        "status": True,
    }


@pytest.fixture
def served() -> Iterator[Callable[[Handler], tuple[InventoryClient, list[httpx.Request]]]]:
    clients: list[InventoryClient] = []

    def make(handler: Handler) -> tuple[InventoryClient, list[httpx.Request]]:
        seen: list[httpx.Request] = []

        def record(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return handler(request)

        client = InventoryClient(
            "http://inventory.test/api/v1",
            TOKEN,
            retry=FAST,
            transport=httpx.MockTransport(record),
        )
        clients.append(client)
        return client, seen

    yield make
    for client in clients:
        client.close()


def test_non_json_success_body_is_a_protocol_error(served: Any) -> None:
    client, _ = served(lambda r: httpx.Response(200, text="<html>Login</html>"))
    with pytest.raises(ProtocolError) as info:
        client.get_device("SN1")
    text = str(info.value)
    assert "GET /api/v1/inventory_device_serial/SN1/ -> 200" in text
    assert "not JSON" in text


def test_schema_violating_body_says_which_field(served: Any) -> None:
    body = _device()
    del body["name"]
    body["type"] = "router"
    client, _ = served(lambda r: httpx.Response(200, json=body))
    with pytest.raises(ProtocolError) as info:
        client.get_device("SN1")
    text = str(info.value)
    assert "not a valid Device" in text
    assert "name" in text
    assert "type" in text


def test_page_without_results_list_is_a_protocol_error(served: Any) -> None:
    client, _ = served(lambda r: httpx.Response(200, json={"results": "nope"}))
    with pytest.raises(ProtocolError, match="not a valid Page"):
        client.list_devices()


def test_http_date_retry_after_is_read(served: Any) -> None:
    """A Retry-After far beyond the retry budget is not slept through: the 429 comes back
    at once, carrying how long the server asked for."""
    when = datetime.now(UTC) + timedelta(seconds=120)
    client, seen = served(
        lambda r: httpx.Response(429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    )
    with pytest.raises(RateLimitedError) as info:
        client.list_devices()
    assert info.value.retry_after is not None
    assert 100 < info.value.retry_after <= 120
    assert len(seen) == 1


def test_redirect_is_not_followed(served: Any) -> None:
    client, seen = served(
        lambda r: httpx.Response(301, headers={"Location": "https://elsewhere.test/api/v1/"})
    )
    with pytest.raises(ProtocolError, match=r"redirect to https://elsewhere\.test"):
        client.get_device("SN1")
    assert len(seen) == 1


def test_unexpected_success_status_is_a_protocol_error(served: Any) -> None:
    client, _ = served(lambda r: httpx.Response(202, json={"detail": "queued"}))
    with pytest.raises(ProtocolError, match=r"DELETE .* -> 202"):
        client.delete_device("SN1")


def test_answer_for_another_serial_is_a_protocol_error(served: Any) -> None:
    """Serials are case-sensitive: an answer about ``sn1`` for ``SN1`` is not accepted."""
    client, _ = served(lambda r: httpx.Response(200, json=_device("sn1")))
    with pytest.raises(ProtocolError) as info:
        client.get_device("SN1")
    assert str(info.value).startswith("GET /api/v1/inventory_device_serial/SN1/: ")
    assert "'sn1'" in str(info.value)
    assert "case-sensitive" in str(info.value)


def test_token_echoed_by_the_server_is_redacted(served: Any) -> None:
    secret = TOKEN.get_secret_value()

    def echo(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400, json={"name": [f"bad header {request.headers['authorization']}"]}
        )

    client, _ = served(echo)
    with pytest.raises(ValidationRejectedError) as info:
        client.patch_device("SN1", {"name": "x"})
    assert secret not in str(info.value)
    assert secret not in json.dumps(info.value.body)
    assert secret not in json.dumps(info.value.field_errors)
    assert "bad header" in info.value.field_errors["name"][0]


def test_server_ignoring_offset_does_not_loop_forever(served: Any) -> None:
    page = {"count": 10_000, "next": None, "previous": None, "results": [_device("A")]}
    client, seen = served(lambda r: httpx.Response(200, json=page))
    listing = client.list_inventory()
    assert [d.serial_number for d in listing] == ["A"]
    assert len(seen) == 2
    assert not listing.complete
    assert listing.problems[-1].startswith("offset 1: the page holds only devices already listed")
    assert "ignores offset" in listing.problems[-1]


def test_paging_stops_at_an_empty_page_whatever_count_says(served: Any) -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["offset"])
        results = [_device(f"S{offset}")] if offset < 3 else []
        return httpx.Response(200, json={"count": 999, "results": results})

    client, seen = served(pages)
    listing = client.list_inventory()
    assert [d.serial_number for d in listing] == ["S0", "S1", "S2"]
    assert len(seen) == 4
    assert not listing.complete
    assert listing.problems[-1] == "offset 3: empty page, though the server counts 999 devices"


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real HTTPS server on loopback with a self-signed certificate."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    command = (
        f"req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -keyout {key} -out {cert}"
    )
    subprocess.run(
        [openssl, *command.split()],
        check=True,
        capture_output=True,
    )
    server = _https_server(cert, key)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/api/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _https_server(cert: Path, key: Path) -> ThreadingHTTPServer:
    body = json.dumps(_device()).encode()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


def test_untrusted_certificate_is_fatal_not_retried(tls_server: str) -> None:
    with (
        InventoryClient(tls_server, TOKEN, retry=FAST) as client,
        pytest.raises(ProtocolError, match="TLS certificate verification failed"),
    ):
        client.get_device("SN1")


def test_verify_tls_false_accepts_the_certificate(tls_server: str) -> None:
    with InventoryClient(tls_server, TOKEN, retry=FAST, verify_tls=False) as client:
        assert client.get_device("SN1").name == "edge-1"
