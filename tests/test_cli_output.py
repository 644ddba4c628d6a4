"""What the command line costs and prints beyond a run: start-up, and plain JSON.

``syncd --help`` must not load the store, the client or rich (a user waits for every
command's start-up); ``--json`` output must be plain JSON, streamed, that any program
can read, whatever the values hold.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime

from syncd.cli import render
from syncd.cli.common import DEFAULT_CONFIG_FILE
from syncd.config import DEFAULT_CONFIG_FILE as CONFIG_DEFAULT
from syncd.engine import FieldChange, Operation, Plan
from syncd.service import RunResult
from syncd.store import ChangeRow

_HEAVY = ("sqlalchemy", "sqlmodel", "pydantic", "httpx", "rich", "structlog", "alembic")


def test_help_loads_no_heavy_module() -> None:
    probe = (
        "import sys, runpy; sys.argv = ['syncd', '--help']\n"
        "try:\n    runpy.run_module('syncd', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        f"print('LOADED', sorted({{m.split('.')[0] for m in sys.modules}} & set({_HEAVY!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert "Commands:" in done.stdout
    assert "LOADED []" in done.stdout, done.stdout.splitlines()[-1]


def test_the_cli_default_config_file_is_the_configs() -> None:
    assert DEFAULT_CONFIG_FILE == CONFIG_DEFAULT


def test_the_cli_id_bound_is_the_configs() -> None:
    from syncd.cli.common import INT64_MAX
    from syncd.config import INT64_MAX as CONFIG_INT64_MAX

    assert INT64_MAX == CONFIG_INT64_MAX


def _operation(serial: str, kind: str = "create") -> Operation:
    changes = {
        "name": FieldChange(None, 'core "1"\nZürich'),
        "type": FieldChange(None, 3),
        "status": FieldChange(False, True),
        "ip_address": FieldChange("10.0.0.1", None),
    }
    return Operation(kind, serial, changes, "why, \\ and \t", ("csv",), ("a.csv:2",))  # type: ignore[arg-type]


def test_plan_json_is_plain_and_complete() -> None:
    ops = [_operation(f"SN{i:03}") for i in range(3)] + [_operation("ZZ", "update")]
    plan = Plan(operations=ops, counts={"create": 3, "update": 1})
    result = RunResult(run_id=7, status="done", plan=plan)
    out = io.StringIO()
    render.print_plan_json(result, out)
    text = out.getvalue()
    assert "\x1b" not in text  # no colour codes: a program reads this
    answer = json.loads(text)
    assert answer == render.plan_json(result)
    assert answer["run"] == 7
    assert [op["serial_number"] for op in answer["plan"]] == ["SN000", "SN001", "SN002", "ZZ"]
    assert answer["plan"][0]["changes"]["name"]["after"] == 'core "1"\nZürich'
    assert answer["plan"][0]["changes"]["ip_address"] == {"before": "10.0.0.1", "after": None}
    assert len(text.splitlines()) == 1 + len(ops) + 1  # one operation per line, streamed


def test_empty_plan_json_is_valid() -> None:
    result = RunResult(run_id=1, status="done", plan=Plan(operations=[]))
    out = io.StringIO()
    render.print_plan_json(result, out)
    assert json.loads(out.getvalue())["plan"] == []


def test_changes_json_is_a_plain_array() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = ChangeRow(
        id=1,
        run_id=2,
        serial_number="SN1",
        operation="update",
        changes={"name": {"before": "a", "after": "b", "before_known": True}},
        reason="",
        sources=("csv",),
        origins=(),
        status="applied",
        attempts=1,
        response={"status_code": 200},
        error=None,
        created_at=now,
        updated_at=now,
        applied_at=now,
    )
    for rows in ([], [row, row]):
        out = io.StringIO()
        render.print_changes_json(rows, out)
        assert json.loads(out.getvalue()) == [render.change_json(r) for r in rows]


def test_plan_json_of_a_plan_too_large_to_keep_says_where_the_rest_is() -> None:
    plan = Plan(operations=[_operation("SN1")], counts={"create": 4})
    result = RunResult(run_id=9, status="done", plan=plan, operations_not_kept=3)
    out = io.StringIO()
    render.print_plan_json(result, out)
    answer = json.loads(out.getvalue())
    assert answer["plan_not_listed"] == 3
    assert answer["plan_in_full"] == "syncd changes --run 9 --limit 4 --json"
    assert len(answer["plan"]) == 1
