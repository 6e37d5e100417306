"""The overall deadline of a request, against a real loopback server that trickles one byte at a time.

httpx's read timeout restarts with every byte, so only a deadline on the whole request stops a
server that sends a byte every 0.2 s (here under a 0.5 s timeout). No test asserts a time: each
asserts that the request failed, and bounds how many bytes the server got to send before it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import respx

from bridge.config import HttpConfig
from bridge.edges.http import DeadlineTransport, RetryPolicy, SourceClient, build_client
from bridge.errors import OutcomeUnknown, RetryLater, RunBoundReached

BYTE_EVERY = 0.2
MOST_BYTES = 60  # a whole request's worth at 0.2 s a byte: 12 s, far past any deadline here
# 1 s of deadline is 5 bytes at 0.2 s each; the bound leaves room for a slow test machine
FEW_BYTES = 20


@dataclass(frozen=True)
class Settings:
    """The ``[http]`` keys :func:`build_client` reads, with short times for loopback."""

    timeout: float = 0.5
    max_attempts: int = 1
    max_wait: int = 120
    deadline: float = 1
    max_run: int = 3000
    max_body_mb: int = 64


class TrickleServer:
    """Accepts connections and answers each one byte at a time (the status line and headers, or the body)."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.trickled: list[int] = []  # bytes trickled, per connection
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> TrickleServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=MOST_BYTES * BYTE_EVERY + 5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            with connection:
                self._answer(connection)

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(5)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = connection.recv(4096)
            if not chunk:
                return
            received += chunk
        if self.part == "headers":
            connection.sendall(b"HTTP/1.1 200 OK\r\nX-Pad: ")
            payload = b"a" * (MOST_BYTES - 4) + b"\r\n\r\n"
        else:
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (MOST_BYTES + 2))
            payload = b'"' + b"a" * MOST_BYTES + b'"'
        self.trickled.append(0)
        for byte in payload:
            if self._stop.is_set():
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:  # the client gave up and closed: what the deadline is for
                return
            self.trickled[-1] += 1
            time.sleep(BYTE_EVERY)


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(params=["headers", "body"])
def trickle(request: pytest.FixtureRequest) -> Iterator[TrickleServer]:
    with TrickleServer(request.param) as server:
        yield server


def source_for(server: TrickleServer, settings: Settings, **options: object) -> SourceClient:
    policy = RetryPolicy(max_attempts=settings.max_attempts, max_wait=settings.max_wait, sleep=Sleeps())
    return SourceClient("slow", build_client(server.url, http=settings), policy, **options)


def test_a_trickling_server_cannot_outlast_the_request_deadline(trickle):
    with pytest.raises(RetryLater) as caught:
        source_for(trickle, Settings(timeout=0.5, deadline=1)).get_json("/api/v2/tickets.json")
    message = str(caught.value)
    assert "timed out (ReadTimeout: the request did not complete within http.deadline = 1s)" in message
    assert message.startswith("source 'slow': GET http://127.0.0.1:")
    assert len(trickle.trickled) == 1 and trickle.trickled[0] < FEW_BYTES


def test_a_spent_deadline_is_retried_like_any_timeout(trickle):
    source = source_for(trickle, Settings(timeout=0.5, deadline=1, max_attempts=2))
    with pytest.raises(RetryLater, match=r"gave up after 2 attempt\(s\)"):
        source.get("/api/v2/tickets.json")
    assert source.requests_made == 2
    assert len(trickle.trickled) == 2 and max(trickle.trickled) < FEW_BYTES
    assert len(source.policy.sleep) == 1


def test_a_write_whose_deadline_passed_is_not_sent_again(trickle):
    source = source_for(trickle, Settings(timeout=0.5, deadline=1, max_attempts=3))
    with pytest.raises(OutcomeUnknown, match="may or may not have been applied"):
        source.request("POST", "/api/v2/tickets/1/notes.json", json={"body": "credit note"})
    assert len(trickle.trickled) == 1 and trickle.trickled[0] < FEW_BYTES


def test_the_request_deadline_is_cut_to_the_time_the_run_has_left(trickle):
    # A generous http.deadline, but the run has one second left: the request gets that second.
    source = source_for(trickle, Settings(timeout=0.5, deadline=600, max_attempts=3), run_deadline=time.monotonic() + 1)
    with pytest.raises(RunBoundReached) as caught:
        source.get("/api/v2/tickets.json")
    message = str(caught.value)
    assert "the request did not complete within the run's time bound (http.max_run)" in message
    assert "Stopped this source; the next run resumes from the saved cursor" in message
    assert caught.value.exit_code == 3
    assert len(trickle.trickled) == 1 and trickle.trickled[0] < FEW_BYTES


def test_the_retry_bound_counts_the_attempts_not_only_the_waits(trickle):
    # Each attempt spends its 1 s deadline; the first backoff is 1-2 s. Counting only the waits,
    # a 2 s bound would allow a second attempt; counting the first attempt's second, it does not.
    source = source_for(trickle, Settings(timeout=0.5, deadline=1, max_attempts=5, max_wait=2))
    with pytest.raises(RetryLater) as caught:
        source.get("/api/v2/tickets.json")
    assert source.requests_made == 1 and len(trickle.trickled) == 1
    message = str(caught.value)
    assert "would pass the retry bound (http.max_wait = 2s; 0s waited already), which bounds the whole time of this request, " in message
    assert "its attempts included (1s in 1 attempt(s))" in message


def test_a_short_timeout_left_alone_gets_a_short_deadline():
    # http.timeout = "5s" with every other key at its default: each attempt is cut at 30 s, not 2m.
    client = build_client("http://127.0.0.1:9", http=HttpConfig(timeout="5s"))
    assert isinstance(client._transport, DeadlineTransport) and client._transport.deadline == 30
    client = build_client("http://127.0.0.1:9", http=HttpConfig())
    assert isinstance(client._transport, DeadlineTransport) and client._transport.deadline == 120


class Clock:
    """A monotonic clock that moves only when the client sleeps or an attempt takes its time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@respx.mock
def test_a_request_whose_attempts_each_take_their_deadline_stops_within_max_wait():
    # The reported case: every attempt trickles until its 31 s deadline, default max_wait (2m) and
    # max_attempts (5). The 4th attempt starts at 100-103 s and ends past 2m: no 5th one starts.
    clock = Clock()

    def trickled(request: httpx.Request) -> httpx.Response:
        clock.now += 31
        raise httpx.ReadTimeout("the request did not complete within http.deadline = 31s")

    route = respx.get("https://acme.example/api/v2/tickets.json").mock(side_effect=trickled)
    policy = RetryPolicy.from_config(HttpConfig(), sleep=clock.sleep, monotonic=clock.monotonic)
    source = SourceClient("slow", build_client("https://acme.example", http=HttpConfig()), policy)
    with pytest.raises(RetryLater) as caught:
        source.get("/api/v2/tickets.json")
    assert route.call_count == 4 and source.requests_made == 4
    assert clock.now - 1000 <= 120 + 31  # no attempt began past the bound; the last one ran its deadline
    assert "(http.max_wait = 120s;" in str(caught.value) and "its attempts included (124s in 4 attempt(s))" in str(caught.value)
