"""A pre-imported ``syncd`` that forks one real process per command: ``syncd`` in 20 ms
instead of 2 s of imports.

Run as ``python -m tests.properties.zygote``. It imports the CLI and what a run uses,
then reads one JSON command per line on stdin: ``{"argv": [...], "env": {...},
"cwd": "...", "output": "path"}``. For each it forks a child that is ``syncd`` with
that argv (stdout and stderr to ``output``), answers ``{"pid": N}`` at once and
``{"pid": N, "exit": CODE}`` when the child ends (``-SIGNAL`` if a signal killed it).
The child is an ordinary process running the real command: a ``SIGKILL`` leaves no
``finally`` run, a ``SIGTERM`` or ``SIGINT`` meets whatever handlers the command set.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# What `syncd run --once` imports lazily, imported here once for every child.
import connectors.csv_drop  # noqa: F401
import syncd.cli
import syncd.cli.runs
import syncd.inventory
import syncd.service
import syncd.store


def _child(command: dict[str, Any]) -> None:
    """Become ``syncd <argv>`` (never returns)."""
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    fd = os.open(command["output"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(command["env"])
    os.chdir(command["cwd"])
    sys.argv = ["syncd", *command["argv"]]
    code: Any = 0
    try:
        syncd.cli.main()
    except SystemExit as exc:
        code = exc.code
    except BaseException:  # noqa: BLE001 - an uncaught error ends the process as Python would
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 1)


def main() -> None:
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(command)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"pid": pid, "exit": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
