"""The sandbox against hostile but fair clients: body limits, bad bodies, slow clients.

Most tests speak raw HTTP over a socket, because what matters is *when* the
sandbox answers (before a body it does not want has arrived) and whether it
closes the connection; an HTTP client library would hide both. The socket
timeout is the bound: a sandbox that waits for a body it should refuse makes
``recv`` time out and the test fail.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from syncd.sandbox.testing import SandboxProcess, SandboxToken
from tests.client_support import wait_for_log

LIST = "/inventory_device_serial/"
LIST_PATH = f"/api/v1{LIST}"
MIB = 1024 * 1024
#: Long enough for any answer on loopback; a sandbox that waits for more hits it.
SOCKET_TIMEOUT = 5.0

DEVICE = {"serial_number": "H1", "name": "h", "type": 1, "organization": 123}


@dataclass(frozen=True)
class Answer:
    """An HTTP response read off a socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        assert self.headers.get("content-type") == "application/json"
        return json.loads(self.body)


@contextmanager
def connect(port: int) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", port), timeout=SOCKET_TIMEOUT) as sock:
        yield sock


def read_answer(sock: socket.socket) -> Answer:
    """One response; raises ``TimeoutError`` when none comes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed in the middle of the answer"
        body += chunk
    return Answer(int(status_line.split()[1]), headers, body[:length])


def wait_for_close(sock: socket.socket) -> None:
    """Read until the server closes the connection; ``TimeoutError`` if it does not."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass


def head(method: str, path: str, *lines: str, host: str = "sandbox") -> bytes:
    text = "".join(f"{line}\r\n" for line in (f"Host: {host}", *lines))
    return f"{method} {path} HTTP/1.1\r\n{text}\r\n".encode()


def bearer(token: SandboxToken) -> str:
    return f"Authorization: Bearer {token.value.get_secret_value()}"


# -- 1. the request-body limit ---------------------------------------------------------------


def test_a_declared_body_over_the_limit_is_413_before_any_of_it_arrives(
    sandbox: SandboxProcess,
) -> None:
    # the case: an unauthenticated 300 MB POST; not one byte of the body is sent
    with connect(sandbox.port) as sock:
        sock.sendall(head("POST", LIST_PATH, "Content-Length: 314572800"))
        answer = read_answer(sock)
    assert answer.status == 413
    assert answer.json() == {
        "detail": "Request body too large: Content-Length 314572800 is over the limit "
        "of 1048576 bytes."
    }
    assert [(r.method, r.status) for r in sandbox.requests()] == [("POST", 413)]


def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    piece = b" " * 65536
    with connect(sandbox.port) as sock:
        sock.sendall(
            head(
                "POST",
                LIST_PATH,
                bearer(sandbox.tokens[0]),
                "Content-Type: application/json",
                "Transfer-Encoding: chunked",
            )
        )
        sock.sendall(b'10\r\n{"serial_number"\r\n')
        for _ in range(MIB // len(piece) + 1):  # just past 1 MiB; the body never ends
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        answer = read_answer(sock)
    assert answer.status == 413
    assert answer.json() == {"detail": "Request body too large: over the limit of 1048576 bytes."}
    assert sandbox_api.get(LIST).json()["count"] == 0


def test_a_body_just_within_the_limit_is_accepted(sandbox_api: httpx.Client) -> None:
    body = json.dumps({**DEVICE, "padding": ""}).encode()
    padded = body.replace(b'"padding": ""', b'"padding": "' + b"x" * (MIB - len(body)) + b'"')
    assert len(padded) == MIB
    r = sandbox_api.post(LIST, content=padded, headers={"Content-Type": "application/json"})
    assert r.status_code == 201


@pytest.mark.parametrize(
    "framing",
    [["Content-Length: 1000"], ["Transfer-Encoding: chunked"]],
    ids=["content-length", "chunked"],
)
def test_an_unauthenticated_write_is_refused_before_its_body(
    sandbox: SandboxProcess, framing: list[str]
) -> None:
    with connect(sandbox.port) as sock:
        sock.sendall(head("POST", LIST_PATH, "Content-Type: application/json", *framing))
        answer = read_answer(sock)  # no body byte was sent
    assert answer.status == 401
    assert answer.json() == {"detail": "Authentication credentials were not provided."}


def test_a_write_whose_client_leaves_during_a_delay_is_still_applied(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    # the body of a request with a valid token is read before the injected delay, as a
    # buffering front server would have it; the write goes through without its client
    sandbox.set_faults(script=["delay:300"])
    with pytest.raises(httpx.ReadTimeout):
        sandbox_api.post(LIST, json=DEVICE, timeout=0.05)
    assert wait_for_log(sandbox, 1, fault="delay") == [("POST", 201, "delay")]
    assert sandbox_api.get(f"{LIST}H1/").status_code == 200


def test_control_bodies_have_the_limit_too(sandbox: SandboxProcess) -> None:
    with connect(sandbox.port) as sock:
        sock.sendall(head("POST", "/_sandbox/devices", f"Content-Length: {MIB + 1}"))
        answer = read_answer(sock)
    assert answer.status == 413
    assert "over the limit of 1048576 bytes" in answer.json()["detail"]


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


# -- 4. other hostile requests ----------------------------------------------------------------


@pytest.mark.parametrize("host", ["[", "a]b", "[::1", "bad host", "x:y:z"])
def test_a_malformed_host_header_is_400(sandbox: SandboxProcess, host: str) -> None:
    sandbox.load([{**DEVICE, "serial_number": f"H{i:02}"} for i in range(25)])
    with connect(sandbox.port) as sock:
        sock.sendall(head("GET", LIST_PATH, bearer(sandbox.tokens[0]), host=host))
        answer = read_answer(sock)
    assert answer.status == 400
    assert answer.json() == {"detail": f"Invalid Host header: {host!r}."}


def test_hosts_a_link_can_carry_are_served(sandbox: SandboxProcess) -> None:
    sandbox.load([{**DEVICE, "serial_number": f"H{i:02}"} for i in range(25)])
    for host in ("sandbox_1:8765", "[::1]:8765", "127.0.0.1", "Sandbox.Example."):
        with sandbox.client(headers={"Host": host}) as api:
            r = api.get(LIST)
        assert r.status_code == 200, host
        assert r.json()["next"].startswith(f"http://{host}/api/v1/")


def test_an_over_long_url_is_414_and_logged_cut(
    sandbox: SandboxProcess, sandbox_api: httpx.Client
) -> None:
    r = sandbox_api.get(LIST, params={"location": "x" * 5000})
    assert r.status_code == 414
    length = len(LIST_PATH) + len("location=") + 5000
    assert r.json() == {"detail": f"Request-URI Too Long: {length} characters (at most 4096)."}
    (entry,) = sandbox.requests()
    assert entry.status == 414
    assert len(entry.path) + len(entry.query) == 4096


def test_an_endless_request_head_is_400(sandbox: SandboxProcess) -> None:
    with connect(sandbox.port) as sock:
        sock.sendall(b"GET /api/v1/ HTTP/1.1\r\nHost: sandbox\r\nX-Long: " + b"a" * 20_000)
        answer = read_answer(sock)
        wait_for_close(sock)
    assert answer.status == 400
    assert answer.json() == {
        "detail": "Bad request: malformed HTTP, or a request head over 16384 bytes."
    }


def test_absurd_paging_values_are_clamped(sandbox_api: httpx.Client) -> None:
    huge = "9" * 1900  # both stay within the URL limit
    r = sandbox_api.get(LIST, params={"limit": huge, "offset": huge})
    assert r.status_code == 200
    page = r.json()
    assert page["results"] == []
    assert f"limit=100&offset={int(huge) - 100}" in page["previous"]


@pytest.fixture(scope="module")
def impatient() -> Iterator[SandboxProcess]:
    """A sandbox with a tiny body limit and a half-second request timeout."""
    args = ["--max-body-bytes", "2000", "--request-timeout", "0.5"]
    with SandboxProcess(args=args) as process:
        yield process


def test_the_body_limit_is_an_option(impatient: SandboxProcess) -> None:
    with impatient.client() as api:
        over = api.post(LIST, json={**DEVICE, "description": "d" * 2000})
        within = api.post(LIST, json={**DEVICE, "description": "d" * 1000})
    assert over.status_code == 413
    assert over.json() == {
        "detail": f"Request body too large: Content-Length {len(over.request.content)} "
        "is over the limit of 2000 bytes."
    }
    assert within.status_code == 201


def test_a_client_that_never_finishes_its_head_is_disconnected(impatient: SandboxProcess) -> None:
    with connect(impatient.port) as silent, connect(impatient.port) as slow:
        slow.sendall(b"GET /api/v1/ HTTP/1.1\r\nHost: sand")
        # each recv returns b"" once the sandbox closes; it would time out otherwise
        assert slow.recv(1024) == b""
        assert silent.recv(1024) == b""


def test_a_slow_body_is_408(impatient: SandboxProcess) -> None:
    with connect(impatient.port) as sock:
        sock.sendall(
            head(
                "POST",
                LIST_PATH,
                bearer(impatient.tokens[0]),
                "Content-Type: application/json",
                "Content-Length: 100",
            )
            + b'{"serial_number"'
        )
        answer = read_answer(sock)
        wait_for_close(sock)
    assert answer.status == 408
    assert answer.json() == {"detail": "Request body not received within 0.5 s."}
    assert answer.headers["connection"] == "close"


def test_an_unread_body_is_thrown_away_and_the_connection_kept(impatient: SandboxProcess) -> None:
    with connect(impatient.port) as sock:
        sock.sendall(head("POST", LIST_PATH, "Content-Length: 10"))
        assert read_answer(sock).status == 401
        # the client finishes its body in time: the connection serves the next request
        sock.sendall(b"0123456789" + head("GET", "/api/v1/", bearer(impatient.tokens[0])))
        assert read_answer(sock).status == 200
        # a body that never comes: the connection is closed after the request timeout
        sock.sendall(head("POST", LIST_PATH, "Content-Length: 10"))
        assert read_answer(sock).status == 401
        assert sock.recv(1024) == b""
