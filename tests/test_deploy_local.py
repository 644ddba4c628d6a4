"""``scripts/local.sh``: the deployment of compose.yaml as local processes, run as a
user runs it (a real process, which starts real processes), embedded with SQLite.

What its end to end (``--check``) reported is checked against what it left behind:
the store (SQLite, in its working folder) and the sandbox's own request log.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from syncd.cli.demo import example_file
from syncd.store import Store
from tests.pg import REQUIRE_ENV
from tests.procs import redis_binary, wait_for

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "local.sh"
SECRETS = ("inventory_token", "operator_token", "token_pepper")


def _script(*args: str, workdir: Path, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHON": sys.executable}
    with out.open("wb") as sink:
        return subprocess.Popen(
            [str(SCRIPT), "--workdir", str(workdir), *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _finish(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(out.read_text(errors="replace")) from None


def _left_running(workdir: Path) -> dict[int, str]:
    """Processes still running that name ``workdir``: pid -> command line."""
    found = {}
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(workdir) in text:
            found[int(cmdline.parent.name)] = text
    return found


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """The script's working folder; whatever it left running is killed afterwards."""
    folder = tmp_path / "local"
    try:
        yield folder
    finally:
        for pid in _left_running(folder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _no_secret_shown(workdir: Path, output: str) -> None:
    values = [(workdir / "secrets" / name).read_text().strip() for name in SECRETS]
    texts = [output] + [p.read_text(errors="replace") for p in (workdir / "logs").iterdir()]
    texts.append((workdir / "syncd.toml").read_text())
    for value in values:
        assert all(value not in text for text in texts)


def test_check_runs_end_to_end_and_leaves_the_store_and_sandbox_agreeing(
    tmp_path: Path, workdir: Path
) -> None:
    out = tmp_path / "out.txt"
    code = _finish(_script("--check", workdir=workdir, out=out), out, timeout=120)
    output = out.read_text(errors="replace")
    assert code == 0, output
    assert "stopped cleanly: check passed" in output
    assert _left_running(workdir) == {}
    _no_secret_shown(workdir, output)

    rows = list(csv.DictReader(io.StringIO(example_file("procurement.csv"))))
    with Store.open(f"sqlite:///{workdir / 'syncd.db'}", migrate=False) as store:
        # (a scheduled poll may have begun as the script stopped: interrupted, no changes)
        drop = next(
            r
            for r in store.runs(idle=False)
            if r.trigger == "schedule" and store.change_counts(r.id)
        )
        changes = store.changes(run_id=drop.id, limit=1000)
        created = {c.serial_number for c in changes if c.operation == "create"}
        assert drop.status == "done"
        assert {c.status for c in changes} == {"applied"}
        assert created <= {row["serial_number"] for row in rows}
        assert len(created) + len(store.rejects(run_id=drop.id)) == len(rows)
        request = store.trigger(1)
        assert request is not None
        assert (request.source, request.state) == ("http", "done")
        assert request.run_id is not None
        assert store.change_counts(request.run_id) == {}

    log = (workdir / "logs" / "sandbox-requests.jsonl").read_text().splitlines()
    posted = {
        entry["serial"]
        for entry in map(_json, log)
        if entry["method"] == "POST" and entry["status"] == 201
    }
    assert posted == created


def test_sigterm_stops_every_process_cleanly(tmp_path: Path, workdir: Path) -> None:
    out = tmp_path / "out.txt"
    proc = _script(workdir=workdir, out=out)
    try:
        wait_for(lambda: "commands " in out.read_text(), "the script to start", timeout=60)
        api = next(
            line.split()[1] for line in out.read_text().splitlines() if line.startswith("api ")
        )
        assert httpx.get(f"{api}/readyz").json()["ready"] is True
        assert len(_left_running(workdir)) >= 3  # sandbox, daemon, api
        proc.send_signal(signal.SIGTERM)
        code = _finish(proc, out, timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = out.read_text()
    assert code == 0, output
    assert output.rstrip().endswith("stopped cleanly")
    deadline = time.monotonic() + 5
    while _left_running(workdir) and time.monotonic() < deadline:
        time.sleep(0.1)  # a child reaped a moment after the script's own exit
    assert _left_running(workdir) == {}
    _no_secret_shown(workdir, output)


def test_a_folder_it_did_not_make_is_refused_and_left_alone(tmp_path: Path) -> None:
    workdir, out = tmp_path / "mine", tmp_path / "out.txt"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("keep me")
    code = _finish(_script(workdir=workdir, out=out), out, timeout=60)
    assert code == 1
    assert f"{workdir} exists and was not made by this script" in out.read_text()
    assert [p.name for p in workdir.iterdir()] == ["notes.txt"]


def _json(line: str) -> dict[str, object]:
    value: dict[str, object] = json.loads(line)
    return value


@pytest.mark.postgres
def test_check_passes_scaled_out_on_a_throw_away_postgres(tmp_path: Path, workdir: Path) -> None:
    redis_binary()  # skipped without redis-server (a failure under SYNCD_REQUIRE_REDIS=1)
    _postgres_programs()
    clusters_before = set(Path(tempfile.gettempdir()).glob("syncd-local-pg-*"))
    out = tmp_path / "out.txt"
    proc = _script("--check", "--postgres", "--scale-out", workdir=workdir, out=out)
    code = _finish(proc, out, timeout=180)
    output = out.read_text(errors="replace")
    assert code == 0, output
    assert "ready: broker, store" in output
    assert "stopped cleanly: check passed" in output
    assert _left_running(workdir) == {}
    # the cluster is gone with its folder; the store URL it printed has no password
    assert set(Path(tempfile.gettempdir()).glob("syncd-local-pg-*")) == clusters_before
    assert "store    postgresql+psycopg://syncd@127.0.0.1:" in output
    _no_secret_shown(workdir, output)


def _postgres_programs() -> None:
    """Skip without PostgreSQL's programs (a failure under SYNCD_REQUIRE_POSTGRES=1)."""
    from syncd.topology import LocalStackError
    from syncd.topology.postgres import find_programs

    try:
        find_programs()
    except LocalStackError as exc:
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1): {exc}")
        pytest.skip(str(exc))
