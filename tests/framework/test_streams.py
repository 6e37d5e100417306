"""The core's stream loop: quarantine for any reason, the cursor rules, resuming, look-ups."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
import respx

from bridge.edges.http import RetryPolicy, SourceClient
from bridge.errors import CursorRefused, PageBoundReached, PaginationError, RetriableSourceError
from bridge.framework import CursorPaginator, FromToken, FromWatermark, Request, Stream, TokenPaginator, Watermark, epoch_seconds, read_stream
from bridge.model import QuarantinedRecord, Ticket, TicketEvent

BASE = "https://help.example.com"
NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
HORIZON = datetime(2026, 8, 1, tzinfo=timezone.utc)


def client(max_pages: int = 20) -> SourceClient:
    return SourceClient("help", httpx.Client(base_url=BASE), RetryPolicy(max_attempts=1, sleep=lambda s: None), max_pages=max_pages)


def ticket_of(raw, context) -> list[Ticket]:
    at = datetime.fromisoformat(raw["updated"])
    return [Ticket("help", "helpful", str(raw["id"]), f"H-{raw['id']}", raw.get("title", ""), raw["status"], raw["status"], at, at)]


def stream(**changes) -> Stream:
    fields = {
        "name": "tickets",
        "request": Request("/tickets"),
        "paginator": lambda: CursorPaginator(token="next", param="cursor", end="done"),
        "resume": FromToken(lambda h: {"since": int(h.timestamp())}),
        "records": "tickets",
        "normalise": ticket_of,
        **changes,
    }
    return Stream(**fields)


def raw(number: int, status: str = "open", updated: str = "2026-10-01T10:00:00+00:00") -> dict:
    return {"id": number, "status": status, "updated": updated}


def read(s: Stream, cursor: str | None = None, *, now: datetime = NOW, max_pages: int = 20) -> list:
    return list(read_stream(s, client(max_pages), cursor=cursor, horizon=HORIZON, now=now))


@respx.mock
def test_a_record_that_fails_for_any_reason_is_quarantined_and_the_page_goes_on():
    respx.get(f"{BASE}/tickets").mock(return_value=httpx.Response(200, json={"done": True, "next": "c1", "tickets": [
        raw(1),
        {"id": 2, "status": "open", "updated": 1790000000},  # TypeError in fromisoformat
        {"id": 3, "status": "open"},  # KeyError
        "not even an object",  # TypeError on indexing
        raw(4),
    ]}))
    [page] = read(stream())
    assert [t.external_id for t in page.tickets] == ["1", "4"]
    assert [(q.record_id, q.reason.split(":")[0]) for q in page.quarantined] == [("2", "TypeError"), ("3", "KeyError"), ("?", "TypeError")]
    assert page.quarantined[2].raw == "not even an object"  # the raw record is kept, nothing lost
    assert page.cursor == "c1"


@respx.mock
def test_records_that_are_not_a_list_quarantine_the_page_and_the_walk_goes_on():
    route = respx.get(f"{BASE}/tickets").mock(side_effect=[
        httpx.Response(200, json={"tickets": "garbled", "next": "c1", "done": False}),
        httpx.Response(200, json={"tickets": [raw(5)], "next": "c2", "done": True}),
    ])
    first, second = read(stream())
    assert first.tickets == [] and len(first.quarantined) == 1
    assert "the page's records (tickets) are a str, not a list" in first.quarantined[0].reason
    assert first.quarantined[0].raw["tickets"] == "garbled" and first.cursor == "c1"
    assert [t.external_id for t in second.tickets] == ["5"] and route.call_count == 2


@respx.mock
def test_the_first_request_starts_at_the_horizon_and_a_saved_cursor_resumes():
    route = respx.get(f"{BASE}/tickets").mock(return_value=httpx.Response(200, json={"tickets": [], "next": "c9", "done": True}))
    read(stream())
    read(stream(), cursor="c4")
    assert [dict(call.request.url.params) for call in route.calls] == [{"since": str(int(HORIZON.timestamp()))}, {"cursor": "c4"}]


@respx.mock
def test_the_last_pages_token_is_saved_and_absent_tokens_keep_the_cursor():
    respx.get(f"{BASE}/tickets").mock(side_effect=[
        httpx.Response(200, json={"tickets": [raw(1)], "next": "c1", "done": False}),
        httpx.Response(200, json={"tickets": [raw(2)], "done": True}),
    ])
    pages = read(stream(), cursor="c0")
    assert [(p.cursor, p.done) for p in pages] == [("c1", False), ("c1", True)]


@respx.mock
def test_a_cursor_beyond_now_is_refused_and_the_page_is_not_kept():
    far = int(datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp())
    respx.get(f"{BASE}/events").mock(side_effect=[
        httpx.Response(200, json={"events": [], "end_time": int((NOW - timedelta(hours=1)).timestamp()), "end_of_stream": False}),
        httpx.Response(200, json={"events": [], "end_time": far, "end_of_stream": False}),
    ])
    events = stream(name="events", request=Request("/events"), records="events", normalise=lambda raw, ctx: [],
                    paginator=lambda: CursorPaginator(token="end_time", param="start_time", end="end_of_stream"),
                    resume=FromToken(lambda h: {"start_time": int(h.timestamp())}, instant=epoch_seconds))
    walk = read_stream(events, client(), cursor=None, horizon=HORIZON, now=NOW)
    first = next(walk)
    with pytest.raises(CursorRefused, match="2100-01-01 00:00:00 UTC, beyond now"):
        next(walk)
    assert first.cursor == str(int((NOW - timedelta(hours=1)).timestamp()))  # only the sane page came out


@respx.mock
def test_a_cursor_a_little_ahead_of_our_clock_is_accepted():
    ahead = int((NOW + timedelta(minutes=2)).timestamp())
    respx.get(f"{BASE}/events").mock(return_value=httpx.Response(200, json={"events": [], "end_time": ahead, "end_of_stream": True}))
    events = stream(name="events", request=Request("/events"), records="events", normalise=lambda raw, ctx: [],
                    paginator=lambda: CursorPaginator(token="end_time", param="start_time", end="end_of_stream"),
                    resume=FromToken(lambda h: {"start_time": int(h.timestamp())}, instant=epoch_seconds))
    assert [p.cursor for p in read(events)] == [str(ahead)]


@respx.mock
def test_the_page_bound_stops_a_stream_with_a_resumable_error():
    counter = iter(range(1000))
    route = respx.get(f"{BASE}/tickets").mock(side_effect=lambda request: httpx.Response(
        200, json={"tickets": [], "next": f"n{next(counter)}", "done": False}))
    walk = read_stream(stream(), client(max_pages=4), cursor=None, horizon=HORIZON, now=NOW)
    pages = []
    with pytest.raises(PageBoundReached, match=r"read 4 pages this run \(http.max_pages\).*resumes from the saved cursor"):
        pages.extend(walk)
    assert route.call_count == 4 and pages[-1].cursor == "n3"  # each page came out with its cursor first


@respx.mock
def test_a_repeat_names_the_source_the_stream_and_what_it_means():
    respx.get(f"{BASE}/tickets").mock(return_value=httpx.Response(200, json={"tickets": [], "next": "same", "done": False}))
    with pytest.raises(PaginationError) as caught:
        read(stream(on_repeat="more than 1,000 changes share one second"))
    assert str(caught.value).startswith("source 'help': stream 'tickets': ")
    assert caught.value.source == "help" and "(more than 1,000 changes share one second)" in str(caught.value)


@respx.mock
def test_prepare_runs_once_before_the_first_request_and_context_once_per_page():
    calls: list[str] = []
    respx.get(f"{BASE}/tickets").mock(side_effect=lambda request: (calls.append("request"), httpx.Response(
        200, json={"tickets": [raw(1)], "next": f"c{len(calls)}", "done": len(calls) > 3}))[1])
    read(stream(prepare=lambda: calls.append("prepare"), context=lambda data: calls.append("context")))
    assert calls == ["prepare", "request", "context", "request", "context"]


@respx.mock
def test_expand_adds_history_to_the_page_that_brought_its_tickets():
    respx.get(f"{BASE}/tickets").mock(return_value=httpx.Response(200, json={"tickets": [raw(1), raw(2)], "next": "c", "done": True}))
    seen: list[list[str]] = []

    def history(tickets: list[Ticket]) -> list[TicketEvent]:
        seen.append([t.id for t in tickets])
        return [TicketEvent(t.id, "s1", "status", t.created_at, None, "open") for t in tickets]

    [page] = read(stream(expand=history))
    assert seen == [["help:1", "help:2"]]
    assert [(e.ticket_id, e.kind) for e in page.events] == [("help:1", "status"), ("help:2", "status")]


@respx.mock
def test_a_ticket_whose_expanded_history_cannot_be_read_leaves_the_page_quarantined():
    respx.get(f"{BASE}/tickets").mock(return_value=httpx.Response(200, json={"tickets": [raw(1), raw(2)], "next": "c", "done": True}))

    def history(tickets: list[Ticket]) -> list[TicketEvent | QuarantinedRecord]:
        return [TicketEvent("help:1", "s1", "status", NOW, None, "open"), TicketEvent("help:2", "s1", "status", NOW, None, "open"),
                QuarantinedRecord("help", "2", "history unreadable", {"changelog": "?"})]

    [page] = read(stream(expand=history))
    assert [t.id for t in page.tickets] == ["help:1"]  # not judged without its history
    assert [e.ticket_id for e in page.events] == ["help:1"]
    assert [(q.record_id, q.reason) for q in page.quarantined] == [("2", "history unreadable")]


@pytest.mark.parametrize("where", ["context", "normalise"])
@respx.mock
def test_a_request_that_fails_while_reading_a_page_stops_the_source_and_quarantines_nothing(where: str):
    respx.get(f"{BASE}/tickets").mock(return_value=httpx.Response(200, json={"tickets": [raw(1)], "next": "c", "done": True}))

    def look_up(*args: object) -> list[Ticket]:
        raise RetriableSourceError("GET /agents timed out", source="help")

    with pytest.raises(RetriableSourceError, match="timed out"):
        read(stream(**{where: look_up}))


# -- watermarks: coarse filters read again with an overlap ----------------------------------------


def test_a_watermark_round_trips_and_orders_by_instant_then_key():
    mark = Watermark(datetime(2026, 11, 1, 10, 0, 45, 123000, tzinfo=timezone.utc), "SUP-9")
    assert Watermark.decode(mark.encode()) == mark
    assert mark.advanced(mark.at, "SUP-10") == Watermark(mark.at, "SUP-9")  # "SUP-10" < "SUP-9" as text: no move
    assert mark.advanced(mark.at + timedelta(seconds=1), "A").key == "A"
    with pytest.raises(ValueError, match="not a saved watermark"):
        Watermark.decode("c0ffee")


def test_the_lower_bound_is_floored_to_the_filter_then_overlapped():
    mark = Watermark(datetime(2026, 11, 1, 10, 0, 45, tzinfo=timezone.utc))
    minute = mark.lower_bound(overlap=timedelta(minutes=5), granularity=timedelta(minutes=1))
    assert minute == datetime(2026, 11, 1, 9, 55, tzinfo=timezone.utc)
    assert mark.lower_bound(overlap=timedelta(seconds=2)) == datetime(2026, 11, 1, 10, 0, 43, tzinfo=timezone.utc)


def _watermarked() -> Stream:
    return Stream(
        "issues", Request("/search", method="POST", json={"maxResults": 2}),
        paginator=lambda: TokenPaginator(in_body=True),
        resume=FromWatermark(position=lambda r: (datetime.fromisoformat(r["updated"]), str(r["id"])),
                             since=lambda request, at: request.with_json(jql=f"updated >= {int(at.timestamp() * 1000)} ORDER BY updated, id"),
                             overlap=timedelta(minutes=1), granularity=timedelta(minutes=1)),
        records="issues", normalise=ticket_of,
    )


@respx.mock
def test_a_watermark_stream_saves_the_greatest_record_and_restarts_before_it():
    import json

    route = respx.post(f"{BASE}/search").mock(side_effect=[
        httpx.Response(200, json={"issues": [raw(1, updated="2026-10-01T10:00:05+00:00"), raw(2, updated="2026-10-01T10:00:30+00:00")],
                                  "nextPageToken": "t1"}),
        httpx.Response(200, json={"issues": [raw(3, updated="2026-10-01T10:00:30+00:00")], "isLast": True}),
        httpx.Response(200, json={"issues": [], "isLast": True}),
    ])
    pages = read(_watermarked())
    assert [Watermark.decode(p.cursor) for p in pages] == [
        Watermark(datetime(2026, 10, 1, 10, 0, 30, tzinfo=timezone.utc), "2"),
        Watermark(datetime(2026, 10, 1, 10, 0, 30, tzinfo=timezone.utc), "3"),  # same instant: the key breaks the tie
    ]
    read(_watermarked(), cursor=pages[-1].cursor)  # the next run
    bodies = [json.loads(call.request.content) for call in route.calls]
    assert bodies[0]["jql"] == f"updated >= {int(HORIZON.timestamp() * 1000)} ORDER BY updated, id"
    assert bodies[1]["nextPageToken"] == "t1"
    # 10:00:30 floored to the minute, minus a minute's overlap: everything sharing that minute is read again
    assert bodies[2]["jql"] == f"updated >= {int(datetime(2026, 10, 1, 9, 59, tzinfo=timezone.utc).timestamp() * 1000)} ORDER BY updated, id"
    assert "nextPageToken" not in bodies[2]  # tokens are for one walk only


@respx.mock
def test_a_record_from_the_future_is_set_aside_and_does_not_move_the_watermark():
    """One record dated 2100 must not block the stream until 2100: it is quarantined, the rest goes on."""
    respx.post(f"{BASE}/search").mock(return_value=httpx.Response(200, json={"issues": [
        raw(1, updated="2026-10-01T10:00:00+00:00"), raw(2, updated="2100-01-01T00:00:00+00:00")], "isLast": True}))
    [page] = read(_watermarked())
    assert [t.external_id for t in page.tickets] == ["1"]
    assert [(q.record_id, q.reason) for q in page.quarantined] == [("2", "changed at 2100-01-01 00:00:00 UTC, beyond now: not trusted")]
    assert Watermark.decode(page.cursor) == Watermark(datetime(2026, 10, 1, 10, tzinfo=timezone.utc), "1")


# -- found in review ------------------------------------------------------------------------------


@respx.mock
def test_now_in_the_past_does_not_refuse_what_changed_since(monkeypatch):
    """--now 2026-11-01 on a later day (a month-end re-run), or a first pull longer than the skew:
    the limit is this machine's clock, not the instant being evaluated."""
    later = int((NOW + timedelta(days=3)).timestamp())
    respx.get(f"{BASE}/events").mock(return_value=httpx.Response(200, json={"events": [], "end_time": later, "end_of_stream": True}))
    events = stream(name="events", request=Request("/events"), records="events", normalise=lambda raw, ctx: [],
                    paginator=lambda: CursorPaginator(token="end_time", param="start_time", end="end_of_stream"),
                    resume=FromToken(lambda h: {"start_time": int(h.timestamp())}, instant=epoch_seconds))
    http = client()
    http.policy = RetryPolicy(max_attempts=1, sleep=lambda s: None, clock=lambda: NOW + timedelta(days=4))
    assert [p.cursor for p in read_stream(events, http, cursor=None, horizon=HORIZON, now=NOW)] == [str(later)]


@respx.mock
def test_a_time_cursor_that_would_move_back_is_refused():
    respx.get(f"{BASE}/events").mock(return_value=httpx.Response(200, json={"events": [], "end_time": 0, "end_of_stream": True}))
    events = stream(name="events", request=Request("/events"), records="events", normalise=lambda raw, ctx: [],
                    paginator=lambda: CursorPaginator(token="end_time", param="start_time", end="end_of_stream"),
                    resume=FromToken(lambda h: {"start_time": int(h.timestamp())}, instant=epoch_seconds))
    saved = str(int((NOW - timedelta(days=1)).timestamp()))
    with pytest.raises(CursorRefused, match="back to 1970-01-01"):
        read(events, cursor=saved)  # it would re-read all history from 1970: an hour of export requests


@respx.mock
def test_when_a_pages_shared_records_fail_each_record_is_kept_aside_and_paging_goes_on():
    route = respx.get(f"{BASE}/tickets").mock(side_effect=[
        httpx.Response(200, json={"tickets": [raw(1), raw(2)], "next": "c1", "done": False}),
        httpx.Response(200, json={"tickets": [raw(3)], "next": "c2", "done": True}),
    ])
    calls = iter([ValueError("organisation id [1] is not an id"), None])

    def names(data):
        error = next(calls)
        if error:
            raise error

    first, second = read(stream(context=names))
    assert first.tickets == [] and [q.record_id for q in first.quarantined] == ["1", "2"]  # nothing lost, each kept
    assert "shared records cannot be read (organisation id [1] is not an id)" in first.quarantined[0].reason
    assert [t.external_id for t in second.tickets] == ["3"] and route.call_count == 2


@respx.mock
def test_a_lost_page_stops_a_paginator_that_needs_its_records_and_keeps_the_cursor():
    from bridge.framework import KeysetPaginator

    route = respx.get(f"{BASE}/t").mock(return_value=httpx.Response(200, json={"result": "oops"}))
    keyset = stream(request=Request("/t"), records="result", resume=FromToken(lambda h: {}),
                    paginator=lambda: KeysetPaginator(position=lambda r: (r["u"], r["id"]), after=lambda q, at: q))
    walk = read_stream(keyset, client(), cursor=None, horizon=HORIZON, now=NOW)
    page = next(walk)
    with pytest.raises(PaginationError, match="needs them to find the next page"):
        next(walk)
    assert page.cursor is None and len(page.quarantined) == 1 and route.call_count == 1  # None: the saved cursor stays


@respx.mock
def test_a_records_function_that_raises_quarantines_the_page_not_the_source():
    respx.get(f"{BASE}/tickets").mock(return_value=httpx.Response(200, json={"weird": 1, "next": "c1", "done": True}))
    [page] = read(stream(records=lambda data: data["tickets"]))
    assert "the page's records cannot be found (KeyError: 'tickets')" in page.quarantined[0].reason and page.cursor == "c1"


def test_paginate_refuses_a_counting_paginator_without_records():
    from bridge.framework import OffsetPaginator, paginate

    with pytest.raises(ValueError, match="pass records= to paginate"):
        next(paginate(client(), Request("/x"), OffsetPaginator()))


@respx.mock
def test_a_coarse_filter_may_return_records_a_little_older_than_the_horizon():
    """JQL floors to the minute: a horizon of 10:00:45 asks for 10:00 and gets 10:00:10 too."""
    respx.post(f"{BASE}/search").mock(return_value=httpx.Response(200, json={"issues": [
        raw(1, updated=(HORIZON - timedelta(seconds=35)).isoformat())], "isLast": True}))
    [page] = read(_watermarked())
    assert [t.external_id for t in page.tickets] == ["1"] and page.cursor is not None


@respx.mock
def test_the_streams_explanation_is_given_for_a_repeat_only():
    respx.get(f"{BASE}/tickets").mock(return_value=httpx.Response(200, json={"tickets": [], "done": False}))
    with pytest.raises(PaginationError) as caught:
        read(stream(on_repeat="more than 1,000 changes share one second"))
    assert "names no continuation" in str(caught.value) and "share one second" not in str(caught.value)
