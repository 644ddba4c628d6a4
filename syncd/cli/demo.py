"""``syncd demo``: the main job end to end on the embedded default, against the sandbox.

It starts the sandbox (with a few devices already in the inventory) and the embedded
daemon (one process, SQLite, no broker server), drops the sample procurement CSV into
the inbox, and shows the daemon pick it up on its schedule and apply it. Then it asks
for a run on demand (``syncd trigger``), which finds nothing left to do, prints the
audit log, and stops the daemon with SIGTERM. ``--once`` does one reconciliation in
this process instead (``syncd run --once``), twice. Everything lives in ``--workdir``
(default ``./demo``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from syncd.cli.common import console, fail

if TYPE_CHECKING:
    from syncd.sandbox.testing import SandboxProcess

_MARKER = ".syncd-demo"


def example_file(name: str) -> str:
    """The text of a file shipped in ``syncd/examples``."""
    return resources.files("syncd.examples").joinpath(name).read_text(encoding="utf-8")


def demo_config(base_url: str, workdir: Path) -> str:
    """The example config, pointed at this sandbox and this working directory."""
    text = example_file("syncd.example.toml")
    # (the section the key is in, the key, its demo value)
    replacements = (
        ("[inventory]", "base_url", json.dumps(base_url)),
        ("[store]", "url", json.dumps(f"sqlite:///{workdir / 'syncd.db'}")),
        ("[connectors.options]", "inbox", json.dumps(str(workdir / "inbox"))),
        ("[connectors.options]", "stable_seconds", "0"),
        ("[[connectors]]", "schedule", json.dumps("2s")),
        ("[daemon]", "data_dir", json.dumps(str(workdir / "daemon"))),
        ("[daemon]", "sweep_interval", "1.0"),
        ("[inventory.rate_limit]", "requests_per_second", "50.0"),
        ("[inventory.rate_limit]", "burst", "50"),
    )
    return set_keys(text, replacements)


def set_keys(text: str, replacements: Iterable[tuple[str, str, str]]) -> str:
    """The example config ``text`` with each ``(section, key, value)`` set: a key is
    looked for after its section's header, since several sections share names
    (``schedule``); ``RuntimeError`` if the example lost a key a caller relies on."""
    for section, key, value in replacements:
        start = text.index(f"\n{section}\n")
        head, tail = text[:start], text[start:]
        tail, found = re.subn(rf"(?m)^{key} = [^#\n]*", f"{key} = {value}   ", tail, count=1)
        if not found:  # say so, plainly
            raise RuntimeError(f"the example config has no {key} under {section}")
        text = head + tail
    return text


def demo_command(
    workdir: Annotated[Path, typer.Option(help="where the demo keeps its files")] = Path("demo"),
    once: Annotated[
        bool, typer.Option("--once", help="one-shot runs in this process, not the daemon")
    ] = False,
) -> None:
    """Rehearse a sync end to end: sandbox + embedded daemon + sample CSV drop + SQLite."""
    from syncd.sandbox.testing import SandboxProcess

    workdir = workdir.resolve()
    if workdir.exists():
        if not (workdir / _MARKER).exists():
            raise typer.BadParameter(
                f"{workdir} exists and is not a demo folder", param_hint="--workdir"
            )
        shutil.rmtree(workdir)
    try:
        (workdir / "inbox").mkdir(parents=True)
        (workdir / _MARKER).touch()
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot create {workdir}: {exc.strerror or exc}", param_hint="--workdir"
        ) from None
    preload = workdir / "inventory.json"
    preload.write_text(example_file("inventory.json"), encoding="utf-8")

    console.rule("syncd demo")
    with SandboxProcess(args=["--load", str(preload)]) as sandbox:
        config = workdir / "syncd.toml"
        config.write_text(demo_config(sandbox.base_url, workdir), encoding="utf-8")
        if once:
            _once(sandbox, config, workdir)
            return
        from syncd.cli.demo_daemon import daemon_demo

        daemon_demo(sandbox, config, workdir, example_file("procurement.csv"))


def _once(sandbox: SandboxProcess, config: Path, workdir: Path) -> None:
    """``--once``: two reconciliations in this process (``syncd run --once``)."""
    from syncd import log
    from syncd.cli.render import show_result
    from syncd.config import load_settings
    from syncd.errors import SyncdError
    from syncd.inventory import InventoryClient
    from syncd.service import Runner
    from syncd.store import Store

    drop = workdir / "inbox" / "procurement.csv"
    drop.write_text(example_file("procurement.csv"), encoding="utf-8")
    past = time.time() - 60
    os.utime(drop, (past, past))
    console.print(f"sandbox: {sandbox.base_url} (6 devices already in the inventory)")
    console.print(f"config:  {config}")
    console.print(f"inbox:   {drop}\n")
    try:
        settings = load_settings(config)
        log.configure("WARNING", settings.logging.format)
        with (
            Store.from_settings(settings.store) as store,
            InventoryClient.from_settings(settings.inventory, token=sandbox.token) as client,
        ):
            runner = Runner(settings, store, client)
            console.rule("run 1: the procurement drop arrives")
            first = runner.run(dry_run=False, trigger="demo")
            show_result(first, limit=0)
            console.print(f"audit log of run {first.run_id}: {store.change_counts(first.run_id)}")
            writes_before = sandbox.stats().writes
            console.rule("run 2: nothing changed")
            second = runner.run(dry_run=False, trigger="demo")
            show_result(second, limit=20)
            writes = sandbox.stats().writes - writes_before
    except SyncdError as exc:
        fail(exc)
    stats = sandbox.stats()
    console.rule("summary")
    console.print(
        f"run 1 applied {first.applied.applied if first.applied else 0} change(s); "
        f"run 2 made {writes} write call(s). The sandbox answered {stats.total} requests "
        f"(peak {stats.peak_per_second}/s)."
    )
    console.print(f"audit log: syncd changes --config {config}")
