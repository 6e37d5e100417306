"""A loopback Zendesk that misbehaves on purpose: what the adversarial suite points the real CLI at.

The normal answers are the Zendesk sandbox's (connectors/zendesk/sandbox.py), so a plain
``sla-bridge sync`` against it pulls, evaluates and writes back as it would against Zendesk. A
test then picks, per route, a *behaviour* that replaces the answer with what a broken or hostile
server sends: a status line one byte at a time, a redirect to itself, a body far over the bound,
HTML where JSON belongs, text that echoes the credentials or carries terminal escapes.

Everything goes out as raw bytes on a real socket (``socketserver`` on 127.0.0.x, port 0), so
what the CLI meets is what its HTTP stack would meet on the wire; big bodies are generated as
they are sent, never held in memory.
"""

from __future__ import annotations

import base64
import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

import httpx

from connectors.zendesk.sandbox import ZendeskSandbox

__all__ = [
    "Behaviour",
    "Exchange",
    "HostileZendesk",
    "answer",
    "chunked_growing",
    "declared_length",
    "echo_secrets",
    "endless",
    "redirect",
    "redirect_loop",
    "rewrite",
    "trickle",
    "truncated",
]

CHUNK = 64 * 1024
JSON = "application/json; charset=utf-8"


@dataclass
class Exchange:
    """One request as the server read it, and the means to answer it."""

    method: str
    target: str  # path and query, as sent
    headers: Message
    body: bytes
    origin: str  # http://host:port, as the client addressed it
    sandbox: ZendeskSandbox
    stopping: threading.Event
    _out: Any = field(repr=False)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query)

    def normal(self) -> httpx.Response:
        """What the sandbox would answer."""
        request = httpx.Request(self.method, self.origin + self.target, headers=dict(self.headers.items()), content=self.body)
        return self.sandbox.handle(request)

    def send(self, data: bytes, *, every: float = 0.0) -> bool:
        """Write ``data`` (one byte each ``every`` seconds when given); False once the client is gone."""
        try:
            if not every:
                self._out.write(data)
                return True
            for index in range(len(data)):
                if self.stopping.wait(every):
                    return False
                self._out.write(data[index : index + 1])
            return True
        except OSError:  # the client hung up: exactly what a bound should make it do
            return False


Behaviour = Callable[[Exchange], None]


def head(status: int, headers: dict[str, str], *, keep_alive: bool = False) -> bytes:
    """A status line and headers. Only a normal answer keeps the connection: after any other the
    server hangs up, and says so, so that a client is not left to find out on its next request."""
    headers = {**headers, "Connection": "keep-alive" if keep_alive else "close"}
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def render(response: httpx.Response, *, keep_alive: bool = False) -> bytes:
    """A complete response with an honest Content-Length."""
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "transfer-encoding", "connection")}
    return head(response.status_code, {**headers, "Content-Length": str(len(response.content))}, keep_alive=keep_alive) + response.content


def normal(exchange: Exchange) -> None:
    exchange.send(render(exchange.normal(), keep_alive=True))


# -- behaviours a test can put on a route --------------------------------------------------


def answer(status: int, body: bytes | Any, *, content_type: str = JSON, headers: dict[str, str] | None = None) -> Behaviour:
    """Always this answer: ``body`` as bytes, or anything else as JSON."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()

    def behave(exchange: Exchange) -> None:
        exchange.send(head(status, {"Content-Type": content_type, "Content-Length": str(len(payload)), **(headers or {})}) + payload)

    return behave


def rewrite(change: Callable[[Any], Any]) -> Behaviour:
    """The sandbox's JSON answer, passed through ``change`` (which edits it in place or returns a new one)."""

    def behave(exchange: Exchange) -> None:
        response = exchange.normal()
        data = response.json()
        changed = change(data)
        content = json.dumps(data if changed is None else changed).encode()
        exchange.send(render(httpx.Response(response.status_code, headers=response.headers, content=content)))

    return behave


def trickle(part: str, every: float) -> Behaviour:
    """The normal answer, from ``part`` on ("status", "headers" or "body") one byte each ``every`` seconds.

    Each byte arrives well inside the read timeout, so only an overall deadline ends the request.
    """

    def behave(exchange: Exchange) -> None:
        raw = render(exchange.normal())
        start = {"status": 0, "headers": raw.index(b"\r\n") + 2, "body": raw.index(b"\r\n\r\n") + 4}[part]
        if exchange.send(raw[:start]):
            exchange.send(raw[start:], every=every)

    return behave


def redirect(location: Callable[[Exchange], str], status: int = 302) -> Behaviour:
    def behave(exchange: Exchange) -> None:
        exchange.send(head(status, {"Location": location(exchange), "Content-Length": "0"}))

    return behave


def redirect_loop() -> Behaviour:
    """A redirect to the very URL asked for: a client that follows redirects never gets out."""
    return redirect(lambda exchange: exchange.origin + exchange.target)


def secret_forms(exchange: Exchange) -> dict[str, str]:
    """The credentials of the request in the shapes servers and proxies echo them in."""
    authorization = exchange.headers.get("Authorization", "")
    blob = authorization.partition(" ")[2]
    token = base64.b64decode(blob).decode().partition(":")[2] if blob else ""
    return {"authorization": authorization, "blob": blob, "token": token}


def echo_secrets(into: str, elsewhere: str = "http://127.0.0.2:9") -> Behaviour:
    """Echo the request's credentials back: in a redirect's ``Location``, or in a 400's error body."""

    def behave(exchange: Exchange) -> None:
        forms = secret_forms(exchange)
        if into == "location":
            location = (f"{elsewhere}/sso/{forms['blob']}?authorization={quote(forms['authorization'], safe='')}"
                        f"&token={quote(forms['token'], safe='')}&t={quote_plus(forms['token'])}")
            redirect(lambda _: location, status=302)(exchange)
            return
        said = {
            "error": "InvalidCredentials",
            "description": f"Authorization {forms['authorization']} rejected; token={forms['token']!r}; "
                           f"query token={quote(forms['token'], safe='')}; blob={quote(forms['blob'], safe='')}",
            "details": {"token": [{"description": repr({"token": forms["token"]})}]},
        }
        answer(400, said)(exchange)

    return behave


def _padding(exchange: Exchange, before: bytes, size: int, after: bytes, *, framed: bool) -> None:
    """``before``, ``size`` bytes of padding made as they are sent, ``after``; chunked when ``framed``."""

    def frame(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if framed else data

    if not exchange.send(frame(before)):
        return
    filler = b"x" * CHUNK
    for _ in range(size // CHUNK):
        if exchange.stopping.is_set() or not exchange.send(frame(filler)):
            return
    exchange.send(frame(after) + (b"0\r\n\r\n" if framed else b""))


def declared_length(declared: int = 10 * 2**30, sent: int = 16 * 2**20) -> Behaviour:
    """A ``Content-Length`` of ``declared`` bytes (10 GiB): a client that trusts it reads until ``sent``, then the connection drops."""

    def behave(exchange: Exchange) -> None:
        if exchange.send(head(200, {"Content-Type": JSON, "Content-Length": str(declared)})):
            _padding(exchange, b'{"tickets": [], "padding": "', sent, b"", framed=False)

    return behave


def chunked_growing(total: int = 16 * 2**20) -> Behaviour:
    """A chunked body with no length that keeps coming: valid JSON if read to the end (16 MiB)."""

    def behave(exchange: Exchange) -> None:
        if exchange.send(head(200, {"Content-Type": JSON, "Transfer-Encoding": "chunked"})):
            _padding(exchange, b'{"tickets": [], "after_cursor": null, "end_of_stream": true, "padding": "', total, b'"}', framed=True)

    return behave


def truncated() -> Behaviour:
    """The normal JSON cut in half, with a Content-Length that matches the cut (a proxy's doing)."""

    def behave(exchange: Exchange) -> None:
        response = exchange.normal()
        exchange.send(render(httpx.Response(200, headers={"Content-Type": JSON}, content=response.content[: len(response.content) // 2])))

    return behave


def endless(delay: float) -> Behaviour:
    """A page that says more follows, with a new continuation each time, ``delay`` seconds after it is asked for."""

    def behave(exchange: Exchange) -> None:
        if exchange.stopping.wait(delay):
            return
        request = httpx.Request(exchange.method, exchange.origin + exchange.target)
        page = exchange.sandbox.endless_page(request, exchange.path.removesuffix(".json"), exchange.query)
        assert page is not None, f"no endless page for {exchange.path}"
        exchange.send(render(page))

    return behave


# -- the server ----------------------------------------------------------------------------


class HostileZendesk:
    """The sandbox on a loopback port, with a behaviour per route: ``on("/incremental/tickets", trickle(...))``."""

    def __init__(self, sandbox: ZendeskSandbox) -> None:
        self.sandbox = sandbox
        self.routes: list[tuple[str, Behaviour]] = []
        self.seen: list[tuple[str, str]] = []  # (method, target) of every request, in order
        self.stopping = threading.Event()
        self._arrived = threading.Condition()

    def on(self, path_part: str, behaviour: Behaviour) -> HostileZendesk:
        """Requests whose path contains ``path_part`` get ``behaviour`` (the first match wins)."""
        self.routes.append((path_part, behaviour))
        return self

    def behave_normally(self) -> None:
        self.routes.clear()

    def wait_for(self, path_part: str, timeout: float = 30.0) -> bool:
        """Block until a request whose path contains ``path_part`` has arrived."""
        with self._arrived:
            return self._arrived.wait_for(lambda: any(path_part in target for _, target in self.seen), timeout)

    def requests_to(self, path_part: str) -> int:
        return sum(1 for _, target in self.seen if path_part in target)

    def _dispatch(self, exchange: Exchange) -> bool:
        """Answer one exchange; True when the connection may be kept for the next request."""
        with self._arrived:
            self.seen.append((exchange.method, exchange.target))
            self._arrived.notify_all()
        behaviour = next((b for part, b in self.routes if part in exchange.path), None)
        (behaviour or normal)(exchange)
        return behaviour is None

    @contextmanager
    def serve(self, host: str = "127.0.0.1") -> Iterator[str]:
        """Serve on a loopback port for the block; yields the base URL (``http://127.0.0.1:PORT``)."""
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                host, port = self.server.server_address[:2]
                origin = f"http://{self.headers.get('Host') or f'{host}:{port}'}"
                exchange = Exchange(self.command, self.path, self.headers, body, origin, hostile.sandbox, hostile.stopping, self.wfile)
                if not hostile._dispatch(exchange):
                    self.close_connection = True  # after a misbehaving answer, the framing cannot be trusted

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _any

            def log_message(self, *args: Any) -> None:  # quiet
                return

        class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
            daemon_threads = True
            allow_reuse_address = True

        server = Server((host, 0), Handler)
        thread = threading.Thread(target=server.serve_forever, name="hostile-zendesk", daemon=True)
        thread.start()
        try:
            yield f"http://{host}:{server.server_address[1]}"
        finally:
            self.stopping.set()  # trickles and paddings stop writing
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
