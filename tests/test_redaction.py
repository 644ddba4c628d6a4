"""Secrets stay out of logs, command output and the store in whatever spelling a server
echoes them: another letter case, percent-encoded, JSON-escaped, or as the
``Authorization`` line itself.

The end-to-end tests put an echoing proxy on loopback between the real ``syncd``
command and the sandbox; the proxy answers with bodies that quote the caller's token.
Leaks are reported by *where* they are, never by printing the secret.
"""

from __future__ import annotations

import json
import logging
import threading
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog

from syncd import log
from syncd.redact import REDACTED, RedactSecrets, redact, redact_value
from syncd.sandbox.testing import SandboxProcess
from tests.runsupport import WRITES, RunEnv, rows
from tests.test_cli import syncd, write_config

TOKEN = "Tok3n-for_Redaction.tests/42"


def percent(secret: str) -> str:
    """Every byte percent-encoded, as a URL or form body may echo it."""
    return "".join(f"%{byte:02X}" for byte in secret.encode())


def json_escaped(secret: str) -> str:
    """Every character as a JSON ``\\uXXXX`` escape, as a JSON encoder may write it."""
    return "".join(f"\\u{ord(c):04x}" for c in secret)


def spellings(secret: str) -> list[str]:
    """Lower-cased forms whose presence in lower-cased text means a leak."""
    return [s.lower() for s in (secret, percent(secret), json_escaped(secret))]


def leaks(secret: str, places: dict[str, str | bytes]) -> list[str]:
    """The names of the places where any spelling of ``secret`` appears, in any case."""
    found = []
    for name, content in places.items():
        text = content.decode("latin-1") if isinstance(content, bytes) else content
        if any(form in text.lower() for form in spellings(secret)):
            found.append(name)
    return found


# -- the redactor itself ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "echo",
    [
        TOKEN.upper(),
        TOKEN.lower(),
        TOKEN.swapcase(),
        percent(TOKEN),
        percent(TOKEN).lower(),
        json_escaped(TOKEN),
        TOKEN.replace("/", "\\/"),
    ],
    ids=["upper", "lower", "swapcase", "percent", "percent-lower", "json-escape", "json-slash"],
)
def test_every_spelling_of_a_secret_is_redacted(echo: str) -> None:
    text = redact(f"the server said: invalid token {echo}!", [TOKEN])
    assert text == f"the server said: invalid token {REDACTED}!"


def test_authorization_lines_and_bearer_tokens_are_redacted_unregistered() -> None:
    """A token nobody registered (a wrong or rotated one) still goes when it is quoted
    as a credential; ordinary words after "Bearer"/"Token" stay."""
    texts = {
        "Authorization: Bearer zz9-unknown-token": f"Authorization: Bearer {REDACTED}",
        '{"AUTHORIZATION": "Token abc123def"}': f'{{"AUTHORIZATION": "Token {REDACTED}"}}',
        "proxy-authorization=Basic dXNlcjpwdw==": f"proxy-authorization=Basic {REDACTED}",
        "echo: BEARER qwerty12345 end": f"echo: BEARER {REDACTED} end",
        "a Bearer token is required": "a Bearer token is required",
        "Invalid token header. Token string should not contain spaces.": (
            "Invalid token header. Token string should not contain spaces."
        ),
    }
    for text, expected in texts.items():
        assert redact(text, []) == expected


def test_structured_values_and_log_events_are_redacted_in_any_case() -> None:
    body = {"detail": [f"bad {TOKEN.upper()}"], TOKEN.lower(): 1}
    assert redact_value(body, [TOKEN]) == {"detail": [f"bad {REDACTED}"], REDACTED: 1}
    event = RedactSecrets([TOKEN])(None, "info", {"event": "x", "said": percent(TOKEN)})
    assert event == {"event": "x", "said": REDACTED}


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_stdlib_structlog_warnings_and_tracebacks_are_redacted(
    fmt: str, restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    log.register_secret(TOKEN)
    log.configure("INFO", fmt)
    logging.getLogger("some.library").warning("echoed %s", TOKEN.upper())
    structlog.get_logger("syncd.test").info("echoed", said=percent(TOKEN))
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"deprecated for {TOKEN.swapcase()}", UserWarning, stacklevel=1)
    try:
        raise ValueError(f"server said {TOKEN.upper()}")
    except ValueError:
        logging.getLogger("some.library").exception("failed")
        structlog.get_logger("syncd.test").exception("failed")
    err = capsys.readouterr().err
    assert leaks(TOKEN, {"stderr": err}) == []  # first: later messages may show err
    assert err.count(REDACTED) >= 5, err  # every line was really written
    assert "ValueError" in err  # with its traceback
    if fmt == "json":
        assert all(json.loads(line) for line in err.splitlines() if line.strip())


# -- end to end: an echoing server in front of the sandbox --------------------------------------


class EchoProxy:
    """A loopback HTTP proxy to the sandbox that answers writes (or, with
    ``refuse_all``, everything) itself, quoting the caller's token in several spellings."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.split("/api/", maxsplit=1)[0]
        self.refuse_all = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - as named
                """Quiet: the test reads what syncd printed, not the proxy."""

            def _handle(self) -> None:
                proxy.handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        content = request.rfile.read(length) if length else b""
        if self.refuse_all or request.command in WRITES:
            status, body = self.echo(request.headers.get("Authorization", ""))
            headers = {"Content-Type": "application/json"}
        else:
            forwarded = {
                k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")
            }
            answer = httpx.request(
                request.command, self.upstream + request.path, headers=forwarded, content=content
            )
            status, body = answer.status_code, answer.content
            headers = {"Content-Type": answer.headers.get("content-type", "application/json")}
        request.send_response(status)
        for key, value in {**headers, "Content-Length": str(len(body))}.items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(body)

    def echo(self, authorization: str) -> tuple[int, bytes]:
        token = authorization.split(" ", 1)[-1]
        raw = (
            "{"
            f'"detail": "Authorization: {authorization.upper()} (token {percent(token)})", '
            f'"serial_number": ["{token.swapcase()} may not write", "{json_escaped(token)}"], '
            f'"name": ["seen: {token.upper()}"]'
            "}"
        )
        return (401 if self.refuse_all else 400), raw.encode()

    def __enter__(self) -> EchoProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def _store_bytes(folder: Path) -> dict[str, str | bytes]:
    return {path.name: path.read_bytes() for path in folder.glob("syncd.db*")}


def test_a_server_echoing_the_token_in_other_spellings_leaks_it_nowhere(
    sandbox: SandboxProcess, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{tmp_path / 'syncd.db'}")
    env.drop(rows(2))
    token = sandbox.token.get_secret_value()
    secret = {"SYNCD_INVENTORY__TOKEN": token}
    places: dict[str, str | bytes] = {}
    with EchoProxy(sandbox.base_url) as proxy:
        config = write_config(tmp_path / "syncd.toml", proxy.base_url, tmp_path)
        with config.open("a", encoding="utf-8") as file:
            file.write('[logging]\nlevel = "DEBUG"\n')

        # 1. Every create is refused with a 400 that quotes the token: change rows keep the
        #    error and the response summary.
        refused = syncd("run", "--once", "--config", str(config), env=secret)
        audit = syncd("changes", "--json", "--config", str(config))
        # 2. Everything is refused with a 401 that quotes it: the run fails, and
        #    sync_run.error keeps why.
        proxy.refuse_all = True
        failed = syncd("run", "--once", "--config", str(config), env=secret)
        runs = syncd("runs", "--config", str(config))

    for name, done in {"refused": refused, "audit": audit, "failed": failed, "runs": runs}.items():
        places[f"{name} stdout"], places[f"{name} stderr"] = done.stdout, done.stderr
    places.update(_store_bytes(tmp_path))
    assert "syncd.db" in places
    # First, and by place only: a failing assertion below may print what it compares.
    assert leaks(token, places) == []

    changes = json.loads(audit.stdout)
    assert [c["status"] for c in changes] == ["failed", "failed"], audit.stdout
    assert REDACTED in changes[0]["error"]
    field_errors = changes[0]["response"]["field_errors"]
    assert field_errors["serial_number"][0] == f"{REDACTED} may not write"
    assert failed.returncode == 3, failed.stderr
    assert "401" in failed.stderr
    assert REDACTED in failed.stderr
    assert "failed" in runs.stdout
    assert not any("Traceback" in text for text in places.values() if isinstance(text, str))
