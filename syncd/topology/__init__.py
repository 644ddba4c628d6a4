"""The deployment of ``compose.yaml`` as local processes on loopback, for rehearsals and CI.

``scripts/local.sh`` (``python -m syncd.topology``) starts the sandbox (as the
inventory API), the store (SQLite, or a throw-away PostgreSQL cluster with
``--postgres``), the daemon (embedded ``syncd daemon``, or with ``--scale-out``
redis-server, N ``syncd worker`` and ``syncd beat``) and the HTTP app (``syncd
serve``), each a process of its own on 127.0.0.1 and a free port, as compose runs them
in containers. Everything lives in one working folder: the config the processes use
(``syncd.toml``), the secrets as files (mode 0600, never printed), each process's log.

Why processes and not containers: the development and CI machines have no container
engine, and a deployment nobody starts is a deployment nobody tests. ``--check`` runs
a short end to end through the running topology and exits 0 or 1.

The processes get an environment without ``SYNCD_*`` variables, so the config file
written is the whole truth of what they run with.
"""

from __future__ import annotations

from syncd.errors import SyncdError


class LocalStackError(SyncdError):
    """A process of the local topology did not start, died, or did not stop; the message
    names it and where its log is."""
