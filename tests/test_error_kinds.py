"""One table says what each branch of the exception tree means to the faces: the exit
code of the command line and the HTTP status of the API (``syncd.errors.failure_kind``)."""

from __future__ import annotations

import pytest

from syncd.errors import (
    ConfigError,
    FatalError,
    InvalidInputError,
    NoSuchError,
    ServerUnavailableError,
    SourceError,
    StateError,
    SyncdError,
    ValidationRejectedError,
    failure_kind,
)
from syncd.locks import LockBusyError
from syncd.store.planning import RunStateError, UnknownRunError


@pytest.mark.parametrize(
    ("error", "exit_code", "http_status"),
    [
        (ConfigError([]), 2, 500),
        (InvalidInputError("--since: 'x' is not a time"), 2, 422),
        (UnknownRunError("no run 42"), 1, 404),  # also a RunStateError: not found wins
        (NoSuchError("no open conflict"), 1, 404),
        (RunStateError("run 3 is done, not held"), 1, 409),
        (LockBusyError("planner", "host:1"), 1, 409),
        (StateError("changed since"), 1, 409),
        (ServerUnavailableError("503"), 4, 503),
        (FatalError("401"), 3, 502),
        (ValidationRejectedError("400", status_code=400), 1, 502),
        (SourceError("netbox down"), 1, 502),
        (SyncdError("anything else"), 1, 500),
    ],
)
def test_each_branch_has_one_exit_code_and_one_status(
    error: SyncdError, exit_code: int, http_status: int
) -> None:
    kind = failure_kind(error)
    assert (kind.exit_code, kind.http_status) == (exit_code, http_status)
