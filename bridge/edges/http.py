"""The one HTTP layer every connector sends through: client defaults, response classes, retries.

- :func:`build_client` makes the ``httpx.Client`` for a source: timeouts, TLS verification on,
  ``User-Agent: sla-bridge/<version>``, and an injectable transport so tests never leave the
  machine.
- :func:`classify_response` sorts a response once into ok, retriable or fatal (the Singer SDK's
  ``validate_response`` idea), raising the matching error from :mod:`bridge.errors`.
- :class:`SourceClient` sends requests under one bounded tenacity policy: 429, 5xx and timeouts
  are retried; ``Retry-After`` (seconds, an HTTP date, or 0) is honoured exactly, exponential
  backoff with jitter otherwise; attempts and the total wait are both bounded. When the vendor
  asks for a longer wait than the bound allows, the source stops at once with :class:`RetryLater`
  saying when to come back, rather than sleeping through a cron slot.
- Every URL a response names (a next page, a job's status) is requested only if it has the
  scheme, host and port of the source's own URL: anything else would carry the credentials to
  another server, so it stops the source (:class:`OffOriginLink`) and is never sent.
"""

from __future__ import annotations

import email.utils
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential_jitter

from bridge._version import __version__
from bridge.edges.credentials import redact
from bridge.errors import (
    AuthenticationFailed,
    BadRequest,
    FatalSourceError,
    NotFound,
    OffOriginLink,
    OutcomeUnknown,
    PermissionDenied,
    RetriableSourceError,
    RetryLater,
)

__all__ = [
    "DEFAULT_MAX_PAGES",
    "USER_AGENT",
    "HttpSettings",
    "RetryPolicy",
    "SourceClient",
    "build_client",
    "classify_response",
    "origin_of",
    "parse_retry_after",
]

USER_AGENT = f"sla-bridge/{__version__}"
log = logging.getLogger("sla_bridge.http")

_NOT_RETRIED_5XX = {501, 505}  # "not implemented" and "version not supported" will not heal
DEFAULT_MAX_PAGES = 10_000


class HttpSettings(Protocol):
    """The ``[http]`` keys this layer reads (``bridge.config.HttpConfig`` has them)."""

    @property
    def timeout(self) -> int: ...

    @property
    def max_attempts(self) -> int: ...

    @property
    def max_wait(self) -> int: ...


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RetryPolicy:
    """How long one request may keep trying. ``sleep`` and ``clock`` are injectable for tests."""

    max_attempts: int = 5
    max_wait: float = 120.0  # seconds of waiting, summed over the retries of one request
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    sleep: Callable[[float], None] = field(default=lambda seconds: time.sleep(seconds), compare=False)
    clock: Callable[[], datetime] = field(default=_utcnow, compare=False)

    @classmethod
    def from_config(cls, http: HttpSettings, **overrides: Any) -> RetryPolicy:
        return cls(max_attempts=http.max_attempts, max_wait=float(http.max_wait), **overrides)


def build_client(
    base_url: str,
    *,
    http: HttpSettings,
    auth: httpx.Auth | None = None,
    transport: httpx.BaseTransport | None = None,
    headers: dict[str, str] | None = None,
    ca_bundle: Path | None = None,
) -> httpx.Client:
    """The client for one source. Pass ``transport`` (respx, a sandbox) in tests.

    TLS is always verified; ``ca_bundle`` adds a CA (a TLS-intercepting proxy) to the defaults.
    """
    verify: ssl.SSLContext | bool = True
    if ca_bundle is not None:
        verify = ssl.create_default_context()
        verify.load_verify_locations(cafile=str(ca_bundle))
    return httpx.Client(
        base_url=base_url,
        auth=auth,
        transport=transport,
        timeout=httpx.Timeout(float(http.timeout)),
        verify=verify,
        follow_redirects=False,  # a redirect usually means a wrong base URL; say so, do not follow
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})},
    )


MAX_RETRY_AFTER = 7 * 86400.0  # longer asks are taken as "a week": the source stops either way


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from ``Retry-After``: delta-seconds or an HTTP date (RFC 9110 10.2.3).

    None when absent or malformed (the caller then backs off on its own); capped at a week, so a
    vendor's ``Retry-After: 99999999999`` cannot overflow date arithmetic.
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return min(float(int(text)), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


def _vendor_says(response: httpx.Response) -> str:
    """A short, redacted excerpt of what the vendor put in the error body."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    if isinstance(body, dict):
        parts = []
        for key in ("error", "title", "description", "detail", "message", "errorMessages", "errors"):
            value = body.get(key)
            if value:
                parts.append(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
        text = "; ".join(parts) if parts else json.dumps(body, sort_keys=True)
    else:
        text = str(body)
    text = redact(" ".join(text.split()))  # mask first: a cut could leave half a secret behind
    return text[:300] + ("..." if len(text) > 300 else "")


def classify_response(
    response: httpx.Response, *, source: str, now: datetime | None = None, accept: tuple[int, ...] = ()
) -> httpx.Response:
    """Return ``response`` when usable; raise the error class its status calls for otherwise."""
    status = response.status_code
    if status < 300 or status in accept:
        return response
    request = response.request
    what = f"{request.method} {request.url.copy_with(query=None)}"
    said = _vendor_says(response)
    reason = f"{status} {response.reason_phrase}".strip()
    if status == 429 or (status >= 500 and status not in _NOT_RETRIED_5XX):
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now or _utcnow())
        raise RetriableSourceError(
            f"{what} answered {reason}" + (f": {said}" if said else ""),
            source=source,
            status=status,
            retry_after=retry_after,
        )
    if status == 401:
        raise AuthenticationFailed(
            f"the credentials were refused ({reason}) on {what}: check sources.{source}.auth and that the "
            f"secret is current (tokens expire and can be revoked). The vendor said: {said or 'nothing'}",
            source=source,
            status=status,
        )
    if status == 403:
        raise PermissionDenied(
            f"the account may not do this ({reason}) on {what}: give it the role or scope it needs. "
            f"The vendor said: {said or 'nothing'}",
            source=source,
            status=status,
        )
    if status == 404:
        raise NotFound(
            f"{what} was not found ({reason}): check sources.{source}.url, or the record is gone. "
            f"The vendor said: {said or 'nothing'}",
            source=source,
            status=status,
        )
    if 300 <= status < 400:
        location = response.headers.get("Location", "?")
        raise BadRequest(
            f"{what} was redirected ({reason}) to {location}: check sources.{source}.url",
            source=source,
            status=status,
        )
    raise BadRequest(
        f"{what} was refused ({reason}). The vendor said: {said or 'nothing'}", source=source, status=status
    )


def origin_of(url: httpx.URL | str) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in."""
    parsed = httpx.URL(url)
    port = parsed.port or {"http": 80, "https": 443}.get(parsed.scheme, 0)
    return parsed.scheme, parsed.host, port


_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Errors raised before the request left the machine: safe to retry whatever the method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _tls_failure(error: BaseException) -> ssl.SSLError | None:
    """The TLS error behind a transport error, if any (exception chains can loop: guard)."""
    visited: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in visited:
            continue
        visited.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


class SourceClient:
    """Sends a source's requests under the retry policy, and counts them for the run record.

    Idempotent methods (GET, PUT, DELETE, ...) are retried on 429, 5xx and timeouts. A POST, or a
    request marked ``idempotent=False`` (a PUT that adds a comment), is retried only where it surely
    was not applied: 429, and errors before it was sent. Otherwise :class:`OutcomeUnknown` stops
    the source, so the write-back journal checks the source before anything is sent again.
    """

    def __init__(
        self,
        source: str,
        client: httpx.Client,
        policy: RetryPolicy | None = None,
        *,
        pace: Callable[[httpx.Response], float] | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        self.source = source
        self.client = client
        self.policy = policy or RetryPolicy()
        self.max_pages = max_pages  # pages one walk may read in a run (the paging loops' bound)
        self.requests_made = 0
        # Proactive pacing: ``pace`` reads a response's rate-limit headers and says how long to
        # hold the next request, so a known budget is not run into a 429 first.
        self.pace = pace
        self._hold_until: datetime | None = None
        self._backoff = wait_exponential_jitter(initial=self.policy.backoff_initial, max=self.policy.backoff_max)

    def request(
        self,
        method: str,
        url: str,
        *,
        accept: tuple[int, ...] = (),
        json_body: bool | str = False,
        idempotent: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        """Send, retrying what may be retried; the response is 2xx or one of ``accept``.

        With ``json_body=True`` the decoded JSON body is returned instead of the response
        (``"both"``: the two as a tuple). A URL off the source's origin is never sent.
        """
        self._check_origin(method, url)
        repeatable = method.upper() in _IDEMPOTENT if idempotent is None else idempotent
        retrying = Retrying(
            retry=retry_if_exception(lambda error: isinstance(error, RetriableSourceError) and not isinstance(error, RetryLater)),
            wait=self._wait,
            stop=self._stop,
            sleep=self.policy.sleep,
            before_sleep=self._log_retry,
            retry_error_callback=self._give_up,
        )
        return retrying(self._send_once, method, url, accept, json_body, repeatable, kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        response: httpx.Response = self.request("GET", url, **kwargs)  # without json_body, request() returns the response
        return response

    def get_json(self, url: str, **kwargs: Any) -> Any:
        """GET and decode JSON; a body that is not JSON (a truncated page) is retried like a 5xx."""
        return self.request("GET", url, json_body=True, **kwargs)

    def fetch(self, method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, Any]:
        """The response and its decoded JSON (a paginator may read the headers as well)."""
        response, data = self.request(method, url, json_body="both", **kwargs)
        return response, data

    def _check_origin(self, method: str, url: str) -> None:
        target = httpx.URL(url)
        base = self.client.base_url
        if not target.is_absolute_url and not target.scheme and not target.host and not url.startswith("//"):
            return  # a path on the source
        if not target.is_absolute_url or origin_of(target) != origin_of(base):
            shown = redact(str(target.copy_with(query=None)))[:200]
            raise OffOriginLink(
                f"{method} {shown}: the vendor's response named a URL outside the source's origin "
                f"({base.scheme}://{base.netloc.decode()}); it was not requested, so the credentials did not go there. "
                f"Check sources.{self.source}.url (the vendor may expect another host name)",
                source=self.source,
            )

    def _send_once(
        self, method: str, url: str, accept: tuple[int, ...], json_body: bool | str, repeatable: bool, kwargs: dict[str, Any]
    ) -> Any:
        if self._hold_until is not None:
            wait = (self._hold_until - self.policy.clock()).total_seconds()
            self._hold_until = None
            if wait > self.policy.max_wait:
                raise RetryLater(
                    f"the rate-limit budget is spent for {wait:.0f}s, more than the retry bound "
                    f"(http.max_wait = {self.policy.max_wait:.0f}s). Stopped this source (the next run resumes from the saved cursor)",
                    source=self.source,
                    not_before=self.policy.clock() + timedelta(seconds=wait),
                )
            if wait > 0:
                log.info("source %r: rate-limit budget spent; pausing %.1fs", self.source, wait)
                self.policy.sleep(wait)
        self.requests_made += 1
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.TransportError as error:
            tls = _tls_failure(error)
            if tls is not None:
                raise FatalSourceError(
                    f"{method} {url}: TLS verification failed ({getattr(tls, 'reason', None) or type(tls).__name__}): "
                    f"check sources.{self.source}.url, or set http.ca_bundle for a TLS-intercepting proxy",
                    source=self.source,
                ) from None
            what = "timed out" if isinstance(error, httpx.TimeoutException) else "could not be completed"
            failure = RetriableSourceError(
                f"{method} {url} {what} ({type(error).__name__}: {redact(str(error)) or 'no detail'})", source=self.source
            )
            if isinstance(error, _NOT_SENT) or repeatable:
                raise failure from None
            raise self._unknown(failure) from None
        log.debug("%s %s -> %s", method, response.request.url.copy_with(query=None), response.status_code)
        if self.pace is not None and response.status_code < 400:
            hold = self.pace(response)
            if hold > 0:
                self._hold_until = self.policy.clock() + timedelta(seconds=hold)
        try:
            classify_response(response, source=self.source, now=self.policy.clock(), accept=accept)
        except RetriableSourceError as failure:
            if repeatable or failure.status == 429:
                raise
            raise self._unknown(failure) from None
        if not json_body:
            return response
        try:
            data = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise RetriableSourceError(
                f"{method} {response.request.url.copy_with(query=None)} answered {response.status_code} with a "
                "body that is not JSON",
                source=self.source,
                status=response.status_code,
            ) from None
        return (response, data) if json_body == "both" else data

    def _unknown(self, failure: RetriableSourceError) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"{failure.detail}; this write may or may not have been applied, so it is not repeated blindly. "
            "Stopped this source; the next run checks the source before sending it again",
            source=self.source,
            status=failure.status,
        )

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetriableSourceError) and error.retry_after is not None:
            return error.retry_after
        return float(self._backoff(state))

    def _stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.policy.max_attempts:
            return True
        return state.idle_for + state.upcoming_sleep > self.policy.max_wait

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "source %r: %s; retry %d of %d in %.1fs",
            self.source,
            getattr(error, "detail", error),
            state.attempt_number,
            self.policy.max_attempts - 1,
            state.upcoming_sleep,
        )

    def _give_up(self, state: RetryCallState) -> httpx.Response:
        error = state.outcome.exception() if state.outcome else None
        assert isinstance(error, RetriableSourceError)
        bound = self.policy.max_wait
        if state.attempt_number >= self.policy.max_attempts:
            why = (
                f"gave up after {state.attempt_number} attempt(s) and {state.idle_for:.0f}s of waiting "
                f"(http.max_attempts = {self.policy.max_attempts})"
            )
        elif error.retry_after is not None and error.retry_after > bound:
            why = f"the vendor asks to wait {error.retry_after:.0f}s, more than the retry bound (http.max_wait = {bound:.0f}s)"
        else:
            why = (
                f"waiting {state.upcoming_sleep:.0f}s more would pass the retry bound "
                f"(http.max_wait = {bound:.0f}s; {state.idle_for:.0f}s waited already)"
            )
        not_before = None
        when = ""
        if error.retry_after is not None:
            not_before = self.policy.clock() + timedelta(seconds=error.retry_after)
            when = f"; retry after {not_before.strftime('%Y-%m-%d %H:%M:%S')} UTC"
        raise RetryLater(
            f"{error.detail}; {why}. Stopped this source{when} (the next run resumes from the saved cursor)",
            source=self.source,
            status=error.status,
            not_before=not_before,
        ) from None
