"""The HTTP layer's bounds: a body's size, a run's time, and what a message may show. No test sleeps."""

from __future__ import annotations

import gzip
import json
import re
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import quote

import httpx
import pytest
import respx

from bridge.config import HttpConfig
from bridge.edges.credentials import MASK, Secret
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.errors import BadRequest, FatalSourceError, ResponseTooLarge, RetriableSourceError, RetryLater, RunBoundReached
from bridge.framework.contract import basic
from tests.conftest import SOURCE, ZD_URL

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=timezone.utc)
MIB = 1024 * 1024
TICKETS = f"{ZD_URL}/api/v2/incremental/tickets/cursor.json"


class Clock:
    """A monotonic clock that only moves when the client sleeps (or a test moves it)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_client(clock: Clock, *, max_body_mb: int = 64, run_deadline: float | None = None, **options: object) -> SourceClient:
    policy = RetryPolicy(sleep=clock.sleep, clock=lambda: NOW, monotonic=clock.monotonic)
    return SourceClient("zd", build_client(ZD_URL, http=HttpConfig()), policy, max_body_mb=max_body_mb, run_deadline=run_deadline, **options)


class Body(httpx.SyncByteStream):
    """A body of ``chunks`` pieces of ``size`` bytes, counting the pieces the client pulled."""

    def __init__(self, chunks: int, size: int = 64 * 1024) -> None:
        self.chunks, self.size, self.pulled = chunks, size, 0

    def __iter__(self) -> Iterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield b" " * self.size


class Wire(httpx.SyncByteStream):
    """A body exactly as it travels, in one piece. (respx reads an ``httpx.ByteStream`` body, decoding
    it, before the client sees it: a bomb must not go off in the mock.)"""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data


# -- the body size bound ------------------------------------------------------------------------


@respx.mock
def test_a_declared_length_past_the_bound_is_refused_before_reading(clock):
    body = Body(chunks=40)  # 2.5 MiB
    route = respx.get(TICKETS).mock(return_value=httpx.Response(200, headers={"Content-Length": str(40 * 64 * 1024)}, stream=body))
    with pytest.raises(ResponseTooLarge) as caught:
        make_client(clock, max_body_mb=1).get_json(TICKETS, params={"cursor": "c3VwZXItc2VjcmV0"})
    assert body.pulled == 0
    assert route.call_count == 1 and clock.sleeps == []  # not retried: a bigger page will not shrink
    message = str(caught.value)
    assert message.startswith(
        "source 'zd': GET https://acme.zendesk.com/api/v2/incremental/tickets/cursor.json: the response is larger "
        "than http.max_body_mb = 1 MiB (it declares 2,621,440 bytes (Content-Length)); it was not read further."
    )
    assert "c3VwZXItc2VjcmV0" not in message and "cursor=" not in message


@respx.mock
def test_an_undeclared_body_stops_being_read_at_the_bound(clock):
    body = Body(chunks=6400)  # 400 MiB if it were all read
    respx.get(TICKETS).mock(return_value=httpx.Response(200, stream=body))
    with pytest.raises(ResponseTooLarge, match=r"larger than http.max_body_mb = 1 MiB \(more than 1,048,576 bytes arrived\)"):
        make_client(clock, max_body_mb=1).get_json(TICKETS)
    assert body.pulled == 17  # 1 MiB is 16 pieces; the 17th passes it, and reading stops there


def deflate(data: bytes, wbits: int = zlib.MAX_WBITS) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


def peak_memory(call: Callable[[], object]) -> tuple[BaseException | None, int]:
    """What ``call`` raised, and the most memory Python held above the start while it ran."""
    tracemalloc.start()
    try:
        call()
    except BaseException as error:  # noqa: BLE001 - handed back to the test
        raised: BaseException | None = error
    else:
        raised = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return raised, peak


# A page that unpacks to 64 MiB, a few KiB on the wire, against a bound of 1 MiB: read whole (as
# httpx's iter_bytes unpacks each piece that arrives, in one call) it would take 64 MiB at once.
BOMB = 64 * MIB
PACKED = {"gzip": lambda data: gzip.compress(data, 9), "deflate": deflate, "raw-deflate": lambda data: deflate(data, -zlib.MAX_WBITS)}


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
@respx.mock
def test_a_compressed_body_is_bounded_by_what_it_unpacks_to_and_unpacked_in_small_pieces(clock, coding):
    bomb = PACKED[coding](bytes(BOMB))
    assert len(bomb) < BOMB // 500
    header = coding.removeprefix("raw-")
    route = respx.get(TICKETS).mock(return_value=httpx.Response(200, headers={"Content-Encoding": header}, stream=Wire(bomb)))
    source = make_client(clock, max_body_mb=1)
    raised, peak = peak_memory(lambda: source.get_json(TICKETS))
    assert isinstance(raised, ResponseTooLarge)
    assert peak < 4 * MIB, f"{peak:,} bytes held to refuse a 1 MiB-bounded body"
    said = re.search(r"\(more than 1,048,576 bytes arrived, unpacked from ([\d,]+) bytes of (\w+)\)", str(raised))
    assert said is not None and said[2] == header, str(raised)
    assert int(said[1].replace(",", "")) <= len(bomb)
    assert route.call_count == 1 and clock.sleeps == []


@pytest.mark.parametrize("header", ["gzip, gzip", "gzip,deflate", "deflate, gzip, gzip"])
@respx.mock
def test_a_stacked_content_encoding_is_refused_unread(clock, header):
    bomb = bytes(BOMB)
    for coding in reversed([part.strip() for part in header.split(",")]):
        bomb = PACKED[coding](bomb)
    route = respx.get(TICKETS).mock(return_value=httpx.Response(200, headers={"Content-Encoding": header}, stream=Wire(bomb)))
    source = make_client(clock, max_body_mb=1)
    raised, peak = peak_memory(lambda: source.get_json(TICKETS, params={"cursor": "c3VwZXItc2VjcmV0"}))
    assert isinstance(raised, FatalSourceError) and raised.source == "zd"
    message = str(raised)
    assert message.startswith(
        "source 'zd': GET https://acme.zendesk.com/api/v2/incremental/tickets/cursor.json: the response has "
        f'Content-Encoding: "{header}", more than one coding stacked, which sla-bridge does not unpack'
    )
    assert "it was not read" in message and "check sources.zd.url" in message and "c3VwZXItc2VjcmV0" not in message
    assert route.call_count == 1 and clock.sleeps == []  # not retried: the server will send it again
    assert peak < 4 * MIB, f"{peak:,} bytes held to refuse a stacked coding"


@pytest.mark.parametrize("header", ["br", "zstd", "compress", "gzip, br"])
@respx.mock
def test_a_coding_not_asked_for_is_refused(clock, header):
    respx.get(TICKETS).mock(return_value=httpx.Response(200, headers={"Content-Encoding": header}, stream=Wire(b"\x8b\x00\x80{}\x03")))
    with pytest.raises(FatalSourceError, match=f'Content-Encoding: "{header}", ') as caught:
        make_client(clock).get_json(TICKETS)
    assert "Accept-Encoding: gzip, deflate" in str(caught.value)


@respx.mock
def test_only_the_codings_unpacked_here_are_asked_for(clock):
    route = respx.get(TICKETS).mock(return_value=httpx.Response(200, json={}))
    make_client(clock).get_json(TICKETS)
    assert route.calls.last.request.headers["Accept-Encoding"] == "gzip, deflate"


@pytest.mark.parametrize("coding", ["gzip", "x-gzip", "deflate", "raw-deflate", "identity", "GZIP", "identity, gzip"])
@respx.mock
def test_one_coding_unpacks_as_before(clock, coding):
    page = json.dumps({"tickets": [{"id": n, "subject": "x" * 100} for n in range(5000)]}).encode()  # several pieces
    pack = PACKED.get(coding.lower().removeprefix("x-").removeprefix("identity, ") or "gzip", lambda data: data)
    body = page if coding == "identity" else pack(page)
    respx.get(TICKETS).mock(return_value=httpx.Response(200, headers={"Content-Encoding": coding.removeprefix("raw-")}, stream=Wire(body)))
    response, data = make_client(clock, max_body_mb=1).fetch("GET", TICKETS)
    assert response.content == page and len(data["tickets"]) == 5000
    assert "Content-Encoding" not in response.headers


@respx.mock
def test_a_corrupt_compressed_body_is_retried_like_a_broken_transfer(clock):
    route = respx.get(TICKETS).mock(return_value=httpx.Response(200, headers={"Content-Encoding": "gzip"}, stream=Wire(b"\x1f\x8b not gzip"))
    )
    with pytest.raises(RetryLater, match=r"could not be completed \(DecodingError: the gzip body could not be unpacked"):
        make_client(clock).get_json(TICKETS)
    assert route.call_count == 5


@respx.mock
def test_a_body_within_the_bound_reads_as_before(clock):
    page = json.dumps({"tickets": [{"id": 1}], "end_of_stream": True}).encode()
    respx.get(TICKETS).mock(
        return_value=httpx.Response(200, headers={"Content-Encoding": "gzip", "X-Rate-Limit-Remaining": "9"}, content=gzip.compress(page))
    )
    response, data = make_client(clock, max_body_mb=1).fetch("GET", TICKETS)
    assert data == {"tickets": [{"id": 1}], "end_of_stream": True}
    assert response.headers["X-Rate-Limit-Remaining"] == "9"
    assert response.content == page and response.request.url.path == "/api/v2/incremental/tickets/cursor.json"


# -- the run's time bound -------------------------------------------------------------------------


@respx.mock
def test_nothing_is_sent_once_the_run_has_used_its_time(clock):
    route = respx.get(TICKETS).mock(return_value=httpx.Response(200, json={}))
    with pytest.raises(RunBoundReached) as caught:
        make_client(clock, run_deadline=clock.now).get_json(TICKETS, params={"cursor": "abc"})
    assert route.call_count == 0
    assert caught.value.exit_code == 3
    assert str(caught.value) == (
        "source 'zd': GET https://acme.zendesk.com/api/v2/incremental/tickets/cursor.json not sent; the run has used "
        "its time bound (http.max_run). Stopped this source; the next run resumes from the saved cursor"
    )


@respx.mock
def test_a_retry_wait_that_would_pass_the_run_bound_is_not_begun(clock):
    route = respx.get(TICKETS).mock(return_value=httpx.Response(503, headers={"Retry-After": "50"}))
    with pytest.raises(RunBoundReached) as caught:
        make_client(clock, run_deadline=clock.now + 30).get_json(TICKETS)
    assert route.call_count == 1 and clock.sleeps == []
    message = str(caught.value)
    assert "answered 503 Service Unavailable; waiting 50s more would pass the run's time bound (http.max_run)" in message
    assert message.endswith("the next run resumes from the saved cursor")


@respx.mock
def test_retries_go_on_while_the_run_has_time(clock):
    route = respx.get(TICKETS).mock(side_effect=[httpx.Response(503, headers={"Retry-After": "20"}), httpx.Response(200, json={"ok": 1})])
    assert make_client(clock, run_deadline=clock.now + 30).get_json(TICKETS) == {"ok": 1}
    assert route.call_count == 2 and clock.sleeps == [20.0]


@respx.mock
def test_a_backoff_that_would_pass_the_run_bound_is_not_begun(clock):
    route = respx.get(TICKETS).mock(return_value=httpx.Response(502))
    with pytest.raises(RunBoundReached, match="would pass the run's time bound"):
        make_client(clock, run_deadline=clock.now + 0.5).get_json(TICKETS)  # the first backoff is 1-2 s
    assert route.call_count == 1 and clock.sleeps == []


@respx.mock
def test_a_pacing_pause_that_would_pass_the_run_bound_is_not_begun(clock):
    route = respx.get(TICKETS).mock(return_value=httpx.Response(200, json={}))
    source = make_client(clock, run_deadline=clock.now + 60, pace=lambda response: 100.0)
    source.policy = RetryPolicy(max_wait=300, sleep=clock.sleep, clock=lambda: NOW, monotonic=clock.monotonic)
    source.get_json(TICKETS)
    with pytest.raises(RunBoundReached, match=r"the rate-limit budget is spent for 100s; waiting 100s more would pass the run's time bound"):
        source.get_json(TICKETS)
    assert route.call_count == 1 and clock.sleeps == []


def test_open_connector_hands_the_run_deadline_to_the_source(write_config, monkeypatch):
    from bridge.config import load_config
    from bridge.pipeline.connect import open_connector

    monkeypatch.setenv("ZD_TOKEN", "tok-123456")
    config = load_config(write_config(SOURCE))
    connector = open_connector(config, "zd", run_deadline=1234.5)
    try:
        assert connector.http.run_deadline == 1234.5
        assert connector.http.max_body_mb == config.http.max_body_mb
    finally:
        connector.http.client.close()


# -- the source's clock ---------------------------------------------------------------------------


@respx.mock
def test_server_time_is_the_last_date_plus_the_time_since(clock):
    said = NOW - timedelta(minutes=7)  # the helpdesk's clock, seven minutes behind ours
    respx.get(TICKETS).mock(
        side_effect=[
            httpx.Response(200, json={}),
            httpx.Response(200, json={}, headers={"Date": format_datetime(said, usegmt=True)}),
            httpx.Response(200, json={}, headers={"Date": "yesterday-ish"}),
        ]
    )
    source = make_client(clock)
    assert source.server_time() is None
    source.get_json(TICKETS)
    assert source.server_time() is None  # no Date yet
    source.get_json(TICKETS)
    clock.now += 30
    assert source.server_time() == said + timedelta(seconds=30)
    source.get_json(TICKETS)  # an unusable Date leaves the last good one
    assert source.server_time() == said + timedelta(seconds=30)


@respx.mock
def test_an_error_response_still_tells_the_source_time(clock):
    respx.get(TICKETS).mock(return_value=httpx.Response(401, headers={"Date": "Tue, 24 Nov 2026 11:59:00 GMT"}))
    source = make_client(clock)
    with pytest.raises(Exception, match="credentials were refused"):
        source.get_json(TICKETS)
    assert source.server_time() == datetime(2026, 11, 24, 11, 59, tzinfo=timezone.utc)


# -- what messages may show -----------------------------------------------------------------------

BLOB_USER, TOKEN = "bot@acme.example", "zd-secret-4f8a9c21e7"


@pytest.mark.parametrize("encode", [lambda blob: blob, lambda blob: quote(blob, safe="")], ids=["raw", "url-encoded"])
@respx.mock
def test_a_redirect_echoing_the_credentials_shows_neither_them_nor_its_query(clock, encode):
    import base64

    blob = base64.b64encode(f"{BLOB_USER}:{TOKEN}".encode()).decode()
    basic(BLOB_USER, Secret(TOKEN, "environment variable ZD_TOKEN"))
    location = f"https://acme.zendesk.com/access/{encode(blob)}?session={encode(blob)}&next=%2F"
    respx.get(TICKETS).mock(return_value=httpx.Response(302, headers={"Location": location}))
    with pytest.raises(BadRequest) as caught:
        make_client(clock).get_json(TICKETS)
    message = str(caught.value)
    assert blob not in message and quote(blob, safe="") not in message and blob[:12] not in message
    assert f"to https://acme.zendesk.com/access/{MASK}: check sources.zd.url" in message
    assert "session" not in message


@respx.mock
def test_a_timed_out_next_page_link_shows_no_query_string(clock):
    link = f"{TICKETS}?cursor=c2VjcmV0LWN1cnNvcg&api_token=tok-abc"
    respx.get(TICKETS).mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(RetryLater) as caught:
        make_client(clock).get_json(link)
    message = str(caught.value)
    assert "GET https://acme.zendesk.com/api/v2/incremental/tickets/cursor.json timed out (ReadTimeout: slow)" in message
    assert "cursor=" not in message and "tok-abc" not in message


@respx.mock
def test_a_url_with_user_info_shows_none(clock):
    respx.get(TICKETS).mock(side_effect=httpx.ConnectError("refused"))
    source = make_client(clock)
    source.policy = RetryPolicy(max_attempts=1, sleep=clock.sleep, clock=lambda: NOW, monotonic=clock.monotonic)
    with pytest.raises(RetriableSourceError) as caught:
        source.get_json("https://bot:hunter22@acme.zendesk.com/api/v2/incremental/tickets/cursor.json")
    assert "hunter22" not in str(caught.value) and "bot:" not in str(caught.value)


def test_a_response_the_transport_already_read_is_kept_and_bounded(clock):
    # httpx.MockTransport (the connector conformance kit) hands back responses httpx has read.
    large = httpx.Response(200, content=b" " * (2 * MIB))
    del large.headers["Content-Length"]  # as a chunked body arrives
    pages = {"small": httpx.Response(200, json={"ok": 1}), "large": large}
    transport = httpx.MockTransport(lambda request: pages[request.url.path.strip("/")])
    policy = RetryPolicy(sleep=clock.sleep, clock=lambda: NOW, monotonic=clock.monotonic)
    source = SourceClient("zd", build_client(ZD_URL, http=HttpConfig(), transport=transport), policy, max_body_mb=1)
    assert source.get_json("/small") == {"ok": 1}
    with pytest.raises(ResponseTooLarge, match=r"\(more than 1,048,576 bytes arrived\)"):
        source.get_json("/large")
