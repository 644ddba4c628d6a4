"""NetBox as a source of whole runs: fake NetBox (recorded responses) -> syncd -> sandbox."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from syncd.config import Settings
from syncd.errors import SourceError
from syncd.sandbox.testing import SandboxProcess
from syncd.service import RunResult
from tests.fakenetbox import TOKEN_ENV, FakeNetBox, connector_options, sandbox_mapping
from tests.runsupport import RunEnv, method_counts
from tests.test_cli import syncd

UNWANTED = {"decommissioning", "offline", "inventory"}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNetBox]:
    with FakeNetBox() as nb:
        monkeypatch.setenv(TOKEN_ENV, nb.v2_token)
        yield nb


def mapping(fake: FakeNetBox) -> dict[str, Any]:
    """The sandbox mapping, and deletes never held (the tests delete on purpose)."""
    return {**sandbox_mapping(fake), "max_delete_share": 1.0}


class NetBoxEnv(RunEnv):
    """A run environment whose only source is the fake NetBox."""

    netbox_options: dict[str, Any]

    def settings(self) -> Settings:
        base = super().settings()
        return base.model_copy(
            update={
                "connectors": [
                    base.connectors[0].model_copy(
                        update={
                            "name": "netbox",
                            "plugin": "netbox",
                            "options": self.netbox_options,
                        }
                    )
                ]
            }
        )


@pytest.fixture
def env(sandbox: SandboxProcess, fake: FakeNetBox, tmp_path: Path) -> NetBoxEnv:
    world = NetBoxEnv(sandbox=sandbox, inbox=tmp_path, store_url=f"sqlite:///{tmp_path / 'db'}")
    world.netbox_options = connector_options(fake, overlap=0)
    world.policy = mapping(fake)
    return world


def expected_creates(fake: FakeNetBox) -> set[str]:
    """Worked out from the recorded devices, not from syncd."""
    devices = fake.devices
    per_serial = Counter(d["serial"] for d in devices if d["serial"])
    by_case = Counter(s.lower() for s in per_serial)
    return {
        d["serial"]
        for d in devices
        if d["serial"]
        and per_serial[d["serial"]] == 1
        and by_case[d["serial"].lower()] == 1
        and d["status"]["value"] not in UNWANTED
        and d["tenant"] is not None
    }


def run(env: NetBoxEnv, **kwargs: Any) -> RunResult:
    with env.runner() as runner:
        return runner.run(dry_run=False, **kwargs)


def test_syncd_plan_against_netbox(env: NetBoxEnv, fake: FakeNetBox, tmp_path: Path) -> None:
    config = tmp_path / "syncd.toml"
    lines = [
        "[inventory]",
        f'base_url = "{env.sandbox.base_url}"',
        "[store]",
        f'url = "sqlite:///{tmp_path / "cli.db"}"',
        "[[connectors]]",
        'name = "netbox"',
        'plugin = "netbox"',
        "[connectors.options]",
        f'url = "{fake.url}"',
        f'token_env = "{TOKEN_ENV}"',
        "[policy.type_map]",
        *(f"{json.dumps(k)} = {v}" for k, v in env.policy["type_map"].items()),
        "[policy.organization_map]",
        *(f"{json.dumps(k)} = {v}" for k, v in env.policy["organization_map"].items()),
    ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = syncd(
        "plan",
        "--json",
        "--config",
        str(config),
        env={
            "SYNCD_INVENTORY__TOKEN": env.sandbox.token.get_secret_value(),
            TOKEN_ENV: fake.v2_token,
        },
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    by_kind: dict[str, set[str]] = {}
    for op in answer["plan"]:
        by_kind.setdefault(op["operation"], set()).add(op["serial_number"])
    assert by_kind["create"] == expected_creates(fake)
    assert answer["rejects"] == 52  # the blank serials, skipped and counted
    assert {"JPE42634115", "S64470637881", "OERZSD4", "T8JKSZP", "t8jkszp"} <= by_kind["conflict"]
    assert env.writes() == []
    assert fake.v2_token not in done.stdout + done.stderr


def test_incremental_after_full_reads_only_changes_and_deletion_is_an_orphan(
    env: NetBoxEnv, fake: FakeNetBox
) -> None:
    first = run(env)
    assert first.status == "done"
    assert len(first.plan.of_kind("create")) == len(expected_creates(fake))
    env.sandbox.clear_requests()
    fake.clear_log()

    target = next(d for d in fake.devices if d["serial"] in expected_creates(fake) and d["name"])
    fake.tick(5)
    fake.update_device(target["id"], description="moved to rack 9")
    doomed = next(
        d for d in fake.devices if d["serial"] in expected_creates(fake) and d["id"] != target["id"]
    )
    fake.delete_device(doomed["id"])

    second = run(env)

    device_reads = [r for r in fake.requests if r.path == "/api/dcim/devices/"]
    assert device_reads, "the incremental pull must ask NetBox for changed devices"
    assert all("last_updated__gte" in r.query or "serial" in r.query for r in device_reads)
    assert sum(r.results or 0 for r in device_reads if "last_updated__gte" in r.query) <= 3
    assert second.ingest.batches[0].mode == "delta"
    assert method_counts(env.writes()) == {"PATCH": 1}
    assert second.plan.of_kind("delete") == []
    assert second.plan.counts["orphans_waiting"] == 1
    assert doomed["serial"] in env.devices()


def test_netbox_outage_mid_paging_fails_the_run_and_touches_nothing(
    env: NetBoxEnv, fake: FakeNetBox
) -> None:
    env.netbox_options = connector_options(fake, overlap=0, page_size=50)
    # No grace at all: if a partial pull were ever stored, its missing devices would be
    # deleted at once, and this test would see the DELETEs.
    env.policy = {**env.policy, "orphan_grace_runs": 0, "orphan_grace_hours": 0}
    run(env)
    env.sandbox.clear_requests()
    fake.fail(503, path="/api/dcim/devices/", offset=100, times=None)

    with env.runner() as runner:
        runner.force_full_pulls()
        with pytest.raises(SourceError) as caught:
            runner.run(dry_run=False)
        (last,) = runner.store.runs(limit=1)
        owned_after = runner.store.owned_total()
        batches = runner.store.batches(connector="netbox")

    assert [b.accepted for b in batches] == [False, True]  # newest first: the refused pull
    assert caught.value.retriable
    assert last.status == "failed"
    assert "503" in (last.error or "")
    assert env.writes() == []
    assert owned_after == len(expected_creates(fake))
