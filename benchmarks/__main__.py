"""``python -m benchmarks``: the reconciliation benchmark, at 100k devices by default.

``--million`` adds a run of 1M devices (a few minutes; the set-up phase needs about
3 GB of RAM; diffsync runs at 1M only with ``--diffsync always``). See
``python -m benchmarks --help`` and ``docs/benchmarks.md``. The engine-only timing
is ``python benchmarks/engine_timing.py``; the daemon's drain of 10k changes by real
worker processes is ``python -m benchmarks.daemon``, a NetBox webhook to the
inventory write ``python -m benchmarks.webhook``. ``python -m benchmarks retention`` is the
audit log's retention benchmark (5M change rows; ``benchmarks/retention.py``).
"""

import sys

from benchmarks.reconcile import main

if __name__ == "__main__":
    if sys.argv[1:2] == ["retention"]:
        from benchmarks.retention import main as retention

        retention(sys.argv[2:])
    else:
        main()
