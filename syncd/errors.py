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
    │   └── SchemaOutOfDateError     (syncd.store.migrate) run ``syncd db upgrade``
    ├── ConfigError                  the configuration is wrong (with every problem and where)
    ├── SourceError                  a source could not be read whole: the run stops, uses none
    │   └── NetBoxError              (connectors.netbox.errors) NetBox could not be read
    │       ├── NetBoxUnavailableError   unreachable, 5xx, timeouts: also a RetriableError
    │       ├── NetBoxAuthError          401/403 after its retries: also a FatalError
    │       └── NetBoxRequestError       NetBox refused the query: also a FatalError
    ├── DataError                    a source gave a record that cannot be used (skippable)
    ├── ExportError                  (syncd.store.retention) an audit export cannot be written:
    │                                nothing of that chunk was deleted
    ├── RunStateError                (syncd.store.planning) the run is not in a state that
    │                                allows this (approve a run that is not held); a ValueError
    └── LockBusyError                (syncd.locks) another process holds the lock: the run is
                                     recorded as skipped, not retried

Inside the engine and the connectors, ``ValueError`` subclasses (``EmptySerialError``,
``InvalidValueError``, ``UnmappedError``, ``HeaderError``, ``TemplateError``) say why one
value or row cannot be used; they become rejects with their location and never escape.

No message built here ever contains a token: exceptions carry the method, the path
and the server's answer, never request headers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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
    """The connection could not be made, or was dropped before a full answer."""


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
