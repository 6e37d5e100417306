"""Every error sla-bridge raises on purpose, in one tree.

The tree is drawn by the reaction each error needs, so that callers catch by what they will do
rather than by where the error came from::

    SlaBridgeError                  root; the CLI prints "Error: <message>"
    ├── ConfigError                 bad configuration: exit 2, before any network call or write
    ├── StoreError                  the local SQLite store cannot be used as asked
    │   ├── LockHeld                another run holds the store's lock: exit 75
    │   └── StoreReplaced           the store file was deleted or replaced during the run:
    │                               what this run wrote is lost, so the run fails
    └── SourceError                 one source (helpdesk) failed; the others go on
        ├── RetriableSourceError    429, 502, 503, 504, timeouts: retried under the bounded policy
        │   └── RetryLater          the bound is spent, or the vendor asks for a longer wait:
        │       │                   the source stops cleanly and the next run resumes (exit 3)
        │       ├── OutcomeUnknown  a write failed in a way that may or may not have applied it:
        │       │                   never re-sent blindly; the next run checks the source first
        │       ├── PageBoundReached    a stream read http.max_pages pages in one run: the next
        │       │                   run resumes from the saved cursor
        │       └── RunBoundReached     the run has used its time (http.max_run): the source
        │                           stops cleanly, the next run resumes
        ├── FatalSourceError        400, 401, 403, 404, other 4xx: never retried, never swallowed;
        │   ├── AuthenticationFailed    the message says what to fix
        │   ├── PermissionDenied
        │   ├── NotFound
        │   ├── BadRequest
        │   ├── ConnectorUnavailable    the configured system has no connector in this build
        │   ├── PaginationError     the API's paging repeats itself or breaks its own rules
        │   ├── OffOriginLink       a response named a URL outside the source's origin: never
        │   │                       requested (it would carry the credentials)
        │   ├── ResponseTooLarge    a response body beyond http.max_body_mb: not read further
        │   └── CursorRefused       a cursor would move beyond now: the old one stays
        └── SkippableRecordError    one malformed record: quarantined, counted, the pull goes on

Outside the tree, :class:`Terminated` (a ``KeyboardInterrupt``) is what SIGTERM and SIGHUP
raise, so a run stopped by a signal unwinds like Ctrl-C and records exit 128 + the signal number.

Messages say what happened and what to do, naming the config key, the source or the ticket.
"""

from __future__ import annotations

from datetime import datetime

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "ConfigError",
    "ConnectorUnavailable",
    "CursorRefused",
    "FatalSourceError",
    "LockHeld",
    "NotFound",
    "OffOriginLink",
    "OutcomeUnknown",
    "PageBoundReached",
    "PaginationError",
    "PermissionDenied",
    "ResponseTooLarge",
    "RetriableSourceError",
    "RetryLater",
    "RunBoundReached",
    "SkippableRecordError",
    "SlaBridgeError",
    "SourceError",
    "StoreError",
    "StoreReplaced",
    "Terminated",
]


class SlaBridgeError(Exception):
    """Root of every error sla-bridge raises on purpose."""

    exit_code = 1


class ConfigError(SlaBridgeError):
    """The configuration cannot be used; nothing has been sent or written yet.

    ``problems`` holds one line per problem, each naming the key path, so that an admin fixes
    them all in one pass instead of one per run.
    """

    exit_code = 2

    def __init__(self, problems: list[str] | str, *, file: str | None = None) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.file = file
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.file}: " if self.file else ""
        if len(self.problems) == 1:
            return f"{where}{self.problems[0]}"
        lines = [f"{where}{len(self.problems)} problems in the configuration:"]
        lines += [f"  - {problem}" for problem in self.problems]
        return "\n".join(lines)


class StoreError(SlaBridgeError):
    """The local store cannot be opened, migrated or written."""


class LockHeld(StoreError):
    """Another sla-bridge run holds the lock on this store."""

    exit_code = 75


class StoreReplaced(StoreError):
    """The store file was deleted or replaced while this run had it open."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: the run unwinds like Ctrl-C; ``exit_code`` is 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by signal {signum}")


class SourceError(SlaBridgeError):
    """One source failed. ``source`` is its config name; the run goes on with the others."""

    def __init__(self, message: str, *, source: str | None = None, status: int | None = None) -> None:
        self.source = source
        self.status = status
        self.detail = message  # without the "source 'x': " prefix
        super().__init__(f"source {source!r}: {message}" if source else message)


class RetriableSourceError(SourceError):
    """A transient failure (429, 502, 503, 504, timeout) that the retry policy may retry.

    ``retry_after`` is the wait in seconds the vendor asked for, when it asked.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, source=source, status=status)


class RetryLater(RetriableSourceError):
    """The retry bound is spent: stop this source now; the next run resumes where this one left.

    ``not_before`` is the instant the vendor said it will accept requests again, when known.
    """

    exit_code = 3

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        status: int | None = None,
        not_before: datetime | None = None,
    ) -> None:
        self.not_before = not_before
        super().__init__(message, source=source, status=status)


class OutcomeUnknown(RetryLater):
    """A non-idempotent write timed out or met a 5xx: it may have been applied. Not re-sent blindly."""


class PageBoundReached(RetryLater):
    """One stream read its bound of pages this run; the saved cursor resumes it next run."""


class RunBoundReached(RetryLater):
    """The run has spent its time bound (``http.max_run``); the source resumes next run."""


class FatalSourceError(SourceError):
    """A request the source refused for a reason retrying cannot fix."""


class AuthenticationFailed(FatalSourceError):
    """401: the credentials are missing, wrong, expired or revoked."""


class PermissionDenied(FatalSourceError):
    """403: authenticated, but the account may not do this."""


class NotFound(FatalSourceError):
    """404: wrong URL, or the record is gone."""


class BadRequest(FatalSourceError):
    """400 or another 4xx: the request is wrong; the body usually names the field."""


class ConnectorUnavailable(FatalSourceError):
    """The configured ``system`` has no connector in this build of sla-bridge."""


class PaginationError(FatalSourceError):
    """The API's paging repeats a continuation, or says there is more without saying where."""


class OffOriginLink(FatalSourceError):
    """A response named a URL on another scheme, host or port than the source's: not followed."""


class CursorRefused(FatalSourceError):
    """A page would move a cursor beyond now (plus a small skew): its data is not trusted."""


class ResponseTooLarge(FatalSourceError):
    """A response body larger than ``http.max_body_mb``: reading stopped at the bound."""


class SkippableRecordError(SourceError):
    """One record cannot be normalised. It is quarantined and counted; the pull goes on."""

    def __init__(self, message: str, *, source: str | None = None, record_id: str | None = None) -> None:
        self.record_id = record_id
        super().__init__(message, source=source)
