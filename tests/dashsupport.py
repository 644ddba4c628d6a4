"""A world for the dashboard: real runs against the sandbox, and ``syncd serve`` over them.

Used by ``tests/test_dashboard.py`` and by ``python -m scripts.screenshots``. After
``sample_world``:

- run 1 created eleven devices (``SN00001``..``SN00010`` and ``AB/12-x``) and rejected
  one row (line 13 of ``drop-001.csv``, now in ``processed/``);
- ``SN00001`` was renamed by hand in the inventory;
- run 2 reported that as a conflict, and failed to create ``SN00011`` (the sandbox
  answered 400 once);
- run 3 is held: the source shrank to two rows, one of them moving ``SN00002`` to DC2.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from syncd.sandbox.testing import SandboxProcess
from syncd.store import Store
from tests.apisupport import ApiProcess, serve_store
from tests.runsupport import TYPE_MAP, Row, RunEnv, csv_text, rows

PEPPER = "pepper-" + secrets.token_hex(16)
SLASHED = Row("AB/12-x", "slashed")
NEW = Row("SN00011", "sw-00011", location="DC3")
#: A row the CSV reader refuses (an IP address that is not one), line 13 of the drop.
BAD_ROW = "BAD1,bad,Cisco Catalyst 9300,Acme Corp IT,999.1.1.1,DC1\n"
BAD_LINE = 13


@dataclass
class World:
    """The runs of the module docstring, served."""

    env: RunEnv
    api: ApiProcess
    viewer: str
    operator: str
    failed_run: int
    held_run: int

    @property
    def url(self) -> str:
        return self.api.url

    def http(self) -> httpx.Client:
        """A client on the app that follows no redirect (each is checked)."""
        return httpx.Client(base_url=self.api.url, timeout=30)

    def run_status(self, run_id: int) -> str:
        with Store.open(self.env.store_url) as store:
            run = store.run(run_id)
        assert run is not None
        return run.status

    def secrets(self) -> list[str]:
        """Every secret the world holds (none may be shown or logged)."""
        return [self.viewer, self.operator, PEPPER, self.env.sandbox.token.get_secret_value()]


def build_runs(sandbox: SandboxProcess, root: Path) -> tuple[RunEnv, int, int]:
    """The runs of the module docstring; returns the world and the failed and held runs."""
    inbox = root / "inbox"
    inbox.mkdir()
    env = RunEnv(sandbox=sandbox, inbox=inbox, store_url=f"sqlite:///{root / 'syncd.db'}")
    env.csv_options = {"max_error_ratio": 0.5}
    env.policy = {"type_map": TYPE_MAP}
    first = [*rows(10), SLASHED]
    env.drop(csv_text(first) + BAD_ROW)
    assert env.run().status == "done"
    with sandbox.client() as api:
        assert api.patch("inventory_device_serial/SN00001/", json={"name": "by-hand"}).is_success
    sandbox.set_faults(script=["ok", "400"])  # the listing, then the create of SN00011
    env.drop([*first, NEW])
    failed = env.run()
    sandbox.set_faults(script=[])
    wanted = rows(2)
    env.drop([wanted[0], dataclasses.replace(wanted[1], location="DC2")])
    held = env.run()
    assert held.status == "held", held.summary()
    return env, failed.run_id, held.run_id


@contextmanager
def served(env: RunEnv, root: Path, failed_run: int, held_run: int) -> Iterator[World]:
    """``syncd serve`` over ``env``'s store, with a viewer and an operator token."""
    with serve_store(env, root, PEPPER) as (api, viewer, operator):
        yield World(
            env,
            api,
            viewer.get_secret_value(),
            operator.get_secret_value(),
            failed_run,
            held_run,
        )


@contextmanager
def sample_world(sandbox: SandboxProcess, root: Path) -> Iterator[World]:
    """The runs of the module docstring, served."""
    env, failed_run, held_run = build_runs(sandbox, root)
    with served(env, root, failed_run, held_run) as world:
        yield world


#: Chromium as Debian ships it (``apt-get install chromium``), never a downloaded one.
CHROMIUM = Path("/usr/bin/chromium")
#: Headless, and nothing that reaches for a host outside the machine.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here (``None``: they can)."""
    if CHROMIUM.exists():
        return None
    return (
        f"{CHROMIUM} is missing: install Debian's browser with "
        "`apt-get install chromium chromium-driver` (./dev test does)"
    )
