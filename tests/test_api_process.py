"""``syncd serve`` in the situations a deployment meets: several NetBox connectors, a
broker that is down, no secret, a port already taken."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
from pathlib import Path

from syncd.store import Store
from tests.apisupport import (
    PROCUREMENT,
    ApiProcess,
    netbox,
    queued_requests,
    recorded_webhook,
    sign,
    wait_for,
    with_serial,
    write_config,
)

SECRET = "hook-" + secrets.token_urlsafe(24)


def test_several_netbox_connectors_are_told_apart_and_a_dead_broker_loses_nothing(
    tmp_path: Path,
) -> None:
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    broker = f'broker_url = "redis://127.0.0.1:{dead}/0"'
    config = write_config(tmp_path, netbox("dc1"), netbox("dc2"), daemon=broker)
    body = json.dumps(with_serial(recorded_webhook(), "FOC4315T82M")).encode()
    headers = {"X-Hook-Signature": sign(body, SECRET)}

    with ApiProcess(config, env={"SYNCD_API__WEBHOOK_SECRET": SECRET}) as api, api.client() as http:
        ambiguous = http.post("/v1/webhooks/netbox", content=body, headers=headers)
        named = http.post("/v1/webhooks/netbox/dc2", content=body, headers=headers)
        refused = wait_for(lambda: "trigger.not_sent" in api.output())
        triggers = http.post("/v1/triggers", json={"connector": "dc1"})
        output = api.stop()

    assert ambiguous.status_code == 400
    assert ambiguous.json()["detail"] == (
        "several NetBox connectors are configured (dc1, dc2): "
        "point the webhook at /v1/webhooks/netbox/<connector>"
    )
    assert named.status_code == 202  # answered although the broker is down...
    with Store.open(f"sqlite:///{tmp_path / 'syncd.db'}") as store:
        [row] = queued_requests(store)  # ...and the request waits for the sweeper
    assert (row["connector"], row["state"]) == ("dc2", "queued")
    assert refused, output
    assert "the sweeper takes the request within 10 s" in output
    assert triggers.status_code == 503  # no trigger token: that endpoint is off
    assert SECRET not in output


def test_serve_without_any_secret_or_on_a_taken_port_says_why(tmp_path: Path) -> None:
    config = write_config(tmp_path, PROCUREMENT)
    command = [sys.executable, "-m", "syncd", "serve", "--config", str(config)]

    bare = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        env = {"SYNCD_API__TRIGGER_TOKEN": "t" * 32, "PATH": "/usr/bin:/bin"}
        busy = subprocess.run(
            [*command, "--port", port],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )

    assert bare.returncode == 2
    said = " ".join(bare.stderr.split())
    assert "nothing to serve: set SYNCD_API__TOKEN_PEPPER" in said
    assert "SYNCD_API__TRIGGER_TOKEN" in said
    assert "SYNCD_API__WEBHOOK_SECRET" in said
    assert busy.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in " ".join(busy.stderr.split())
    assert "t" * 32 not in busy.stderr + busy.stdout
