"""The one HTTP layer every connector sends through: client defaults, response classes, retries.

- :func:`build_client` makes the ``httpx.Client`` for a source: timeouts, TLS verification on,
  ``User-Agent: sla-bridge/<version>``, and an injectable transport so tests never leave the
  machine.
- :func:`classify_response` sorts a response once into ok, retriable or fatal (the Singer SDK's
  ``validate_response`` idea), raising the matching error from :mod:`bridge.errors`.
- :class:`SourceClient` sends requests under one bounded tenacity policy: 429, 5xx and timeouts
  are retried; ``Retry-After`` (seconds, an HTTP date, or 0) is honoured exactly, exponential
  backoff with jitter otherwise; the attempts are bounded, and so is the whole time one request
  takes across them, the attempts and the waits together (``http.max_wait``). When the vendor
  asks for a longer wait than the bound allows, the source stops at once with :class:`RetryLater`
  saying when to come back, rather than sleeping through a cron slot.
- Every URL a response names (a next page, a job's status) is requested only if it has the
  scheme, host and port of the source's own URL: anything else would carry the credentials to
  another server, so it stops the source (:class:`OffOriginLink`) and is never sent.
- Nothing waits for ever. httpx's timeouts restart on every byte, so a server that trickles a
  byte a second would hold a cron job (and its lock) for good: the network transport
  :func:`build_client` makes holds each request, connect to last body byte, to ``http.deadline``
  (:class:`DeadlineTransport`); a body is read up to ``http.max_body_mb`` and no further
  (:class:`ResponseTooLarge`), measured as it unpacks: only ``gzip`` and ``deflate`` are asked
  for, one coding at a time is undone here in small pieces, and a stacked or unknown
  ``Content-Encoding`` is refused unread; and a :class:`SourceClient` given a run deadline
  (``http.max_run``) sends nothing and sleeps through nothing past it (:class:`RunBoundReached`).
- Every URL a message shows has no query string (cursors, tokens) and no user info, and every
  message passes through :func:`~bridge.edges.credentials.redact`.
"""

from __future__ import annotations

import email.utils
import functools
import json
import logging
import re
import ssl
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpcore
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
    ResponseTooLarge,
    RetriableSourceError,
    RetryLater,
    RunBoundReached,
)

__all__ = [
    "ACCEPT_ENCODING",
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BODY_MB",
    "DEFAULT_MAX_PAGES",
    "USER_AGENT",
    "DeadlineTransport",
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
DEFAULT_DEADLINE = 120  # seconds one request may take in all (http.deadline)
DEFAULT_MAX_BODY_MB = 64  # MiB one response body may hold (http.max_body_mb)
_MIB = 1024 * 1024
ACCEPT_ENCODING = "gzip, deflate"  # the content codings asked for: those _Unpacker undoes
_RAW_PIECE = 64 * 1024  # bytes of the body as it travelled, read at a time
_UNPACKED_PIECE = 256 * 1024  # bytes one call to the decompressor may hand back
_T = TypeVar("_T")


class HttpSettings(Protocol):
    """The ``[http]`` keys this layer reads (``bridge.config.HttpConfig`` has them)."""

    @property
    def timeout(self) -> int: ...

    @property
    def max_attempts(self) -> int: ...

    @property
    def max_wait(self) -> int: ...

    @property
    def deadline(self) -> int: ...

    @property
    def max_run(self) -> int: ...

    @property
    def max_body_mb(self) -> int: ...


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RetryPolicy:
    """How long one request may keep trying. ``sleep``, ``clock`` and ``monotonic`` are injectable for tests.

    ``clock`` is the wall clock (``Retry-After`` dates); ``monotonic`` measures the run's time
    bound and the age of the source's ``Date``, like :func:`time.monotonic`.
    """

    max_attempts: int = 5
    max_wait: float = 120.0  # seconds one request may take across its retries, attempts and waits together
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    sleep: Callable[[float], None] = field(default=lambda seconds: time.sleep(seconds), compare=False)
    clock: Callable[[], datetime] = field(default=_utcnow, compare=False)
    monotonic: Callable[[], float] = field(default=lambda: time.monotonic(), compare=False)

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
    Without ``transport`` the client sends through a :class:`DeadlineTransport` holding each
    request to ``http.deadline`` seconds, through the proxy the environment names for the source
    (``HTTPS_PROXY``, ``NO_PROXY``), as httpx itself would.
    """
    if transport is None:
        verify: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            verify = ssl.create_default_context()
            verify.load_verify_locations(cafile=str(ca_bundle))
        transport = DeadlineTransport(deadline=float(http.deadline), verify=verify, proxy=_environment_proxy(base_url))
    return httpx.Client(
        base_url=base_url,
        auth=auth,
        # No helpdesk needs a session cookie, and ServiceNow runs the requests of one session one
        # at a time (queued, then dropped past about ten): a jar that keeps none.
        cookies=_NoCookies(),
        transport=transport,
        timeout=httpx.Timeout(float(http.timeout)),
        follow_redirects=False,  # a redirect usually means a wrong base URL; say so, do not follow
        # Only the codings _exchange undoes, one at a time: httpx would add br and zstd when their
        # packages are installed, and decode them with no bound on what one piece unpacks to.
        headers={"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING, **(headers or {})},
    )


class _NoCookies(CookieJar):
    """A cookie jar that keeps nothing a server sets: every request goes without a Cookie header."""

    def __init__(self) -> None:
        super().__init__(policy=DefaultCookiePolicy(allowed_domains=[]))


def _environment_proxy(url: str) -> httpx.Proxy | None:
    """The proxy the environment names for ``url`` (``HTTPS_PROXY``, ``ALL_PROXY``, minus ``NO_PROXY``).

    httpx reads these itself only when it builds its own transport; a source talks to one origin,
    so one look here decides for all its requests.
    """
    target = httpx.URL(url)
    if not target.host or urllib.request.proxy_bypass(target.host):
        return None
    proxies = urllib.request.getproxies()
    value = proxies.get(target.scheme) or proxies.get("all")
    if not value:
        return None
    return httpx.Proxy(value if "://" in value else f"http://{value}")


# -- the overall deadline of one request ----------------------------------------------------


@dataclass(frozen=True)
class _Deadline:
    at: float  # a time.monotonic() instant
    bound: str  # what set it, for the message: "http.deadline = 120s"


# The deadline of the request being sent in this thread (or task). The transport sets it around
# each step of a request, the streams below read it: it cannot be a stream's own attribute, as a
# kept-alive connection serves one request after another.
_request_deadline: ContextVar[_Deadline | None] = ContextVar("sla_bridge_request_deadline", default=None)


@contextmanager
def _held_to(deadline: _Deadline | None) -> Iterator[None]:
    token = _request_deadline.set(deadline)
    try:
        yield
    finally:
        _request_deadline.reset(token)


def _sooner(first: _Deadline | None, second: _Deadline) -> _Deadline:
    return second if first is None or second.at < first.at else first


def _within_deadline(timeout: float | None, timed_out: type[httpcore.TimeoutException], wait: Callable[[float | None], _T]) -> _T:
    """``wait(t)`` with ``timeout`` cut to the time the request has left; ``timed_out`` once none is left.

    A socket timeout that fires because the deadline cut it short says so, rather than a bare
    "timed out" that would read as the configured ``http.timeout``.
    """
    deadline = _request_deadline.get()
    if deadline is None:
        return wait(timeout)
    left = deadline.at - time.monotonic()
    if left <= 0:
        raise timed_out(f"the request did not complete within {deadline.bound}")
    if timeout is not None and timeout <= left:
        return wait(timeout)
    try:
        return wait(left)
    except httpcore.TimeoutException:
        raise timed_out(f"the request did not complete within {deadline.bound}") from None


_WRITE_CHUNK = 16 * 1024  # a slow reader on the other end gets a fresh (shorter) timeout per chunk


class _DeadlineStream(httpcore.NetworkStream):
    """A socket whose every read and write waits no longer than the request has left."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _within_deadline(timeout, httpcore.ReadTimeout, lambda wait: self._stream.read(max_bytes, wait))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        for start in range(0, len(buffer), _WRITE_CHUNK):
            _within_deadline(timeout, httpcore.WriteTimeout, functools.partial(self._stream.write, buffer[start : start + _WRITE_CHUNK]))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        # The handshake as a whole is held to the timeout it is given (CPython's ssl module keeps
        # one deadline across the handshake's reads and writes).
        secured = _within_deadline(timeout, httpcore.ConnectTimeout, lambda wait: self._stream.start_tls(ssl_context, server_hostname, wait))
        return _DeadlineStream(secured)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's own sync backend, its connects and streams held to the request's deadline."""

    def __init__(self) -> None:
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        connect = self._backend.connect_tcp
        return _DeadlineStream(_within_deadline(timeout, httpcore.ConnectTimeout, lambda wait: connect(host, port, wait, local_address, socket_options)))

    def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        connect = self._backend.connect_unix_socket
        return _DeadlineStream(_within_deadline(timeout, httpcore.ConnectTimeout, lambda wait: connect(path, wait, socket_options)))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


# httpcore's errors as httpx raises them (httpx/_transports/default.py), the most specific first.
_HTTPCORE_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.ProxyError, httpx.ProxyError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        for theirs, ours in _HTTPCORE_ERRORS:
            if isinstance(error, theirs):
                raise ours(str(error)) from error
        raise


class _DeadlineBody(httpx.SyncByteStream):
    """A response body read under the deadline of the request that asked for it."""

    def __init__(self, parts: Iterable[bytes], deadline: _Deadline) -> None:
        self._parts = parts
        self._deadline = deadline

    def __iter__(self) -> Iterator[bytes]:
        parts = iter(self._parts)
        while True:
            with _held_to(self._deadline), _as_httpx_errors():
                part = next(parts, None)
            if part is None:
                return
            yield part

    def close(self) -> None:
        close = getattr(self._parts, "close", None)
        if close is not None:
            with _as_httpx_errors():
                close()


class DeadlineTransport(httpx.BaseTransport):
    """httpx's network transport, with each request held to ``deadline`` seconds in all.

    httpx's ``read`` timeout restarts with every byte received, so a server that trickles its
    status line, headers or body keeps a request alive for ever. Here connect, TLS, sending,
    headers and body together get ``deadline`` seconds (less when the caller set a sooner
    deadline, the run's bound): each socket wait is the configured timeout or the time left,
    whichever is shorter, and a spent deadline is a timeout like any other. Built on
    ``httpcore.ConnectionPool`` with its ``network_backend`` hook, as ``httpx.HTTPTransport``
    takes no backend.
    """

    def __init__(self, *, deadline: float = DEFAULT_DEADLINE, verify: ssl.SSLContext | bool = True, proxy: httpx.Proxy | None = None) -> None:
        self.deadline = deadline
        context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        backend = _DeadlineBackend()
        limits: dict[str, Any] = {"max_connections": 100, "max_keepalive_connections": 20, "keepalive_expiry": 5.0}  # httpx's defaults
        self._pool: httpcore.ConnectionPool
        if proxy is None:
            self._pool = httpcore.ConnectionPool(ssl_context=context, network_backend=backend, **limits)
        elif proxy.url.scheme in ("http", "https"):
            self._pool = httpcore.HTTPProxy(
                proxy_url=_core_url(proxy.url),
                proxy_auth=proxy.raw_auth,
                proxy_headers=proxy.headers.raw,
                ssl_context=context,
                proxy_ssl_context=proxy.ssl_context,
                network_backend=backend,
                **limits,
            )
        else:  # socks5, socks5h (httpcore needs the socksio package for them, as httpx does)
            self._pool = httpcore.SOCKSProxy(
                proxy_url=_core_url(proxy.url), proxy_auth=proxy.raw_auth, ssl_context=context, network_backend=backend, **limits
            )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.SyncByteStream)
        deadline = _sooner(_request_deadline.get(), _Deadline(time.monotonic() + self.deadline, f"http.deadline = {self.deadline:g}s"))
        core_request = httpcore.Request(
            method=request.method,
            url=_core_url(request.url),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _held_to(deadline), _as_httpx_errors():
            response = self._pool.handle_request(core_request)
        assert isinstance(response.stream, Iterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_DeadlineBody(response.stream, deadline),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self._pool.close()


def _core_url(url: httpx.URL) -> httpcore.URL:
    return httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)


@contextmanager
def _finish_within(seconds: float, bound: str) -> Iterator[None]:
    """Requests sent inside finish within ``seconds`` as well as their own ``http.deadline``."""
    with _held_to(_sooner(_request_deadline.get(), _Deadline(time.monotonic() + seconds, bound))):
        yield


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
    when = _http_date(text)
    if when is None:
        return None
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


def _http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110 5.6.7, always UTC) as an aware datetime; None when it is not one."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if not 1970 <= when.year <= 9000:  # room for date arithmetic either way
        return None
    return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when.astimezone(timezone.utc)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _shown_url(url: httpx.URL | str) -> str:
    """A URL fit for a message: no query string (cursors, tokens), no user info, no secret.

    Percent-encoding is undone before masking, so a vendor echoing the credentials URL-encoded
    (a ``Location`` with ``%3D`` for the blob's padding) is masked too.
    """
    try:
        parsed = httpx.URL(str(url))
        text = str(parsed.copy_with(query=None, fragment=None, userinfo=b""))
    except (httpx.InvalidURL, TypeError, ValueError):
        text = str(url).split("?", 1)[0].split("#", 1)[0]
    text = _CONTROL.sub("", redact(urllib.parse.unquote(redact(text))))
    return text[:300] + ("..." if len(text) > 300 else "")


def _vendor_says(response: httpx.Response) -> str:
    """A short, redacted excerpt of what the vendor put in the error body."""
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = response.text
    if isinstance(body, dict):
        parts = []
        for key in ("error", "title", "description", "detail", "message", "errorMessage", "errorMessages", "errors"):
            value = body.get(key)
            if value:
                parts.append(value if isinstance(value, str) else json.dumps(value, sort_keys=True))
        text = "; ".join(parts) if parts else json.dumps(body, sort_keys=True)
    else:
        text = str(body)
    text = _CONTROL.sub("", redact(" ".join(text.split())))  # mask first: a cut could leave half a secret behind
    return text[:300] + ("..." if len(text) > 300 else "")


def classify_response(
    response: httpx.Response, *, source: str, now: datetime | None = None, accept: tuple[int, ...] = ()
) -> httpx.Response:
    """Return ``response`` when usable; raise the error class its status calls for otherwise."""
    status = response.status_code
    if status < 300 or status in accept:
        return response
    request = response.request
    what = f"{request.method} {_shown_url(request.url)}"
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
        location = _shown_url(response.headers.get("Location", "?"))
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
# Headers that describe the body as it travelled, not the body read (decoded, whole).
_BODY_FRAMING = frozenset({"content-encoding", "content-length", "transfer-encoding"})


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


class _Unpacker:
    """Undoes one content coding (gzip or deflate), handing back at most ``_UNPACKED_PIECE`` bytes at a time.

    httpx decodes each piece that arrives in one call, so a few KiB of a stacked gzip unpack to
    gigabytes before anyone can count them; here the caller counts after every bounded piece.
    Corrupt data is an ``httpx.DecodingError``, as httpx's own decoders raise.
    """

    def __init__(self, coding: str) -> None:
        self.coding = coding
        self._first = True
        # gzip (and x-gzip) has its gzip header; deflate is zlib-wrapped by the standard, raw
        # deflate by some servers: tried when the zlib header does not fit, as httpx does.
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16 if coding != "deflate" else zlib.MAX_WBITS)

    def unpack(self, data: bytes) -> Iterator[bytes]:
        while True:
            piece = self._decompress(data)
            data = self._inflate.unconsumed_tail
            if piece:
                yield piece
            if not data and len(piece) < _UNPACKED_PIECE:  # a full piece may leave output pending
                return

    def flush(self) -> bytes:
        try:
            return self._inflate.flush()  # every input was drained above: nothing large is left
        except zlib.error as error:
            raise httpx.DecodingError(f"the {self.coding} body could not be unpacked: {error}") from None

    def _decompress(self, data: bytes) -> bytes:
        first, self._first = self._first, False
        try:
            return self._inflate.decompress(data, _UNPACKED_PIECE)
        except zlib.error as error:
            if first and self.coding == "deflate":
                self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                return self._decompress(data)
            raise httpx.DecodingError(f"the {self.coding} body could not be unpacked: {error}") from None


_CODINGS = frozenset({"gzip", "x-gzip", "deflate"})  # what ACCEPT_ENCODING asks for (x-gzip: gzip's old name)


@dataclass
class _Attempts:
    """The time one request's attempts took, summed over its retries (the waits tenacity counts)."""

    took: float = 0.0


class SourceClient:
    """Sends a source's requests under the retry policy, and counts them for the run record.

    Idempotent methods (GET, PUT, DELETE, ...) are retried on 429, 5xx and timeouts. A POST, or a
    request marked ``idempotent=False`` (a PUT that adds a comment), is retried only where it surely
    was not applied: 429, and errors before it was sent. Otherwise :class:`OutcomeUnknown` stops
    the source, so the write-back journal checks the source before anything is sent again.

    ``run_deadline`` is the ``policy.monotonic()`` instant the run must stop by (run start plus
    ``http.max_run``): no request is sent and no retry or pacing wait begun that would pass it
    (:class:`RunBoundReached`), and a request under way gets no more than the time left. A body
    is read up to ``max_body_mb`` MiB (:class:`ResponseTooLarge` past it).
    """

    def __init__(
        self,
        source: str,
        client: httpx.Client,
        policy: RetryPolicy | None = None,
        *,
        pace: Callable[[httpx.Response], float] | None = None,
        max_pages: int = DEFAULT_MAX_PAGES,
        max_body_mb: int = DEFAULT_MAX_BODY_MB,
        run_deadline: float | None = None,
    ) -> None:
        self.source = source
        self.client = client
        self.policy = policy or RetryPolicy()
        self.max_pages = max_pages  # pages one walk may read in a run (the paging loops' bound)
        self.max_body_mb = max_body_mb
        self.run_deadline = run_deadline
        self.requests_made = 0
        # Proactive pacing: ``pace`` reads a response's rate-limit headers and says how long to
        # hold the next request, so a known budget is not run into a 429 first.
        self.pace = pace
        self._hold_until: datetime | None = None
        self._backoff = wait_exponential_jitter(initial=self.policy.backoff_initial, max=self.policy.backoff_max)
        self._source_date: tuple[datetime, float] | None = None  # the last usable Date, and when it came

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
        (``"both"``: the two as a tuple). A URL off the source's origin is never sent. ``kwargs``
        go to ``httpx.Client.build_request`` (``params``, ``json``, ``headers``, ...).
        """
        self._check_origin(method, url)
        repeatable = method.upper() in _IDEMPOTENT if idempotent is None else idempotent
        attempts = _Attempts()
        retrying = Retrying(
            retry=retry_if_exception(lambda error: isinstance(error, RetriableSourceError) and not isinstance(error, RetryLater)),
            wait=self._wait,
            stop=functools.partial(self._stop, attempts=attempts),
            sleep=self.policy.sleep,
            before_sleep=self._log_retry,
            retry_error_callback=functools.partial(self._give_up, attempts=attempts),
        )
        return retrying(self._send_once, method, url, accept, json_body, repeatable, kwargs, attempts)

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

    def server_time(self) -> datetime | None:
        """The source's clock now, as its last ``Date`` header said plus the time since it came.

        None until a response carried a usable ``Date``. ``Date`` has one-second resolution, and
        the response may have waited in transit: good to a few seconds, which is what a check
        against writing a state computed for another instant needs.
        """
        if self._source_date is None:
            return None
        said, received = self._source_date
        return said + timedelta(seconds=max(0.0, self.policy.monotonic() - received))

    def _check_origin(self, method: str, url: str) -> None:
        target = httpx.URL(url)
        base = self.client.base_url
        if not target.is_absolute_url and not target.scheme and not target.host and not url.startswith("//"):
            return  # a path on the source
        if not target.is_absolute_url or origin_of(target) != origin_of(base):
            raise OffOriginLink(
                f"{method} {_shown_url(target)[:200]}: the vendor's response named a URL outside the source's origin "
                f"({base.scheme}://{base.netloc.decode()}); it was not requested, so the credentials did not go there. "
                f"Check sources.{self.source}.url (the vendor may expect another host name)",
                source=self.source,
            )

    def _run_bound(self, what: str, wait: float = 0.0, status: int | None = None) -> None:
        """Raise :class:`RunBoundReached` when the run's time is spent, or ``wait`` would spend it."""
        if self.run_deadline is None:
            return
        left = self.run_deadline - self.policy.monotonic()
        if left > 0 and wait < left:
            return
        why = f"waiting {wait:.0f}s more would pass the run's time bound" if left > 0 else "the run has used its time bound"
        raise RunBoundReached(
            f"{what}; {why} (http.max_run). Stopped this source; the next run resumes from the saved cursor",
            source=self.source,
            status=status,
        )

    def _send_once(
        self,
        method: str,
        url: str,
        accept: tuple[int, ...],
        json_body: bool | str,
        repeatable: bool,
        kwargs: dict[str, Any],
        attempts: _Attempts,
    ) -> Any:
        request = self.client.build_request(method, url, **kwargs)
        what = f"{method} {_shown_url(request.url)}"
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
                self._run_bound(f"{what} not sent: the rate-limit budget is spent for {wait:.0f}s", wait)
                log.info("source %r: rate-limit budget spent; pausing %.1fs", self.source, wait)
                self.policy.sleep(wait)
        self._run_bound(f"{what} not sent")
        started = self.policy.monotonic()
        try:
            return self._attempt(request, what, accept, json_body, repeatable)
        finally:
            attempts.took += self.policy.monotonic() - started

    def _attempt(self, request: httpx.Request, what: str, accept: tuple[int, ...], json_body: bool | str, repeatable: bool) -> Any:
        self.requests_made += 1
        try:
            if self.run_deadline is None:
                response = self._exchange(request)
            else:
                with _finish_within(self.run_deadline - self.policy.monotonic(), "the run's time bound (http.max_run)"):
                    response = self._exchange(request)
        except (httpx.TransportError, httpx.DecodingError) as error:
            tls = _tls_failure(error)
            if tls is not None:
                raise FatalSourceError(
                    f"{what}: TLS verification failed ({getattr(tls, 'reason', None) or type(tls).__name__}): "
                    f"check sources.{self.source}.url, or set http.ca_bundle for a TLS-intercepting proxy",
                    source=self.source,
                ) from None
            happened = "timed out" if isinstance(error, httpx.TimeoutException) else "could not be completed"
            detail = _CONTROL.sub("", redact(str(error)))[:300] or "no detail"
            failure = RetriableSourceError(f"{what} {happened} ({type(error).__name__}: {detail})", source=self.source)
            if isinstance(error, _NOT_SENT) or repeatable:
                raise failure from None
            raise self._unknown(failure) from None
        log.debug("%s -> %s", what, response.status_code)
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
                f"{what} answered {response.status_code} with a body that is not JSON",
                source=self.source,
                status=response.status_code,
            ) from None
        return (response, data) if json_body == "both" else data

    def _exchange(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` and read its body, no more than ``max_body_mb`` of it."""
        response = self.client.send(request, stream=True)
        try:
            said = _http_date(response.headers.get("Date"))
            if said is not None:
                self._source_date = (said, self.policy.monotonic())
            unpacker = self._unpacker_for(request, response)
            limit = self.max_body_mb * _MIB
            declared = response.headers.get("Content-Length", "").strip()
            if declared.isascii() and declared.isdigit() and int(declared) > limit:
                raise self._too_large(request, f"it declares {int(declared):,} bytes (Content-Length)")
            body = bytearray()
            if response.is_stream_consumed:
                # A transport that handed back a response it had read (httpx.MockTransport in
                # tests): httpx unpacked it already; only its size is left to check.
                body += response.content
                if len(body) > limit:
                    raise self._too_large(request, f"more than {limit:,} bytes arrived")
            else:
                self._read_into(body, request, response, unpacker, limit)
        finally:
            response.close()
        # A response holding the body read: no longer encoded, its length that of the body.
        headers = [(name, value) for name, value in response.headers.multi_items() if name.lower() not in _BODY_FRAMING]
        return httpx.Response(response.status_code, headers=headers, content=bytes(body), request=request, extensions=response.extensions)

    def _read_into(self, body: bytearray, request: httpx.Request, response: httpx.Response, unpacker: _Unpacker | None, limit: int) -> None:
        """Read the body as it travelled, in small pieces, unpacked here a bounded piece at a time.

        The bound is checked before the next piece is made, so memory stays near ``limit``.
        """
        travelled = 0
        for raw in response.iter_raw(_RAW_PIECE):
            travelled += len(raw)
            for part in unpacker.unpack(raw) if unpacker is not None else (raw,):
                body += part
                if len(body) > limit:
                    raise self._too_large(request, self._arrived(limit, travelled, unpacker))
        if unpacker is not None:
            body += unpacker.flush()
            if len(body) > limit:
                raise self._too_large(request, self._arrived(limit, travelled, unpacker))

    def _unpacker_for(self, request: httpx.Request, response: httpx.Response) -> _Unpacker | None:
        """The unpacker the response's ``Content-Encoding`` calls for; None for none (identity).

        One coding of those asked for is undone; more than one (``gzip, gzip``: a few KiB on the
        wire can hold gigabytes) or any other is refused before a byte of the body is read.
        """
        header = ", ".join(response.headers.get_list("Content-Encoding"))
        codings = [coding.strip().lower() for coding in header.split(",")]
        codings = [coding for coding in codings if coding and coding != "identity"]
        if not codings:
            return None
        if len(codings) == 1 and codings[0] in _CODINGS:
            return _Unpacker("gzip" if codings[0] == "x-gzip" else codings[0])
        shown = _CONTROL.sub("", redact(header))[:100]
        why = (
            "more than one coding stacked, which sla-bridge does not unpack (a few KiB of stacked gzip can hold gigabytes)"
            if len(codings) > 1
            else "a coding sla-bridge did not ask for and does not unpack"
        )
        raise FatalSourceError(
            f'{request.method} {_shown_url(request.url)}: the response has Content-Encoding: "{shown}", {why}; it was not '
            f"read. sla-bridge asks for Accept-Encoding: {ACCEPT_ENCODING}, one coding at a time: check "
            f"sources.{self.source}.url (a proxy or server in between may be misconfigured, or hostile)",
            source=self.source,
            status=response.status_code,
        )

    @staticmethod
    def _arrived(limit: int, travelled: int, unpacker: _Unpacker | None) -> str:
        if unpacker is None:
            return f"more than {limit:,} bytes arrived"
        return f"more than {limit:,} bytes arrived, unpacked from {travelled:,} bytes of {unpacker.coding}"

    def _too_large(self, request: httpx.Request, why: str) -> ResponseTooLarge:
        return ResponseTooLarge(
            f"{request.method} {_shown_url(request.url)}: the response is larger than http.max_body_mb = "
            f"{self.max_body_mb} MiB ({why}); it was not read further. A page this large usually means a wrong "
            f"sources.{self.source}.url or a misbehaving server; raise http.max_body_mb only if the vendor's pages "
            "really are this large",
            source=self.source,
            status=None,
        )

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

    def _crosses_run_bound(self, wait: float) -> bool:
        return self.run_deadline is not None and self.policy.monotonic() + wait >= self.run_deadline

    def _stop(self, state: RetryCallState, *, attempts: _Attempts) -> bool:
        if state.attempt_number >= self.policy.max_attempts or self._crosses_run_bound(state.upcoming_sleep):
            return True
        # http.max_wait bounds the whole request: no attempt starts once attempts and waits pass it.
        return attempts.took + state.idle_for + state.upcoming_sleep > self.policy.max_wait

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

    def _give_up(self, state: RetryCallState, *, attempts: _Attempts) -> httpx.Response:
        error = state.outcome.exception() if state.outcome else None
        assert isinstance(error, RetriableSourceError)
        bound = self.policy.max_wait
        if state.attempt_number < self.policy.max_attempts and self._crosses_run_bound(state.upcoming_sleep):
            self._run_bound(error.detail, state.upcoming_sleep, error.status)
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
                f"(http.max_wait = {bound:.0f}s; {state.idle_for:.0f}s waited already), which bounds the whole time "
                f"of this request, its attempts included ({attempts.took:.0f}s in {state.attempt_number} attempt(s))"
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
