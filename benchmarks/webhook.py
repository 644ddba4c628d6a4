"""Webhook latency benchmark (issue 8): from a NetBox webhook to the inventory write.

Run: ``.venv/bin/python -m benchmarks.webhook`` (``--help`` for the rest). It prints
figures; nothing fails on timing. Method and measured figures: ``docs/benchmarks.md``.

Real processes on 127.0.0.1: the sandbox (the inventory API), a fake NetBox serving
the recorded devices over HTTP (``tests/fakenetbox.py``, in this process), the
embedded ``syncd daemon`` and ``syncd serve`` with a webhook secret, on one config
(SQLite store, the netbox connector on demand only, syncd's default inventory,
outbox and daemon settings otherwise).

1. The recorded devices are synced once, in-process (a whole run), so the inventory
   holds syncd's devices; the sandbox's request log is cleared.
2. The daemon and the API start; one webhook (not counted) shows both are up.
3. ``--webhooks`` times, ``--spacing`` seconds apart, with the queue idle: a device
   synced in step 1 is renamed in fake NetBox, and NetBox's webhook for it (the
   recorded payload, with this device as ``data``) is POSTed, signed
   (``X-Hook-Signature``: HMAC-SHA512 of the body under the webhook secret). The
   next one waits until that one's write arrived and its trigger request is done.

Latency: from just before the POST to the start of the matching write (the device's
``PATCH``) in the sandbox's request log; both clocks are this machine's wall clock.
Where the time goes, per webhook, from the same origin: the API's answer, the first
request the run made to NetBox (the worker took the run's message), the targeted read
of the device from the inventory, and the write.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.daemon import machine, percentile
from syncd.log import configure
from syncd.sandbox.testing import RequestRecord, SandboxProcess, SandboxToken
from tests.apisupport import ApiProcess, queued_requests, recorded_webhook, sign, with_serial
from tests.fakenetbox import TOKEN_ENV, FakeNetBox, connector_options, sandbox_mapping
from tests.procs import SyncdProcess, wait_for
from tests.runsupport import RunEnv

#: The environment variable ``syncd serve`` reads the webhook secret from.
SECRET_ENV = "SYNCD_API__WEBHOOK_SECRET"
#: The sandbox's writes that update a device.
UPDATES = frozenset({"PATCH", "PUT"})
#: What Celery's worker logs once it takes messages.
READY = " ready."
#: The stages of one webhook, in order (seconds from just before its POST).
STAGES = ("answered", "netbox_read", "inventory_read", "write")


class NetBoxBenchEnv(RunEnv):
    """A world whose only source is the fake NetBox, with syncd's default settings for
    the inventory client, the outbox and the daemon (only the paths are set)."""

    netbox_options: dict[str, Any]

    def config(self) -> dict[str, Any]:
        return {
            "inventory": {"base_url": self.sandbox.base_url},
            "store": {"url": self.store_url},
            "connectors": [{"name": "netbox", "plugin": "netbox", "options": self.netbox_options}],
            "policy": self.policy,
            "daemon": self.daemon,
        }


@dataclass
class Sample:
    """One webhook: the device it was for and its stages (see ``STAGES``)."""

    serial: str
    stages: dict[str, float]

    @property
    def latency(self) -> float:
        return self.stages["write"]


class NetBoxClock:
    """When fake NetBox was asked something (wall clock), through its request hook."""

    def __init__(self, fake: FakeNetBox) -> None:
        self._stamps: list[float] = []
        self._lock = threading.Lock()
        fake.on_request(self._stamp, path="/api/", times=None)

    def _stamp(self) -> None:
        with self._lock:
            self._stamps.append(time.time())

    def first_after(self, moment: float) -> float | None:
        with self._lock:
            return next((s for s in self._stamps if s >= moment), None)


# -- one webhook -------------------------------------------------------------------------------


def webhook_body(device: dict[str, Any]) -> bytes:
    """NetBox's ``updated`` webhook for ``device`` (the recorded payload, this device)."""
    body = with_serial(recorded_webhook(), device["serial"])
    body["data"] = device
    return json.dumps(body).encode("utf-8")


def send_one(
    *,
    fake: FakeNetBox,
    device_id: int,
    label: str,
    http: httpx.Client,
    secret: str,
    sandbox: SandboxProcess,
    store_url: str,
    clock: NetBoxClock,
    timeout: float,
) -> Sample:
    """Rename the device in NetBox, POST its webhook, wait for its write (see the module)."""
    device = fake.update_device(device_id, name=f"{fake.device(device_id)['name']}-{label}")
    serial = device["serial"]
    body = webhook_body(device)
    headers = {"Content-Type": "application/json", "X-Hook-Signature": sign(body, secret)}
    origin = time.time()
    answer = http.post("/v1/webhooks/netbox", content=body, headers=headers)
    answered = time.time() - origin
    if answer.status_code != 202 or not answer.json().get("queued"):
        raise SystemExit(f"webhook for {serial} refused: {answer.status_code} {answer.text}")
    request_id = answer.json()["request"]
    found: dict[str, RequestRecord] = {}

    def written() -> bool:
        for record in sandbox.requests():
            if record.start >= origin and serial in (record.serial, *record.path.split("/")):
                found.setdefault("write" if record.method in UPDATES else "read", record)
        return "write" in found

    wait_for(written, f"the write for {serial}", timeout=timeout)
    wait_for(lambda: _request_done(store_url, request_id), f"trigger request {request_id}", 30)
    netbox = clock.first_after(origin)
    read = found.get("read")
    stages = {
        "answered": answered,
        "netbox_read": netbox - origin if netbox is not None else float("nan"),
        "inventory_read": read.start - origin if read is not None else float("nan"),
        "write": found["write"].start - origin,
    }
    return Sample(serial, stages)


def _request_done(store_url: str, request_id: int) -> bool:
    from syncd.store import Store

    with Store.open(store_url) as store:
        rows = [r for r in queued_requests(store) if r["id"] == request_id]
    return bool(rows) and rows[0]["state"] in ("done", "failed")


# -- the whole benchmark -----------------------------------------------------------------------


def synced_devices(env: NetBoxBenchEnv, fake: FakeNetBox) -> list[int]:
    """Sync the recorded devices once (a whole run, in-process); the NetBox ids of the
    named devices the inventory now holds, in id order."""
    with env.runner() as runner:
        result = runner.run(dry_run=False)
    if result.status != "done":
        raise SystemExit(f"the initial sync ended {result.status!r}")
    present = set(env.devices())
    return sorted(d["id"] for d in fake.devices if d["serial"] in present and d["name"])


def measure(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="syncd-webhook-bench-"))
    secret = secrets.token_urlsafe(32)
    tokens = [SandboxToken.generate()]
    with SandboxProcess(tokens=tokens) as sandbox, FakeNetBox() as fake:
        env = NetBoxBenchEnv(sandbox=sandbox, inbox=root, store_url=f"sqlite:///{root / 'db'}")
        env.netbox_options = connector_options(fake)
        env.policy = sandbox_mapping(fake)
        env.daemon = {"data_dir": str(root / "daemon")}
        os.environ[TOKEN_ENV] = fake.v2_token  # the in-process sync reads NetBox with it
        ids = synced_devices(env, fake)
        if len(ids) < args.webhooks + 1:
            raise SystemExit(f"only {len(ids)} synced devices for {args.webhooks + 1} webhooks")
        sandbox.clear_requests()
        clock = NetBoxClock(fake)
        config = env.write_config(root / "syncd.toml")
        daemon = env.spawn(
            "daemon", config=config, log=root / "daemon.log", env={TOKEN_ENV: fake.v2_token}
        )
        print(f"files in {root}", file=sys.stderr)
        try:
            wait_for(lambda: READY in daemon.output(), "syncd daemon to be ready", timeout=120)
            api_env = {SECRET_ENV: secret, TOKEN_ENV: fake.v2_token}
            with ApiProcess(config, env=api_env) as api, api.client() as http:

                def one(device_id: int, label: str) -> Sample:
                    if not daemon.running:
                        raise SystemExit(f"syncd daemon exited:\n{daemon.output()[-3000:]}")
                    return send_one(
                        fake=fake,
                        device_id=device_id,
                        label=label,
                        http=http,
                        secret=secret,
                        sandbox=sandbox,
                        store_url=env.store_url,
                        clock=clock,
                        timeout=args.timeout,
                    )

                first = one(ids[0], "warm-up")
                print(f"warm-up (not counted): {first.latency:.3f} s", file=sys.stderr)
                samples: list[Sample] = []
                for n, device_id in enumerate(ids[1 : args.webhooks + 1], start=1):
                    time.sleep(args.spacing)
                    sample = one(device_id, f"wh{n}")
                    samples.append(sample)
                    stages = " ".join(f"{k}={v:.3f}" for k, v in sample.stages.items())
                    print(f"{n:>3} {sample.serial}: {stages}", file=sys.stderr, flush=True)
        finally:
            stop(daemon)
    return {
        "webhooks": len(samples),
        "spacing_s": args.spacing,
        "warm_up_s": round(first.latency, 3),
        "stages": summary(samples),
        "latencies_s": [round(s.latency, 3) for s in samples],
    }


def stop(daemon: SyncdProcess) -> None:
    """SIGTERM (a clean stop), SIGKILL if it hangs."""
    if daemon.running:
        daemon.signal(signal.SIGTERM)
        with suppress(AssertionError):
            daemon.wait(30)
    daemon.stop()


def summary(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    """p50/p99/max of each stage, seconds from the POST."""
    out: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        values = [s.stages[stage] for s in samples if s.stages[stage] == s.stages[stage]]
        out[stage] = {
            "p50": round(percentile(values, 0.50), 3),
            "p99": round(percentile(values, 0.99), 3),
            "max": round(max(values), 3) if values else float("nan"),
        }
    return out


def report(result: dict[str, Any]) -> str:
    stages = result["stages"]
    lines = [
        f"{result['webhooks']} webhooks, {result['spacing_s']:.1f} s apart, idle queue; "
        f"warm-up (not counted) {result['warm_up_s']:.3f} s",
        f"{'seconds from the POST to':<34} {'p50':>7} {'p99':>7} {'max':>7}",
    ]
    names = {
        "answered": "the API's 202",
        "netbox_read": "the run's first NetBox request",
        "inventory_read": "the device read from the inventory",
        "write": "the write (PATCH) at the sandbox",
    }
    for stage in STAGES:
        row = stages[stage]
        lines.append(f"{names[stage]:<34} {row['p50']:>7.3f} {row['p99']:>7.3f} {row['max']:>7.3f}")
    verdict = "met" if stages["write"]["p99"] < 2.0 else "NOT met"
    lines.append(f"target: webhook to write under 2 s at p99: {verdict}")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m benchmarks.webhook", description=__doc__)
    parse.add_argument("--webhooks", type=int, default=50, help="webhooks measured")
    parse.add_argument("--spacing", type=float, default=1.0, help="idle seconds between them")
    parse.add_argument("--timeout", type=float, default=60, help="seconds per webhook at most")
    parse.add_argument("--json", type=Path, help="also write the figures here")
    return parse


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    configure("WARNING")  # the initial sync's request lines are not figures
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    info = machine()
    result = measure(args)
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "result": result}, indent=2))
    print(f"machine: {info}")
    print(report(result))


if __name__ == "__main__":
    main()
