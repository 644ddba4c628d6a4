"""Bad input gets a clear error, never a traceback, and the exit code that says what to do.

Every test runs the real ``syncd`` command line: in this process through its entry
point (``syncd.cli.main``, output captured by click's test runner), where an unexpected
exception fails the test with its traceback, or as a process where it must drop
privileges or might hang. Configuration problems (a bad path, a file that is not a
database, a read-only folder, a non-finite or out-of-range number, an empty token file)
exit 2 and name the setting, the file or the value; only a store that is unreachable for
now exits 4.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from connectors.csv_drop.config import CsvDropConfig
from connectors.netbox.config import NetBoxConfig
from syncd.cli import main
from syncd.config import Settings
from tests import pg
from tests.test_cli import CLI, syncd

EXIT_CONFIG = 2
EXIT_RETRIABLE = 4


@dataclass(frozen=True)
class Done:
    """What one in-process command did."""

    returncode: int
    stdout: str
    stderr: str


Cli = Callable[..., Done]
Outcome = Done | subprocess.CompletedProcess[str]


@pytest.fixture
def cli(restored_logging: None) -> Cli:
    """``cli(*args, env=...)`` runs ``syncd ARGS`` in this process as its console script
    does (same entry point, same error handling), without the SYNCD_* environment of the
    test run, and returns its exit code and output."""

    def run(*args: str, env: dict[str, str] | None = None) -> Done:
        overrides: dict[str, str | None] = {k: None for k in os.environ if k.startswith("SYNCD_")}
        overrides |= {"COLUMNS": "200", **(env or {})}
        with CliRunner().isolation(env=overrides) as (out, err, _):
            try:
                main(args)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            return Done(code, out.getvalue().decode(), err.getvalue().decode())

    return run


def said(done: Outcome) -> str:
    """Everything the command printed, boxes and line wrapping taken out."""
    return " ".join((done.stdout + done.stderr).replace("│", " ").split())


def assert_refused(done: Outcome, code: int, *words: str) -> None:
    """The command exited ``code``, printed each of ``words``, and no traceback."""
    text = said(done)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    assert done.returncode == code, text
    for word in words:
        assert word in text


def store_config(tmp_path: Path, url: str, extra: str = "") -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(f'[store]\nurl = "{url}"\n{extra}', encoding="utf-8")
    return config


# -- the store ---------------------------------------------------------------------------------


def test_store_under_a_path_that_cannot_exist(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x", encoding="utf-8")
    config = store_config(tmp_path, f"sqlite:///{blocker / 'state' / 'syncd.db'}")
    done = cli("runs", "--config", str(config))
    assert_refused(done, EXIT_CONFIG, "store.url", str(blocker), "is a file, not a folder")


def test_store_file_that_is_not_sqlite(cli: Cli, tmp_path: Path) -> None:
    store = tmp_path / "syncd.db"
    store.write_text("these are somebody's notes, not a database\n" * 20, encoding="utf-8")
    done = cli("runs", "--config", str(store_config(tmp_path, f"sqlite:///{store}")))
    assert_refused(done, EXIT_CONFIG, "store.url", str(store), "is not an SQLite database")
    assert store.read_text(encoding="utf-8").startswith("these are")  # left as it was


def _corrupt_store(tmp_path: Path) -> Path:
    store = tmp_path / "syncd.db"
    with sqlite3.connect(store) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("row" * 50,)] * 200)
    conn.close()
    with store.open("r+b") as file:  # keep the header, ruin the schema page
        file.seek(100)
        file.write(b"\xff" * 2000)
    return store


def test_store_file_that_is_corrupt(cli: Cli, tmp_path: Path) -> None:
    store = _corrupt_store(tmp_path)
    done = cli("runs", "--config", str(store_config(tmp_path, f"sqlite:///{store}")))
    assert_refused(done, EXIT_CONFIG, "store.url", str(store), "damaged", "malformed")


def test_db_upgrade_of_a_corrupt_store(cli: Cli, tmp_path: Path) -> None:
    store = _corrupt_store(tmp_path)
    config = store_config(tmp_path, f"sqlite:///{store}")
    done = cli("db", "upgrade", "--config", str(config))
    assert_refused(done, EXIT_CONFIG, "store.url", str(store), "damaged")


def test_store_path_that_is_a_folder(cli: Cli, tmp_path: Path) -> None:
    folder = tmp_path / "syncd.db"
    folder.mkdir()
    done = cli("runs", "--config", str(store_config(tmp_path, f"sqlite:///{folder}")))
    assert_refused(done, EXIT_CONFIG, "store.url", str(folder), "is a folder")


def _unprivileged() -> list[str]:
    """A command prefix under which file permissions apply: as root, dropping the
    capabilities that override them (root ignores a folder's missing write bit)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv (util-linux) is not installed")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_store_in_a_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o555)
    config = store_config(tmp_path, f"sqlite:///{folder / 'syncd.db'}")
    base = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    try:
        done = subprocess.run(
            [*_unprivileged(), *CLI, "runs", "--config", str(config)],
            env={**base, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        folder.chmod(0o755)
    assert_refused(done, EXIT_CONFIG, "store.url", str(folder), "is not writable")
    assert not (folder / "syncd.db").exists()


@pytest.mark.postgres
def test_postgres_down_is_temporary_and_a_missing_database_is_configuration(
    cli: Cli,
    tmp_path: Path,
) -> None:
    server = pg.require_server()
    down = cli(
        "runs", "--config", str(store_config(tmp_path, "postgresql://syncd@127.0.0.1:1/syncd"))
    )
    assert_refused(down, EXIT_RETRIABLE, "temporary failure", "cannot be reached")
    missing = server.url("no_such_database_here")
    done = cli("runs", "--config", str(store_config(tmp_path, missing)))
    assert_refused(done, EXIT_CONFIG, "store.url", "no_such_database_here", "does not exist")


# -- numbers in the config ---------------------------------------------------------------------


def float_settings(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The dotted path of every float setting of ``model``, nested sections included."""
    found: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if kind is float:
            found.append((*prefix, name))
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            found.extend(float_settings(kind, (*prefix, name)))
    return found


def _toml_tables(values: dict[tuple[str, ...], str]) -> str:
    """TOML text setting each dotted path to its (TOML) value, one table per section."""
    tables: dict[tuple[str, ...], list[str]] = {}
    for path, value in values.items():
        tables.setdefault(path[:-1], []).append(f"{path[-1]} = {value}")
    return "".join(f"[{'.'.join(t)}]\n" + "\n".join(keys) + "\n" for t, keys in tables.items())


def test_no_float_setting_takes_infinity(cli: Cli, tmp_path: Path) -> None:
    """Every float of the config and of both connectors' options, found by looking at
    the models, so a float setting added later is covered too."""
    own = float_settings(Settings)
    csv_floats = float_settings(CsvDropConfig)
    netbox_floats = float_settings(NetBoxConfig)
    assert ("inventory", "timeout") in own
    assert ("retry", "wait_max") in netbox_floats
    options: tuple[str, ...] = ("connectors", "options")
    csv: dict[tuple[str, ...], str] = {(*options, "inbox"): f'"{tmp_path}"'}
    csv |= {(*options, *p): "inf" for p in csv_floats}
    netbox: dict[tuple[str, ...], str] = {(*options, "url"): '"http://127.0.0.1:1"'}
    netbox |= {(*options, *p): "-inf" for p in netbox_floats}
    config = tmp_path / "syncd.toml"
    config.write_text(
        _toml_tables(dict.fromkeys(own, "inf"))
        + '[[connectors]]\nname = "csv"\nplugin = "csv_drop"\n'
        + _toml_tables(csv)
        + '[[connectors]]\nname = "nb"\nplugin = "netbox"\n'
        + _toml_tables(netbox),
        encoding="utf-8",
    )
    done = cli("config", "check", str(config))
    assert_refused(done, EXIT_CONFIG, "finite number")
    text = said(done)
    expected = [
        *(".".join(p) for p in own),
        *(f"connectors.0.options.{'.'.join(p)}" for p in csv_floats),
        *(f"connectors.1.options.{'.'.join(p)}" for p in netbox_floats),
    ]
    assert [name for name in expected if f"{name}: Input should be a finite" not in text] == []


def test_timeout_nan_from_the_environment(cli: Cli, tmp_path: Path) -> None:
    config = store_config(tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}")
    done = cli("config", "check", str(config), env={"SYNCD_INVENTORY__TIMEOUT": "nan"})
    assert_refused(done, EXIT_CONFIG, "environment SYNCD_INVENTORY__TIMEOUT", "finite number")


def test_numbers_too_big_for_dates_timers_or_ids(cli: Cli, tmp_path: Path) -> None:
    """Values that passed ``config check`` and then failed the run: an orphan grace that
    overflows a date, an id SQLite cannot store, a NetBox overlap of a million days."""
    config = tmp_path / "syncd.toml"
    config.write_text(
        "[inventory]\ntimeout = 1e12\n"
        "[policy]\norphan_grace_hours = 1e300\n"
        f'[policy.type_map]\n"Big" = {2**63}\n"Zero" = 0\n'
        '[[connectors]]\nname = "nb"\nplugin = "netbox"\n'
        '[connectors.options]\nurl = "http://127.0.0.1:1"\noverlap = 86400000000\n',
        encoding="utf-8",
    )
    done = cli("config", "check", str(config))
    assert_refused(
        done,
        EXIT_CONFIG,
        f"{config}:2: inventory.timeout: Input should be less than or equal to 300",
        f"{config}:4: policy.orphan_grace_hours",
        f"{config}:6: policy.type_map.Big",
        f"{config}:7: policy.type_map.Zero",
        "connectors.0.options.overlap",
    )


# -- command-line options ----------------------------------------------------------------------


def test_changes_of_a_run_id_beyond_64_bits(cli: Cli, tmp_path: Path) -> None:
    config = store_config(tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}")
    done = cli("changes", "--run", "99999999999999999999999", "--config", str(config))
    assert_refused(done, EXIT_CONFIG, "'--run'", "less than or equal to 9223372036854775807")


@pytest.mark.parametrize("limit", ["1e20", str(10**20)])
def test_rejects_with_a_limit_of_1e20(cli: Cli, tmp_path: Path, limit: str) -> None:
    config = store_config(tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}")
    done = cli("rejects", "--limit", limit, "--config", str(config))
    assert_refused(done, EXIT_CONFIG, "'--limit'")


@pytest.mark.parametrize("command", ["approve", "discard"])
def test_approve_or_discard_of_a_run_id_beyond_64_bits(
    cli: Cli, tmp_path: Path, command: str
) -> None:
    config = store_config(tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}")
    done = cli(command, str(2**64), "--config", str(config))
    assert_refused(done, EXIT_CONFIG, "'RUN'", "less than or equal to 9223372036854775807")


def test_runs_with_a_negative_limit(cli: Cli, tmp_path: Path) -> None:
    config = store_config(tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}")
    done = cli("runs", "--limit", "-1", "--config", str(config))
    assert_refused(done, EXIT_CONFIG, "'--limit'", "greater than or equal to 0")


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("--port", "99999", "less than or equal to 65535"),
        ("--request-log-max", str(10**20), "less than or equal to 100000000"),
        ("--live-check-delay", "inf", "less than or equal to 600"),
        ("--seed-devices", str(10**20), "less than or equal to 10000000"),
    ],
)
def test_sandbox_options_out_of_range(option: str, value: str, words: str) -> None:
    done = syncd("sandbox", "--port", "0", option, value, timeout=30)
    assert_refused(done, EXIT_CONFIG, f"'{option}'", words)


def test_sandbox_request_log_that_is_a_folder(cli: Cli, tmp_path: Path) -> None:
    done = cli("sandbox", "--port", "0", "--request-log", str(tmp_path))
    assert_refused(done, EXIT_CONFIG, "--request-log", str(tmp_path), "Is a directory")


def test_demo_workdir_under_a_file(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x", encoding="utf-8")
    done = cli("demo", "--workdir", str(blocker / "demo"))
    assert_refused(done, EXIT_CONFIG, "--workdir", f"cannot create {blocker / 'demo'}")


# -- config check: the places the config names -------------------------------------------------


def _csv_config(tmp_path: Path, inbox: Path, store: str) -> Path:
    config = tmp_path / "syncd.toml"
    config.write_text(
        f'[store]\nurl = "{store}"\n'
        '[[connectors]]\nname = "procurement"\nplugin = "csv_drop"\n'
        f'[connectors.options]\ninbox = "{inbox}"\n',
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize("kind", ["missing", "a file"])
def test_config_check_reports_an_unusable_inbox(cli: Cli, tmp_path: Path, kind: str) -> None:
    inbox = tmp_path / "inbox"
    if kind == "a file":
        inbox.write_text("not a folder", encoding="utf-8")
    config = _csv_config(tmp_path, inbox, f"sqlite:///{tmp_path / 'syncd.db'}")
    done = cli("config", "check", str(config))
    words = "does not exist" if kind == "missing" else "is not a folder"
    assert_refused(done, EXIT_CONFIG, f"{config}:7", "'procurement'", f"{inbox} {words}")
    assert "OK" not in done.stdout


def test_config_check_reports_a_store_that_cannot_be_created(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    blocker = tmp_path / "afile"
    blocker.write_text("x", encoding="utf-8")
    config = _csv_config(tmp_path, tmp_path / "inbox", f"sqlite:///{blocker / 'syncd.db'}")
    done = cli("config", "check", str(config))
    assert_refused(done, EXIT_CONFIG, f"{config}:2", "store.url", "cannot be created")
    assert not blocker.is_dir()  # checking created nothing


def test_config_check_reports_a_store_that_is_not_a_database(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    store = _corrupt_store(tmp_path)
    config = _csv_config(tmp_path, tmp_path / "inbox", f"sqlite:///{store}")
    done = cli("config", "check", str(config))
    assert_refused(done, EXIT_CONFIG, f"{config}:2", "store.url", "damaged")


def test_config_check_says_an_empty_token_file_is_empty(cli: Cli, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n", encoding="utf-8")
    config = store_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'syncd.db'}",
        f'[inventory]\ntoken_file = "{token_file}"\n',
    )
    done = cli("config", "check", str(config))
    assert_refused(done, EXIT_CONFIG, f"{config}:4", f"token_file '{token_file}' is empty")
    assert "NOT SET" not in said(done)


def test_config_check_of_a_good_config_still_says_ok(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "inbox").mkdir()
    config = _csv_config(tmp_path, tmp_path / "inbox", f"sqlite:///{tmp_path / 'db' / 'x.db'}")
    done = cli("config", "check", str(config), env={"SYNCD_INVENTORY__TOKEN": "t" * 20})
    assert done.returncode == 0, done.stderr
    assert "OK" in done.stdout
    assert not (tmp_path / "db").exists()  # nothing created by checking


# -- the config file itself and the environment ------------------------------------------------


def test_config_file_that_is_a_folder(cli: Cli, tmp_path: Path) -> None:
    done = cli("runs", "--config", str(tmp_path))
    assert_refused(done, EXIT_CONFIG, str(tmp_path), "Is a directory")


def test_config_file_that_is_not_utf8(cli: Cli, tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    config.write_bytes(b'[store]\nurl = "sqlite:///caf\xe9.db"\n')
    done = cli("runs", "--config", str(config))
    assert_refused(done, EXIT_CONFIG, str(config), "utf-8")


def test_environment_list_setting_that_is_not_json(cli: Cli, tmp_path: Path) -> None:
    config = store_config(tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}")
    env = {"SYNCD_POLICY__SOURCE_PRIORITY": "netbox, procurement"}
    done = cli("runs", "--config", str(config), env=env)
    assert_refused(done, EXIT_CONFIG, "environment SYNCD_POLICY__SOURCE_PRIORITY", "JSON")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:99999/api/v1", "Port out of range"),
        ("http://[::1/api/v1", "Invalid IPv6 URL"),
        ("http://inventory host/api/v1", "no blanks"),
    ],
)
def test_base_url_that_cannot_be_connected_to(
    cli: Cli, tmp_path: Path, url: str, words: str
) -> None:
    config = store_config(
        tmp_path, f"sqlite:///{tmp_path / 'syncd.db'}", f'[inventory]\nbase_url = "{url}"\n'
    )
    done = cli("config", "check", str(config))
    assert_refused(done, EXIT_CONFIG, f"{config}:4", "inventory.base_url", words)


# -- [logging] format = "json" -----------------------------------------------------------------


def _json_lines(stderr: str) -> list[dict[str, object]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a line on stderr is not JSON: {line!r}")
    return parsed


def test_json_logging_puts_nothing_but_json_on_stderr(cli: Cli, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'syncd.db'}"
    debug = store_config(tmp_path, db, '[logging]\nformat = "json"\nlevel = "DEBUG"\n')
    migrated = cli("runs", "--config", str(debug))
    assert migrated.returncode == 0, migrated.stderr
    events = _json_lines(migrated.stderr)
    assert any(str(e.get("logger", "")).startswith("alembic") for e in events)

    quiet = store_config(tmp_path, db, '[logging]\nformat = "json"\n')
    again = cli("runs", "--config", str(quiet))
    assert again.returncode == 0
    assert _json_lines(again.stderr) == []  # Alembic's INFO chatter is not shown

    (tmp_path / "syncd.db").unlink()
    (tmp_path / "syncd.db").mkdir()
    failed = cli("runs", "--config", str(quiet))
    assert failed.returncode == EXIT_CONFIG
    [error] = _json_lines(failed.stderr)
    assert error["event"] == "config error"
    assert error["exit_code"] == EXIT_CONFIG
    assert "is a folder" in str(error["error"])
