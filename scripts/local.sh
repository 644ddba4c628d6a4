#!/usr/bin/env bash
# syncd's deployment (compose.yaml) as local processes on 127.0.0.1: the sandbox as the
# inventory API, the store (SQLite; --postgres: a throw-away PostgreSQL), the daemon
# (embedded; --scale-out: redis-server, workers and beat) and the HTTP app (syncd serve).
#   scripts/local.sh                 start, print where everything is, stop on Ctrl-C/SIGTERM
#   scripts/local.sh --check         a short end to end, then stop: exit 0 passed, 1 failed
#   scripts/local.sh --help          every option
# Uses the project's .venv (./dev test or ./dev demo creates it), or $PYTHON.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
PY=${PYTHON:-$root/.venv/bin/python}
exec "$PY" -m syncd.topology "$@"
