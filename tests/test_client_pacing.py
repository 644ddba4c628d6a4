"""The rate limiter, seen from the server: threads sharing a client never push the
request rate past the configured level (the sandbox counts the peak per second).

A correctness check of pacing, not a benchmark. The server sees arrivals, not the
client's slots: on a busy machine requests paced apart can arrive bunched, so the
bound allows a margin (half the rate) that an unpaced client still overruns by far
(every request at once). The elapsed time is the exact check of the pacing.
"""

from __future__ import annotations

import threading
import time

from syncd.inventory import InventoryClient
from syncd.ratelimit import LimitsRateLimiter
from syncd.sandbox.testing import SandboxProcess
from tests.client_support import device, make_client


def _hammer(client: InventoryClient, threads: int, calls: int) -> list[BaseException]:
    failures: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(calls):
                client.get_device("PACE")
        except Exception as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join(timeout=60)
    return failures


def test_threads_sharing_a_client_keep_to_the_rate(sandbox: SandboxProcess) -> None:
    sandbox.load([device("PACE")])
    limiter = LimitsRateLimiter(8, 8, key="pace-shared-client")
    begun = time.monotonic()
    with make_client(sandbox, rate_limiter=limiter) as client:
        failures = _hammer(client, threads=6, calls=5)
    elapsed = time.monotonic() - begun
    assert failures == []
    stats = sandbox.stats()
    assert stats.by_status == {"200": 30}
    assert stats.peak_per_second <= 8 + 4  # unpaced: 30 in the first second
    # 30 requests at 8 per second: the 25th cannot start before three windows passed.
    assert elapsed >= 3.0


def test_clients_sharing_a_limiter_share_the_rate(sandbox: SandboxProcess) -> None:
    """Two clients (as two workers would have) on one limiter: one budget between them."""
    sandbox.load([device("PACE")])
    limiter = LimitsRateLimiter(5, 5, key="pace-two-clients")
    with (
        make_client(sandbox, rate_limiter=limiter) as first,
        make_client(sandbox, rate_limiter=limiter) as second,
    ):
        other: list[BaseException] = []
        alongside = threading.Thread(target=lambda: other.extend(_hammer(first, 2, 4)))
        alongside.start()
        failures = _hammer(second, threads=2, calls=4)
        alongside.join(timeout=60)
    assert failures == other == []
    stats = sandbox.stats()
    assert stats.total == 16
    assert stats.peak_per_second <= 5 + 2  # unpaced: 16 in the first second


def test_the_sandbox_limit_is_respected_without_429(sandbox: SandboxProcess) -> None:
    """Paced under the server's own limit, the client is never throttled (no 429).

    Half the server's rate: requests the client spaces out can reach the server
    bunched when the machine is busy, and a test must not fail on timing."""
    sandbox.load([device("PACE")])
    sandbox.set_faults(rate_limit="6/s")
    limiter = LimitsRateLimiter(3, 3, key="pace-under-server-limit")
    with make_client(sandbox, rate_limiter=limiter) as client:
        failures = _hammer(client, threads=4, calls=3)
    assert failures == []
    assert sandbox.stats().by_status == {"200": 12}
