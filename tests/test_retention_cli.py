"""``syncd prune`` as the operator runs it, and the daemon's prune task, on a clock moved
with freezegun."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from freezegun import freeze_time

from syncd import broker
from syncd.config import load_settings
from syncd.service.retention import LOCK
from syncd.store import Store
from tasks.definitions import beat_schedule, make_app
from tests.test_cli_errors import Cli, assert_refused, cli, said
from tests.test_retention import run_at

__all__ = ["cli"]  # the fixture

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LATER = T0 + timedelta(days=100)
RETENTION = """
[retention]
changes_max_age_days = 30
rejects_max_age_days = 0
idle_runs_max_age_hours = 0
export_dir = "exports"
"""


def configured(tmp_path: Path, retention: str = RETENTION) -> tuple[Path, str]:
    """A config whose store holds an old run (3 changes) and a recent one (1)."""
    url = f"sqlite:///{tmp_path / 'syncd.db'}"
    config = tmp_path / "syncd.toml"
    config.write_text(f'[store]\nurl = "{url}"\n{retention}', encoding="utf-8")
    with Store.open(url) as store:
        run_at(store, T0, "A", "B", "C")
        run_at(store, LATER - timedelta(days=1), "D")
    return config, url


def test_dry_run_says_what_would_go_and_where_and_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    config, url = configured(tmp_path)

    with freeze_time(LATER):
        done = cli("prune", "--dry-run", "--config", str(config))

    assert done.returncode == 0, done.stderr
    text = said(done)
    assert "changes older than 30 days" in text
    assert "changes 3 1 2026-01-01 2026-01-01 ~1 file(s)" in text
    assert f"would be exported to {tmp_path / 'exports'}" in text  # relative to the config
    with Store.open(url) as store:
        assert len(store.changes()) == 4
    assert not (tmp_path / "exports").exists()


def test_prune_exports_deletes_and_notes_the_run(cli: Cli, tmp_path: Path) -> None:
    config, url = configured(tmp_path)

    with freeze_time(LATER):
        done = cli("prune", "--json", "--config", str(config))

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["changes"]["rows"], report["dry_run"]) == (3, False)
    (name,) = report["changes"]["files"]
    with gzip.open(tmp_path / "exports" / name, "rt", encoding="utf-8") as lines:
        assert sorted(json.loads(line)["serial_number"] for line in lines) == ["A", "B", "C"]
    with Store.open(url) as store:
        assert [c.serial_number for c in store.changes()] == ["D"]
        first = store.runs()[-1]
        assert first.summary["retention"]["files"] == [name]
        assert first.summary["retention"]["exported_to"] == str(tmp_path / "exports")


def test_an_export_folder_that_cannot_be_made_is_a_config_error(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("a file where the folder should be", encoding="utf-8")
    config, url = configured(tmp_path, RETENTION.replace('"exports"', '"blocker/exports"'))

    with freeze_time(LATER):
        done = cli("prune", "--config", str(config))

    assert_refused(done, 2, "retention.export_dir", str(tmp_path / "blocker" / "exports"))
    with Store.open(url) as store:
        assert len(store.changes()) == 4


def test_a_second_prune_while_one_runs_is_refused(cli: Cli, tmp_path: Path) -> None:
    config, url = configured(tmp_path)
    with Store.open(url) as store:
        assert store.acquire_lock(LOCK, "other-host:42", timedelta(minutes=10), now=LATER)

    with freeze_time(LATER):
        done = cli("prune", "--config", str(config))

    assert_refused(done, 1, "audit-retention is held by other-host:42")
    with Store.open(url) as store:
        assert len(store.changes()) == 4


def test_bad_retention_settings_are_refused_with_their_line(cli: Cli, tmp_path: Path) -> None:
    config, _ = configured(tmp_path, "[retention]\nchanges_max_age_days = -5\nschedule = 'often'\n")

    done = cli("prune", "--config", str(config))

    assert_refused(
        done, 2, "syncd.toml:4: retention.changes_max_age_days", "syncd.toml:5: retention.schedule"
    )


def test_the_daemon_prunes_on_its_schedule(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, url = configured(tmp_path, RETENTION + f'[daemon]\ndata_dir = "{tmp_path}/d"\n')
    monkeypatch.setenv("SYNCD_INVENTORY__TOKEN", "t" * 20)  # the worker builds its client
    settings = load_settings(config)
    assert beat_schedule(settings)["prune audit log"] == {
        "task": broker.PRUNE_AUDIT,
        "schedule": timedelta(days=1),
        "options": {"expires": 86400.0},
    }
    app = make_app(settings)
    try:
        with freeze_time(LATER):
            result = app.tasks[broker.PRUNE_AUDIT].apply().get()
    finally:
        app.syncd_context.close()

    assert result["changes"]["rows"] == 3
    assert len(list((tmp_path / "exports").glob("*.jsonl.gz"))) == 1
    with Store.open(url) as store:
        assert len(store.changes()) == 1
    never = load_settings(config).model_copy(
        update={"retention": settings.retention.model_copy(update={"schedule": None})}
    )
    assert "prune audit log" not in beat_schedule(never)
