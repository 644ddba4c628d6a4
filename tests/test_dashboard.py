"""The dashboard, clicked in a real headless Chromium (Debian's ``/usr/bin/chromium``,
driven by Playwright) against ``syncd serve`` on loopback, with the sandbox process as
the inventory; and its defences over plain HTTP (CSRF, roles, revoked tokens).

The world is ``tests.dashsupport``'s: a failed change, a held plan, a conflict, a
reject. Every action is checked where it lands: the sandbox's devices, the store.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright
from pydantic import SecretStr

from syncd.api.session import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_LIFETIME,
    Session,
    csrf_matches,
    login_nonce,
    login_nonce_matches,
    open_session,
    read_session,
    same_origin,
    session_key,
)
from syncd.sandbox.testing import SandboxProcess
from syncd.service.access import issue
from syncd.store import Store
from tests.apisupport import LIMIT
from tests.dashsupport import (
    BAD_LINE,
    CHROMIUM,
    CHROMIUM_ARGS,
    NEW,
    PEPPER,
    SLASHED,
    World,
    chromium_missing,
    sample_world,
)

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def world(sandbox: SandboxProcess, tmp_path: Path) -> Iterator[World]:
    with sample_world(sandbox, tmp_path) as served:
        yield served


@pytest.fixture(scope="module")
def shared(
    sandbox_process: SandboxProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One world for the tests that change nothing when the dashboard does its job."""
    sandbox_process.reset()
    with sample_world(sandbox_process, tmp_path_factory.mktemp("dashboard")) as served:
        yield served


@pytest.fixture
def browser() -> Iterator[BrowserContext]:
    """Debian's Chromium, headless, with a fresh profile; fails (never skips) without it."""
    missing = chromium_missing()
    if missing is not None:
        pytest.fail(missing)
    with sync_playwright() as driver, tempfile.TemporaryDirectory() as profile:
        context = driver.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context.set_default_timeout(20_000)
        try:
            yield context
        finally:
            context.close()


def _no_secret(world: World, text: str) -> None:
    for secret in world.secrets():
        assert secret not in text


def _log_in(page: Page, token: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()


# -- in the browser --------------------------------------------------------------------------


def test_an_operators_round_in_chromium(world: World, browser: BrowserContext) -> None:
    page = browser.new_page()
    seen: list[str] = []

    page.goto(f"{world.url}/ui")
    assert "/ui/login?next=%2Fui" in page.url  # no session: to the login form
    _log_in(page, world.operator)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    seen.append(page.content())
    [cookie] = [c for c in browser.cookies() if c["name"] == SESSION_COOKIE]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/")
    assert cookie["expires"] - datetime.now(UTC).timestamp() <= SESSION_LIFETIME.total_seconds()
    assert world.operator not in cookie["value"]

    # approve the held plan: SN00002 moves to DC2 in the sandbox
    held = page.locator("#held + table tr", has_text=f"run {world.held_run}")
    assert world.env.devices()["SN00002"]["location"] == "DC1"
    held.get_by_role("button", name="Approve").click()
    expect(page.locator(".notice")).to_contain_text("Approved:")
    assert page.url.startswith(f"{world.url}/ui/runs/{world.held_run}?")
    seen.append(page.content())
    assert world.env.devices()["SN00002"]["location"] == "DC2"
    assert world.run_status(world.held_run) == "done"

    # retry the failed change: SN00011 is created in the sandbox
    page.goto(f"{world.url}/ui")
    assert NEW.serial_number not in world.env.devices()
    failed = page.locator("table.changes tr", has_text=NEW.serial_number)
    expect(failed).to_contain_text("400")  # the API's answer is shown
    failed.get_by_role("button", name="Retry").click()
    expect(page.locator(".notice")).to_contain_text("Sent again: 1 change(s), 1 applied")
    seen.append(page.content())
    assert world.env.devices()[NEW.serial_number]["location"] == "DC3"

    # a device's history, by a serial holding a slash
    page.get_by_placeholder("serial (exact)").fill(SLASHED.serial_number)
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("heading", name=SLASHED.serial_number)).to_be_visible()
    expect(page.locator("table.changes")).to_contain_text("create")
    expect(page.locator("table.changes")).to_contain_text("applied")
    seen.append(page.content())

    # the rejects, where the file lies now
    page.get_by_role("link", name="Rejects").click()
    processed = world.env.inbox / "processed" / "drop-001.csv"
    expect(page.locator("td.path")).to_have_text(f"{processed}:{BAD_LINE}")
    assert processed.read_text().splitlines()[BAD_LINE - 1].startswith("BAD1")
    seen.append(page.content())

    # log out: the session is gone, pages ask for a login again
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to syncd")).to_be_visible()
    assert [c for c in browser.cookies() if c["name"] == SESSION_COOKIE] == []
    page.goto(f"{world.url}/ui/drift")
    assert "/ui/login" in page.url

    for html in seen:
        _no_secret(world, html)
    output = world.api.output()
    _no_secret(world, output)
    assert "dashboard.approve" in output
    assert "token=alice" in output


# -- over plain HTTP -------------------------------------------------------------------------


def _login(http: httpx.Client, token: str) -> str:
    """Log ``http`` in with ``token``; returns the session's CSRF token."""
    form = http.get("/ui/login")
    assert form.status_code == 200
    [nonce] = CSRF.findall(form.text)
    done = http.post("/ui/login", data={"csrf": nonce, "token": token, "next": "/ui"})
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/ui"
    page = http.get("/ui")
    assert page.status_code == 200
    found: str = CSRF.findall(page.text)[0]
    return found


def test_a_post_without_the_right_csrf_token_or_origin_is_refused(world: World) -> None:
    approve = f"/ui/runs/{world.held_run}/approve"
    with world.http() as http:
        csrf = _login(http, world.operator)
        missing = http.post(approve, data={})
        wrong = http.post(approve, data={"csrf": csrf[:-1] + ("A" if csrf[-1] != "A" else "B")})
        foreign = http.post(approve, data={"csrf": csrf}, headers={"Origin": "http://evil.test"})
        as_json = http.post(approve, json={"csrf": csrf})
        before = world.env.devices()["SN00002"]["location"]
        status = world.run_status(world.held_run)
        same_site = http.post(approve, data={"csrf": csrf}, headers={"Origin": world.url})
        again = http.post(approve, data={"csrf": csrf})
        overview = http.get("/ui").text

    for refused in (missing, wrong, foreign, as_json):
        assert refused.status_code == 403, refused.text
        assert "text/html" in refused.headers["content-type"]
    assert "stale or was not sent from syncd" in wrong.text
    assert "not sent from syncd&#39;s own pages" in foreign.text
    assert (before, status) == ("DC1", "held")  # nothing was done
    assert same_site.status_code == 303  # the same form with its token does it
    assert world.run_status(world.held_run) == "done"
    assert again.status_code == 409  # the service's verdict, as a page
    assert f"run {world.held_run} is done, not held" in again.text
    assert "Nothing held" in overview


def test_the_login_form_needs_its_own_csrf_pair(shared: World) -> None:
    with shared.http() as http:
        no_pair = http.post("/ui/login", data={"token": shared.operator, "csrf": "x"})
        form = http.get("/ui/login")
        [nonce] = CSRF.findall(form.text)
        wrong = http.post("/ui/login", data={"token": shared.operator, "csrf": nonce + "x"})
        bad_token = http.post("/ui/login", data={"token": shared.operator + "x", "csrf": nonce})

    assert no_pair.status_code == wrong.status_code == 403
    assert SESSION_COOKIE not in no_pair.cookies
    assert SESSION_COOKIE not in wrong.cookies
    assert bad_token.status_code == 401
    assert "That token is not valid" in bad_token.text
    assert SESSION_COOKIE not in bad_token.cookies
    _no_secret(shared, bad_token.text)


def test_a_viewer_sees_no_action_and_is_refused_one(shared: World) -> None:
    with shared.http() as http:
        csrf = _login(http, shared.viewer)
        overview = http.get("/ui")
        run_page = http.get(f"/ui/runs/{shared.failed_run}")
        approve = http.post(f"/ui/runs/{shared.held_run}/approve", data={"csrf": csrf})
        retry = http.post("/ui/changes/retry", data={"csrf": csrf, "run": shared.failed_run})
        logout = http.post("/ui/logout", data={"csrf": csrf})

    assert "Held plans" in overview.text
    assert f"run {shared.held_run}" in overview.text
    assert "Approve" not in overview.text
    assert "Retry" not in overview.text + run_page.text
    assert approve.status_code == retry.status_code == 403
    assert "this needs the operator role; grafana is a viewer" in approve.text
    assert shared.run_status(shared.held_run) == "held"
    assert NEW.serial_number not in shared.env.devices()
    assert logout.status_code == 303  # a viewer may end its own session


def test_revoking_a_token_ends_its_sessions_at_once(shared: World) -> None:
    with Store.open(shared.env.store_url) as store:
        _, token = issue(store, "bob", "operator", SecretStr(PEPPER))
    with shared.http() as http:
        csrf = _login(http, token.get_secret_value())
        with Store.open(shared.env.store_url) as store:
            store.revoke_token("bob")
        page = http.get("/ui/drift")
        action = http.post(f"/ui/runs/{shared.held_run}/approve", data={"csrf": csrf})

    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fdrift"
    assert action.status_code == 403
    assert shared.run_status(shared.held_run) == "held"


def test_pages_redirect_to_the_login_and_the_api_still_answers_401(shared: World) -> None:
    with shared.http() as http:
        page = http.get("/ui/devices", params={"serial": "AB/12-x"})
        api = http.get("/v1/runs")
        http.cookies.set(SESSION_COOKIE, "e30.AAAA")
        forged = http.get("/ui")
        too_large = http.post(
            f"/ui/runs/{shared.held_run}/discard", data={"reason": "x" * (LIMIT + 1)}
        )

    assert page.status_code == forged.status_code == 303
    assert page.headers["location"] == "/ui/login?next=%2Fui%2Fdevices%3Fserial%3DAB%252F12-x"
    assert api.status_code == 401
    assert too_large.status_code == 413
    assert shared.run_status(shared.held_run) == "held"


def test_pages_show_names_drift_and_empty_states(shared: World) -> None:
    with shared.http() as http:
        _login(http, shared.operator)
        drift = http.get("/ui/drift").text
        device = http.get("/ui/devices", params={"serial": "SN00001"}).text
        other_case = http.get("/ui/devices", params={"serial": "sn00001"})
        held = http.get(f"/ui/runs/{shared.held_run}").text
        markup = http.get("/ui/devices", params={"serial": "<i>x</i>"})

    assert "by-hand" in drift  # the open conflict: the inventory's value
    assert "sw-00001" in drift  # and the source's
    assert "Nothing missing" in drift
    assert "after 2 more run(s), not before" in drift  # when each orphan falls due
    assert "3 (Cisco Catalyst 9300)" in device  # names beside ids
    assert other_case.status_code == 404  # serials are exact
    assert "&#39;sn00001&#39;" in other_case.text
    assert "held because" in held
    assert "Approve" in held
    assert markup.status_code == 404
    assert "&lt;i&gt;x&lt;/i&gt;" in markup.text  # escaped, never markup
    assert "<i>x</i>" not in markup.text


def test_the_session_cookie_is_strict_and_secure_over_https(shared: World) -> None:
    cookies = {}
    with Store.open(shared.env.store_url) as store:
        _, token = issue(store, "carol", "viewer", SecretStr(PEPPER))
    for scheme in ("http", "https"):
        # as behind a TLS proxy on the same host (uvicorn trusts 127.0.0.1's header)
        headers = {"X-Forwarded-Proto": scheme}
        with shared.http() as http:
            form = http.get("/ui/login", headers=headers)
            [nonce] = CSRF.findall(form.text)
            # sent by hand: the client keeps a Secure cookie from a plain-HTTP server
            http.cookies.clear()
            pair = {"Cookie": f"{LOGIN_COOKIE}={form.cookies[LOGIN_COOKIE]}"}
            done = http.post(
                "/ui/login",
                data={"csrf": nonce, "token": token.get_secret_value()},
                headers={**headers, **pair},
            )
        assert done.status_code == 303, done.text
        [cookies[scheme]] = [
            v for v in done.headers.get_list("set-cookie") if v.startswith(SESSION_COOKIE)
        ]

    for cookie in cookies.values():
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/" in cookie
        assert f"Max-Age={int(SESSION_LIFETIME.total_seconds())}" in cookie
        assert token.get_secret_value() not in cookie
    assert "Secure" in cookies["https"]
    assert "Secure" not in cookies["http"]


# -- sessions, as pure functions -------------------------------------------------------------

KEY = session_key(SecretStr(PEPPER))
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def test_a_session_is_signed_expires_and_names_only_a_token_id() -> None:
    cookie, session = open_session(KEY, 7, now=NOW)
    payload, _, signature = cookie.rpartition(".")
    other_key = session_key(SecretStr(PEPPER + "x"))

    assert read_session(KEY, cookie, now=NOW + timedelta(hours=1)) == session
    assert session.token_id == 7
    assert read_session(KEY, cookie, now=NOW + SESSION_LIFETIME) is None
    assert read_session(KEY, cookie, now=NOW - timedelta(minutes=1)) is None
    assert read_session(other_key, cookie, now=NOW) is None
    assert read_session(KEY, payload + "." + signature[::-1], now=NOW) is None
    assert read_session(KEY, payload.upper() + "." + signature, now=NOW) is None
    assert read_session(KEY, None, now=NOW) is None
    assert csrf_matches(session, session.csrf)
    assert not csrf_matches(session, session.csrf + "x")
    assert not csrf_matches(Session(7, session.issued_at, "other"), session.csrf)


def test_the_login_pair_and_the_origin_check() -> None:
    cookie, nonce = login_nonce(KEY, now=NOW)

    assert login_nonce_matches(KEY, cookie, nonce, now=NOW + timedelta(minutes=5))
    assert not login_nonce_matches(KEY, cookie, nonce, now=NOW + timedelta(hours=1))
    assert not login_nonce_matches(KEY, cookie, nonce + "x", now=NOW)
    assert not login_nonce_matches(KEY, nonce + ".forged", nonce, now=NOW)
    assert not login_nonce_matches(KEY, None, nonce, now=NOW)
    own = "http://127.0.0.1:8780"
    assert same_origin(own, None, own)
    assert same_origin(None, own + "/ui", own)
    assert same_origin(None, None, own)  # then the CSRF token alone decides
    assert not same_origin("http://127.0.0.1:8781", None, own)
    assert not same_origin("null", None, own)
    assert not same_origin(None, own + ".evil.test/ui", own)
    assert LOGIN_COOKIE != SESSION_COOKIE
