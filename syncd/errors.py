"""The project's exceptions, grouped by what the caller should do.

::

    SyncdError                       root: catch this to catch everything syncd raises
    ├── RetriableError               try again later (Celery retries only this branch)
    │   ├── RateLimitedError         429; ``retry_after`` seconds when the server said
    │   ├── ServerUnavailableError   502 / 503 / 504
    │   ├── TimeoutError_            the request timed out (connect, read, write, pool)
    │   ├── ConnectionFailedError    connection refused, reset or dropped mid-answer
    │   └── StoreUnavailableError    (syncd.store.access) the database is down or unreachable
    ├── RejectedError                the server refused this one operation: do not retry it
    │   ├── ValidationRejectedError  400, with the server's per-field errors
    │   ├── AlreadyExistsError       409 on create
    │   └── NotFoundError            404
    ├── FatalError                   stop the run: nothing will work until a human acts
    │   ├── AuthenticationError      401 (missing or bad token)
    │   ├── PermissionDeniedError    403
    │   ├── ProtocolError            the server answered something the contract does not allow
    │   └── SchemaOutOfDateError     run ``syncd db upgrade`` (also ``syncd.store.migrate``'s)
    ├── ConfigError                  the configuration is wrong (with every problem and where)
    ├── SourceError                  a source could not be read whole: the run stops, uses none
    │   └── NetBoxError              (connectors.netbox.errors) NetBox could not be read
    │       ├── NetBoxUnavailableError   unreachable, 5xx, timeouts: also a RetriableError
    │       ├── NetBoxAuthError          401/403 after its retries: also a FatalError
    │       └── NetBoxRequestError       NetBox refused the query: also a FatalError
    ├── DataError                    a source gave a record that cannot be used (skippable)
    ├── StateError                   the thing asked for is not in a state that allows it
    │   ├── RunStateError            (syncd.store.planning) approve a run that is not held;
    │   │                            also a ValueError
    │   └── LockBusyError            (syncd.locks) another process holds the lock: the run is
    │                                recorded as skipped, not retried
    ├── NoSuchError                  what was asked for does not exist (no run 42, no open
    │                                conflict of that field); ``UnknownRunError`` is one
    ├── InvalidInputError            a request (CLI option, HTTP query) cannot be used: a
    │                                filter, a time or a cursor that means nothing
    ├── ExportError                  (syncd.store.retention) an audit export cannot be written:
    │                                nothing of that chunk was deleted
    └── LocalStackError              (syncd.topology) a process of the local deployment did not
        │                            start, died or did not stop (names it and its log)
        └── CheckFailedError         (syncd.topology.check) the end to end saw something else

``failure_kind(exc)`` says what each branch means to the faces: the name a person
reads, the exit code of the command line and the HTTP status of the API, from one
table (``FAILURE_KINDS``), the way httpx maps its exceptions in one place.

Inside the engine and the connectors, ``ValueError`` subclasses (``EmptySerialError``,
``InvalidValueError``, ``UnmappedError``, ``HeaderError``, ``TemplateError``) say why one
value or row cannot be used; they become rejects with their location and never escape.

No message built here ever contains a token: exceptions carry the method, the path
and the server's answer, never request headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final


class SyncdError(Exception):
    """Root of every exception syncd raises on purpose."""


# -- retriable -----------------------------------------------------------------------------


class RetriableError(SyncdError):
    """A transient failure: the same call may succeed later.

    ``retry_after`` is the delay (seconds) the server asked for, if it asked.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimitedError(RetriableError):
    """HTTP 429."""


class ServerUnavailableError(RetriableError):
    """HTTP 502, 503 or 504."""


class TimeoutError_(RetriableError):  # noqa: N801, N818 - the underscore avoids the builtin
    """The request timed out."""


class ConnectionFailedError(RetriableError):
    """The connection could not be made, or was dropped before a full answer.

    ``nothing_listens``: this machine refused it (nothing listens on that loopback port),
    which trying again within one call will not change: a call gives up at once.
    """

    nothing_listens: bool = False


# -- rejected ------------------------------------------------------------------------------


class RejectedError(SyncdError):
    """The server refused this operation; retrying the same request will not help."""

    def __init__(self, message: str, *, status_code: int, body: object = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


class ValidationRejectedError(RejectedError):
    """HTTP 400. ``field_errors`` maps each bad field to the server's messages."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int = 400,
        body: object = None,
        field_errors: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, body=body)
        self.field_errors: dict[str, list[str]] = {
            k: list(v) for k, v in (field_errors or {}).items()
        }


class AlreadyExistsError(RejectedError):
    """HTTP 409: a device with this serial already exists."""


class NotFoundError(RejectedError):
    """HTTP 404: no device with this serial (removed, or mistyped)."""


# -- fatal ---------------------------------------------------------------------------------


class FatalError(SyncdError):
    """Nothing will work until somebody fixes something (token, permissions, server)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AuthenticationError(FatalError):
    """HTTP 401: the token is missing or invalid."""


class PermissionDeniedError(FatalError):
    """HTTP 403: the token may not act on this organization or device."""


class ProtocolError(FatalError):
    """The server answered outside the contract (unexpected status, malformed body)."""


class SchemaOutOfDateError(FatalError):
    """The database is not at the schema this syncd needs (run ``syncd db upgrade``)."""


# -- configuration and data ----------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One problem found in a configuration, file or row, and where it is."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class ConfigError(SyncdError):
    """The configuration is invalid. ``problems`` lists every problem found, with where."""

    def __init__(self, problems: Sequence[Problem], *, source: str = "configuration") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source} has {len(self.problems)} problem(s):\n{lines}")


class SourceError(SyncdError):
    """A source could not be read completely (unreachable, refused, broken mid-pull).

    The run stops before planning and nothing of the failed batch is used, so a
    partial pull can never look like deletions. ``retriable`` tells whether the
    cause was transient (the next scheduled run may well succeed).
    """

    @property
    def retriable(self) -> bool:
        """True when the failure was transient (this error, or its cause, is retriable)."""
        return isinstance(self, RetriableError) or isinstance(self.__cause__, RetriableError)


class DataError(SyncdError):
    """A source record or file cannot be used. Skippable: report it and go on."""


class StateError(SyncdError):
    """The thing asked for exists but its state does not allow this (approve a run that
    is not held, resolve a conflict whose device changed since)."""


class NoSuchError(SyncdError):
    """What was asked for does not exist (no run 42, no open conflict of that field)."""


class InvalidInputError(SyncdError, ValueError):
    """A request cannot be used as given (a filter, a time, a cursor): the message names
    the option or parameter and what it should be."""


# -- what each branch means to the faces -----------------------------------------------------

#: The exit codes of the command line (README, "Exit codes").
EXIT_FAILED: Final = 1
EXIT_CONFIG: Final = 2
EXIT_FATAL: Final = 3
EXIT_RETRIABLE: Final = 4


@dataclass(frozen=True, slots=True)
class FailureKind:
    """How the faces report one branch of the tree: ``name`` (what a person reads before
    the message), ``exit_code`` (the command line), ``http_status`` (the HTTP API) and
    ``colour`` (the terminal)."""

    name: str
    exit_code: int
    http_status: int
    colour: str = "red"


#: Exception class -> how it is reported; the first class that fits wins, so the more
#: specific come first. Errors of syncd's own upstreams (the inventory API refusing
#: syncd's token, a source that cannot be read) are 502 to an HTTP client: the request
#: was fine, what syncd depends on was not.
FAILURE_KINDS: Final[tuple[tuple[type[SyncdError], FailureKind], ...]] = (
    (ConfigError, FailureKind("config error", EXIT_CONFIG, 500)),
    (SchemaOutOfDateError, FailureKind("fatal", EXIT_FATAL, 500)),
    (InvalidInputError, FailureKind("invalid input", EXIT_CONFIG, 422)),
    (NoSuchError, FailureKind("not found", EXIT_FAILED, 404)),
    (StateError, FailureKind("not possible now", EXIT_FAILED, 409)),
    (RetriableError, FailureKind("temporary failure", EXIT_RETRIABLE, 503, "yellow")),
    (FatalError, FailureKind("fatal", EXIT_FATAL, 502)),
    (RejectedError, FailureKind("refused by the inventory API", EXIT_FAILED, 502)),
    (SourceError, FailureKind("source error", EXIT_FAILED, 502)),
    (DataError, FailureKind("bad data", EXIT_FAILED, 422)),
    (SyncdError, FailureKind("error", EXIT_FAILED, 500)),
)


def failure_kind(exc: SyncdError) -> FailureKind:
    """How ``exc`` is reported (see ``FAILURE_KINDS``)."""
    return next(kind for cls, kind in FAILURE_KINDS if isinstance(exc, cls))
