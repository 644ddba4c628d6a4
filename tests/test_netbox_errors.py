"""NetBox failing: retried when it may pass, fatal when it cannot, and never a partial pull.

Every failure here must leave the marks as they were and raise from ``items()``
before any record is handed out, so the pipeline stores nothing and no absence can
be read as a deletion.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors.base import Item
from connectors.netbox import (
    MemoryState,
    NetBoxAuthError,
    NetBoxConfig,
    NetBoxConnector,
    NetBoxRequestError,
    NetBoxUnavailableError,
)
from connectors.netbox.token import auth_scheme
from syncd.errors import ConfigError, FatalError, RetriableError
from syncd.records import DeviceRecord
from tests.fakenetbox import TOKEN_ENV, FakeNetBox, connector_options

DEVICES = "/api/dcim/devices/"


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNetBox]:
    with FakeNetBox() as nb:
        monkeypatch.setenv(TOKEN_ENV, nb.v2_token)
        yield nb


def connect(fake: FakeNetBox, state: MemoryState | None = None, **options: Any) -> NetBoxConnector:
    config = NetBoxConfig.model_validate(connector_options(fake, **options))
    return NetBoxConnector("netbox", config, state=state or MemoryState())


def read(connector: NetBoxConnector) -> list[Item]:
    [batch] = list(connector.fetch())
    items = list(batch.items())
    assert batch.verdict.accepted, batch.verdict
    return items


def offsets(fake: FakeNetBox) -> list[int]:
    return [r.offset for r in fake.requests_to(DEVICES)]


# -- outages -------------------------------------------------------------------------------


def test_outage_in_the_middle_of_paging_fails_the_pull_and_keeps_the_marks(
    fake: FakeNetBox,
) -> None:
    state = MemoryState()
    connector = connect(fake, state=state, page_size=50, overlap=0)
    [first] = list(connector.fetch())
    list(first.items())
    first.commit()
    marks = state.load()
    fake.fail(503, path=DEVICES, offset=100, times=None)  # down after two pages
    [batch] = list(connector.fetch(force_full=True))
    items = batch.items()
    with pytest.raises(NetBoxUnavailableError) as caught:
        next(items)  # not one record leaves a pull that failed
    message = str(caught.value)
    assert "503" in message
    assert "offset=100" in message
    assert "gave up after 3 attempt(s)" in message
    assert isinstance(caught.value, RetriableError)
    assert offsets(fake)[-3:] == [100, 100, 100]
    assert not batch.verdict.accepted
    assert "pull failed" in batch.verdict.reason
    with pytest.raises(RuntimeError, match="cannot be committed"):
        batch.commit()
    batch.fail(batch.verdict.reason)
    assert state.load() == marks


def test_change_log_outage_fails_the_incremental_pull(fake: FakeNetBox) -> None:
    state = MemoryState()
    connector = connect(fake, state=state, overlap=0)
    [first] = list(connector.fetch())
    list(first.items())
    first.commit()
    marks = state.load()
    fake.delete_device(1)
    fake.fail(500, path="/api/core/object-changes/", times=None)
    [batch] = list(connector.fetch())
    with pytest.raises(NetBoxUnavailableError, match="500"):
        list(batch.items())
    assert state.load() == marks


def test_5xx_is_retried_and_the_pull_goes_on(fake: FakeNetBox) -> None:
    fake.fail(502, path=DEVICES, offset=50, times=2)
    items = read(connect(fake, page_size=50))
    assert len(items) == 214
    assert offsets(fake) == [0, 50, 50, 50, 100, 150, 200]


def test_429_is_retried_after_the_delay_netbox_asks(fake: FakeNetBox) -> None:
    fake.fail(429, path=DEVICES, retry_after=0)
    assert len(read(connect(fake))) == 214
    assert [r.status for r in fake.requests_to(DEVICES)] == [429, 200]


@pytest.mark.parametrize("fault", ["drop", "truncate"])
def test_a_dropped_connection_is_retried(fake: FakeNetBox, fault: str) -> None:
    getattr(fake, fault)(path=DEVICES, offset=100)
    assert len(read(connect(fake, page_size=50))) == 214
    assert offsets(fake).count(100) == 2


def test_a_hanging_netbox_times_out_and_is_retried(fake: FakeNetBox) -> None:
    fake.hang(10, path=DEVICES, offset=50)
    assert len(read(connect(fake, page_size=50, timeout=0.3))) == 214
    assert offsets(fake).count(50) == 2


def test_netbox_unreachable_is_a_clear_retriable_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]
    monkeypatch.setenv(TOKEN_ENV, "0123456789abcdef0123456789abcdef01234567")
    options = {"url": f"http://127.0.0.1:{port}", "token_env": TOKEN_ENV, "connect_timeout": 1}
    options["retry"] = {"attempts": 2, "wait_initial": 0, "wait_max": 0, "wait_jitter": 0}
    connector = NetBoxConnector("netbox", NetBoxConfig.model_validate(options))
    [batch] = list(connector.fetch())
    with pytest.raises(NetBoxUnavailableError, match="could not connect") as caught:
        list(batch.items())
    assert f"127.0.0.1:{port}" in str(caught.value)
    assert "gave up after 2 attempt(s)" in str(caught.value)


# -- refusals ------------------------------------------------------------------------------


def test_auth_refusal_that_clears_on_retry_is_survived(fake: FakeNetBox) -> None:
    fake.fail(403, path=DEVICES, times=1)  # e.g. a token being rotated behind a proxy
    [batch] = list(connect(fake).fetch(force_full=True))
    records = [i for i in batch.items() if isinstance(i, DeviceRecord)]
    assert len(records) == 162


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusal_is_retried_briefly_then_fatal(fake: FakeNetBox, status: int) -> None:
    fake.fail(status, path=DEVICES, times=None)
    [batch] = list(connect(fake, auth_attempts=3).fetch(force_full=True))
    with pytest.raises(NetBoxAuthError) as caught:
        list(batch.items())
    assert isinstance(caught.value, FatalError)
    assert caught.value.status_code == status
    assert len(fake.requests_to(DEVICES)) == 3  # retried with backoff, then given up
    assert "refused 3 time(s)" in str(caught.value)
    assert fake.v2_token not in str(caught.value)
    assert fake.v2_token.split(".")[1] not in repr(caught.value)


def test_a_wrong_token_gets_netbox_s_reason_and_is_not_shown(
    fake: FakeNetBox, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "nbt_deadbeef.this-token-does-not-exist"
    monkeypatch.setenv(TOKEN_ENV, wrong)
    [batch] = list(connect(fake).fetch())
    with pytest.raises(NetBoxAuthError, match="Invalid v2 token") as caught:
        list(batch.items())
    assert "403" in str(caught.value)
    assert "does-not-exist" not in str(caught.value)
    assert "does-not-exist" not in batch.verdict.reason


def test_an_unknown_filter_value_is_a_fatal_request_error(fake: FakeNetBox) -> None:
    [batch] = list(connect(fake, filters={"site": "atlantis"}).fetch())
    with pytest.raises(NetBoxRequestError, match="atlantis is not one of the available") as e:
        list(batch.items())
    assert "check the connector's filters" in str(e.value)
    assert len(fake.requests_to(DEVICES)) == 1


def test_a_wrong_url_is_a_fatal_request_error(fake: FakeNetBox) -> None:
    [batch] = list(connect(fake, url=f"{fake.url}/netbox").fetch())
    with pytest.raises(NetBoxRequestError, match="is the NetBox url right"):
        list(batch.items())


# -- the token -----------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["v2", "v1"])
def test_both_token_forms_are_sent_as_netbox_expects(
    fake: FakeNetBox, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    token = fake.v2_token if form == "v2" else fake.v1_token
    monkeypatch.setenv(TOKEN_ENV, token)
    assert len(read(connect(fake))) == 214
    expected = "Bearer" if form == "v2" else "Token"
    assert auth_scheme(token) == expected
    assert {r.auth for r in fake.requests} == {expected}
    assert {r.status for r in fake.requests} == {200}


def test_the_token_file_wins_over_the_environment(
    fake: FakeNetBox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret = tmp_path / "netbox-token"
    secret.write_text(f"{fake.v1_token}\n", encoding="utf-8")
    monkeypatch.setenv(TOKEN_ENV, "nbt_wrong.token")
    assert len(read(connect(fake, token_file=str(secret)))) == 214
    assert {r.auth for r in fake.requests} == {"Token"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, f"{TOKEN_ENV}.*is not set"),
        ("", f"{TOKEN_ENV}.*is not set"),
        ("nbt_missing_its_key_part", "not of the form nbt_<key>.<secret>"),
        ("Token 0123456789abcdef", "blanks or control characters"),
    ],
)
def test_a_missing_or_malformed_token_is_a_config_error(
    fake: FakeNetBox, monkeypatch: pytest.MonkeyPatch, value: str | None, message: str
) -> None:
    if value is None:
        monkeypatch.delenv(TOKEN_ENV)
    else:
        monkeypatch.setenv(TOKEN_ENV, value)
    [batch] = list(connect(fake).fetch())
    with pytest.raises(ConfigError, match=message) as caught:
        list(batch.items())
    if value:
        assert value not in str(caught.value)
    assert fake.requests == []  # nothing sent without a usable token


def test_an_unreadable_token_file_is_a_config_error(fake: FakeNetBox, tmp_path: Path) -> None:
    [batch] = list(connect(fake, token_file=str(tmp_path / "absent")).fetch())
    with pytest.raises(ConfigError, match="cannot read"):
        list(batch.items())


# -- TLS -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    folder = tmp_path_factory.mktemp("netbox-tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            *("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_fake(
    certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeNetBox]:
    with FakeNetBox(tls=certificate) as nb:
        monkeypatch.setenv(TOKEN_ENV, nb.v2_token)
        yield nb


def test_an_untrusted_certificate_is_refused_by_default(tls_fake: FakeNetBox) -> None:
    assert tls_fake.url.startswith("https://")
    [batch] = list(connect(tls_fake).fetch())
    with pytest.raises(NetBoxRequestError, match="TLS verification failed"):
        list(batch.items())


def test_a_ca_bundle_makes_the_certificate_trusted(
    tls_fake: FakeNetBox, certificate: tuple[Path, Path]
) -> None:
    assert len(read(connect(tls_fake, ca_bundle=str(certificate[0])))) == 214


def test_the_token_is_in_no_log_line(
    fake: FakeNetBox, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    fake.fail(503, path=DEVICES, times=1)
    read(connect(fake))
    fake.fail(403, path=DEVICES, times=None)
    [batch] = list(connect(fake).fetch())
    with pytest.raises(NetBoxAuthError):
        list(batch.items())
    out, err = capsys.readouterr()
    logged = out + err + caplog.text
    assert "netbox pull failed" in logged  # the logs were captured
    secret = fake.v2_token.split(".")[1]
    assert secret not in logged
