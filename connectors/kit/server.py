"""The generic half of every sandbox: serving, the request log, faults, rate windows.

A connector's sandbox subclasses :class:`SandboxServer` and supplies what is its vendor's:
``authorized`` (which credentials it takes), ``route`` (its paths), ``limit`` (its rate
limits), ``error`` (its error bodies) and ``endless_page`` (a page that always says more
follows). The base serves it in-process (:meth:`SandboxServer.transport`) or on a loopback port
(:meth:`SandboxServer.serve`), logs every request, and injects faults:

- ``429`` (the vendor's body), ``429_text`` (a plain-text body, as edge proxies send),
  ``429_html`` (an HTML error page, as some vendors' gateways send), ``500``, ``503``, ``504`` (an
  HTML body), each with an optional ``Retry-After``;
- ``slow`` (the answer waits ``delay`` seconds), ``malformed`` (the body is cut in half);
- ``repeat`` (the previous answer on that path again: its continuation comes back a second
  time), ``endless`` (a page that always says more follows, with a new continuation each time);
- ``foreign_links`` (every URL the sandbox names points at another origin).

A fault applies to the requests whose path contains ``path``, after the first ``after`` of them,
``times`` times. Links a sandbox renders go through :meth:`SandboxServer.link`, on the origin the
request came to, as a real server's do; a request that arrives for another origin is counted in
``foreign_requests`` (a client that followed a foreign link).

The request log (``requests``) holds each request's method, path and query; a sandbox whose
client sends its continuation in a POST body (a JSON search) names what tells one request from
another through :meth:`SandboxServer.describe`, so a test can see which page was asked for.

Every answer carries a ``Date`` header (RFC 9110, section 6.6.1: IMF-fixdate) from the
sandbox's own clock (:meth:`SandboxServer.now`), as every real HTTP server's does: a client that
compares its instant with the helpdesk's clock sees the sandbox's (frozen, in tests) time, never
this machine's.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx

__all__ = ["FOREIGN_ORIGIN", "Fault", "SandboxServer", "SlidingWindow", "json_response"]

UTC = timezone.utc
FOREIGN_ORIGIN = "https://harvest.example.net"  # where `foreign_links` sends every link
Query = dict[str, list[str]]


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
                          content=json.dumps(payload).encode())


@dataclass
class Fault:
    """One injected failure (see the module docstring for the kinds)."""

    kind: str
    times: int = 1
    path: str = ""  # only requests whose path contains this
    retry_after: int | None = None
    delay: float = 0.0
    after: int = 0  # matching requests to let through first


class SlidingWindow:
    """Requests in the last ``seconds``: how many, and when the oldest leaves the window."""

    def __init__(self, limit: int, seconds: float = 60.0) -> None:
        self.limit, self.seconds = limit, seconds
        self._times: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.seconds:
            self._times.popleft()

    def used(self, now: float) -> int:
        self._trim(now)
        return len(self._times)

    def full(self, now: float) -> bool:
        return self.used(now) >= self.limit

    def add(self, now: float) -> None:
        self._times.append(now)

    def resets_in(self, now: float) -> int:
        """Whole seconds until a request leaves the window (at least 1)."""
        self._trim(now)
        return max(1, int(self._times[0] + self.seconds - now + 0.999)) if self._times else 1


class SandboxServer:
    """The base every sandbox builds on. Read its state in tests: ``requests``, ``statuses``."""

    token: str = "sandbox-token"
    base_url: str = "https://sandbox.example.com"  # the origin of in-process requests

    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self._clock = clock or (lambda: datetime.now(UTC))
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, Query]] = []
        self.statuses: list[int] = []  # the status served for each request, in order
        self._lock = threading.RLock()
        self._origin = self.base_url
        self._foreign = False
        self._last: dict[str, httpx.Response] = {}  # the last answer per path, for `repeat`
        self.foreign_requests = 0

    def now(self) -> datetime:
        return self._clock().astimezone(UTC)

    # -- what a vendor's sandbox supplies ------------------------------------------------

    def authorized(self, request: httpx.Request) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> httpx.Response:
        return json_response(401, {"error": "unauthorized"})

    def route(self, request: httpx.Request, path: str, query: Query, body: Any) -> httpx.Response:
        raise NotImplementedError

    def limit(self, request: httpx.Request, path: str) -> httpx.Response | None:
        """A 429 when a rate limit is spent (and the request is counted otherwise)."""
        return None

    def decorate(self, response: httpx.Response, path: str) -> None:
        """Headers every answer carries (rate-limit counters)."""

    def error(self, status: int, headers: dict[str, str]) -> httpx.Response:
        """The vendor's error body for an injected fault of that status."""
        return json_response(status, {"error": f"{status}"}, headers)

    def endless_page(self, request: httpx.Request, path: str, query: Query) -> httpx.Response | None:
        """A page of the stream at ``path`` saying more follows, with a new continuation; None: not a stream."""
        return None

    def not_found(self) -> httpx.Response:
        return json_response(404, {"error": "not found"})

    def describe(self, request: httpx.Request, query: Query) -> Query:
        """What the request log keeps of a request besides its method and path: its query, unless
        the sandbox adds what its body says (a search sent as POST carries its cursor there)."""
        return query

    # -- faults and the request log -------------------------------------------------------

    def inject(self, kind: str, *, times: int = 1, path: str = "", retry_after: int | None = None, delay: float = 0.0,
               after: int = 0) -> None:
        self.faults.append(Fault(kind, times, path, retry_after, delay, after))

    def count(self, path_part: str = "", method: str | None = None) -> int:
        return sum(1 for m, p, _ in self.requests if path_part in p and (method is None or m == method))

    def writes(self) -> int:
        """Requests that could change something (every method but GET and HEAD)."""
        return sum(1 for method, _, _ in self.requests if method not in ("GET", "HEAD"))

    def link(self, path: str, query: dict[str, Any] | None = None) -> str:
        """An absolute URL on the origin the request came to (or elsewhere, under `foreign_links`)."""
        origin = FOREIGN_ORIGIN if self._foreign else self._origin
        return f"{origin}{path}" + (f"?{urlencode(query, doseq=True)}" if query else "")

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and fault.path in path:
                if fault.after > 0:
                    fault.after -= 1
                    continue
                fault.times -= 1
                return fault
        return None

    # -- HTTP -----------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        """For an in-process ``httpx.Client(transport=...)``."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            response = self._handle(request)
            # Every answer, faults and refusals included, dated by the sandbox's clock (RFC 9110 6.6.1).
            response.headers["Date"] = format_datetime(self.now(), usegmt=True)
            self.statuses.append(response.status_code)
            return response

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removesuffix(".json")
        query = parse_qs(request.url.query.decode())
        self.requests.append((request.method, path, self.describe(request, query)))
        origin = f"{request.url.scheme}://{request.url.netloc.decode()}"
        if origin == FOREIGN_ORIGIN:
            self.foreign_requests += 1
        else:
            self._origin = origin
        fault = self._take_fault(path)
        self._foreign = fault is not None and fault.kind == "foreign_links"
        if fault is not None and fault.kind == "slow":
            time.sleep(fault.delay)
            fault = None
        if not self.authorized(request):
            return self.unauthorized()
        limited = self.limit(request, path)
        if limited is not None:
            return limited
        if fault is not None and fault.kind == "repeat" and path in self._last:
            return self._last[path]
        if fault is not None and fault.kind == "endless":
            endless = self.endless_page(request, path, query)
            if endless is not None:
                return endless
        if fault is not None and fault.kind in ("429", "429_text", "429_html", "500", "503", "504"):
            return self._fault_response(fault)
        try:
            body = json.loads(request.content) if request.content else {}
        except json.JSONDecodeError:
            body = None
        response = self.route(request, path, query, body)
        self.decorate(response, path)
        if response.status_code == 200:
            self._last[path] = response
        if fault is not None and fault.kind == "malformed" and response.status_code == 200:
            return httpx.Response(200, headers={"Content-Type": "application/json"}, content=response.content[: len(response.content) // 2])
        return response

    def _fault_response(self, fault: Fault) -> httpx.Response:
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.kind == "429_text":
            return httpx.Response(429, headers={"Content-Type": "text/plain", **headers}, text="Too Many Requests")
        if fault.kind == "429":
            return self.error(429, headers)
        if fault.kind == "429_html":
            return httpx.Response(429, headers={"Content-Type": "text/html; charset=utf-8", **headers},
                                  text="<html><head><title>429 Too Many Requests</title></head><body>Too Many Requests</body></html>")
        return httpx.Response(int(fault.kind), headers={"Content-Type": "text/html", **headers},
                              text="<html><body>Service Unavailable</body></html>")

    # -- on a loopback port ---------------------------------------------------------------

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve on a loopback port for the duration of the block; yields the base URL."""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("a sandbox only listens on loopback addresses")
        sandbox = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes: without this, Nagle's algorithm and
                # delayed ACKs cost ~40 ms per keep-alive request.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                content = self.rfile.read(length) if length else b""
                netloc = self.headers.get("Host") or f"{host}:{port}"
                request = httpx.Request(self.command, f"http://{netloc}{self.path}", headers=dict(self.headers), content=content)
                response = sandbox.handle(request)
                payload = response.content
                # Not send_response: it would add a second Date, from this machine's clock.
                self.send_response_only(response.status_code)
                self.send_header("Server", self.version_string())
                for key, value in response.headers.items():
                    if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _any

            def log_message(self, *args: Any) -> None:  # quiet
                return

        server = ThreadingHTTPServer((host, port), Handler)
        port = server.server_address[1]
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name=f"{type(self).__name__}-server", daemon=True)
        thread.start()
        try:
            yield f"http://{host}:{port}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
