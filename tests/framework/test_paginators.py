"""Each paginator on its own, driven by the core's loop over respx routes: its last page, an
empty page, a repeated continuation, and a link (or a link-shaped token) to another origin."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from bridge.edges.http import RetryPolicy, SourceClient
from bridge.errors import OffOriginLink, PageBoundReached, PaginationError
from bridge.framework import (
    CursorPaginator,
    KeysetPaginator,
    NextUrlPaginator,
    OffsetPaginator,
    Paginator,
    Request,
    TokenPaginator,
    paginate,
)

BASE = "https://help.example.com"
FOREIGN = "https://harvest.example.net/steal"


def client(max_pages: int = 50) -> SourceClient:
    http = httpx.Client(base_url=BASE, headers={"Authorization": "Bearer secret-token"})
    return SourceClient("help", http, RetryPolicy(max_attempts=1, sleep=lambda s: None), max_pages=max_pages)


def walk(paginator: Paginator, request: Request | None = None, *, records: str = "items", max_pages: int = 50) -> list[list[int]]:
    """The records of every page the core's loop reads."""
    return [data.get(records) for data in paginate(client(max_pages), request or Request("/items"), paginator, records=records)]


def sent(route: respx.Route) -> list[dict[str, str]]:
    return [dict(call.request.url.params) for call in route.calls]


# -- CursorPaginator (Zendesk after_cursor -> cursor, meta.after_cursor -> page[after]) ---------


@respx.mock
def test_cursor_follows_tokens_and_stops_at_the_end_flag():
    route = respx.get(f"{BASE}/items").mock(side_effect=[
        httpx.Response(200, json={"items": [1, 2], "after_cursor": "c1", "end_of_stream": False}),
        httpx.Response(200, json={"items": [3], "after_cursor": "c2", "end_of_stream": True}),
    ])
    pages = walk(CursorPaginator(token="after_cursor", param="cursor", end="end_of_stream", drop=("start_time",)),
                 Request("/items", {"start_time": 100}))
    assert pages == [[1, 2], [3]]
    assert sent(route) == [{"start_time": "100"}, {"cursor": "c1"}]  # the continuation replaces the start


@respx.mock
def test_cursor_goes_on_through_an_empty_page_while_more_follow():
    route = respx.get(f"{BASE}/items").mock(side_effect=[
        httpx.Response(200, json={"items": [], "meta": {"has_more": True, "after_cursor": "a"}}),
        httpx.Response(200, json={"items": [7], "meta": {"has_more": False, "after_cursor": "b"}}),
    ])
    assert walk(CursorPaginator(token="meta.after_cursor", param="page[after]", more="meta.has_more")) == [[], [7]]
    assert route.call_count == 2


@respx.mock
def test_cursor_repeating_a_token_stops_the_walk():
    route = respx.get(f"{BASE}/items").mock(side_effect=[
        httpx.Response(200, json={"items": [1], "after_cursor": "A", "end_of_stream": False}),
        httpx.Response(200, json={"items": [2], "after_cursor": "B", "end_of_stream": False}),
        httpx.Response(200, json={"items": [3], "after_cursor": "A", "end_of_stream": False}),  # back to A: a cycle
    ])
    with pytest.raises(PaginationError, match="continuation 'A' a second time"):
        walk(CursorPaginator(token="after_cursor", param="cursor", end="end_of_stream"))
    assert route.call_count == 3


@respx.mock
def test_cursor_naming_the_token_it_was_asked_with_stops_at_once():
    route = respx.get(f"{BASE}/events").mock(return_value=httpx.Response(
        200, json={"items": [1], "end_time": 500, "end_of_stream": False}))
    with pytest.raises(PaginationError, match=r"continuation it was asked with \(start_time=500\)"):
        walk(CursorPaginator(token="end_time", param="start_time", end="end_of_stream"), Request("/events", {"start_time": 500}))
    assert route.call_count == 1


@respx.mock
def test_cursor_that_looks_like_a_url_is_a_parameter_never_a_request_elsewhere():
    foreign = respx.get(FOREIGN).mock(return_value=httpx.Response(200, json={}))
    route = respx.get(f"{BASE}/items").mock(side_effect=[
        httpx.Response(200, json={"items": [1], "after_cursor": FOREIGN, "end_of_stream": False}),
        httpx.Response(200, json={"items": [2], "after_cursor": "z", "end_of_stream": True}),
    ])
    assert walk(CursorPaginator(token="after_cursor", param="cursor", end="end_of_stream")) == [[1], [2]]
    assert sent(route)[1] == {"cursor": FOREIGN} and foreign.call_count == 0


@respx.mock
def test_more_without_a_continuation_is_an_error_not_a_silent_end():
    respx.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json={"items": [1], "meta": {"has_more": True}}))
    with pytest.raises(PaginationError, match="says more follow but names no continuation"):
        walk(CursorPaginator(token="meta.after_cursor", param="page[after]", more="meta.has_more"))


@respx.mock
def test_a_malformed_end_flag_is_an_error():
    respx.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json={"items": [], "after_cursor": "c", "end_of_stream": "no"}))
    with pytest.raises(PaginationError, match="end_of_stream is 'no', not true or false"):
        walk(CursorPaginator(token="after_cursor", param="cursor", end="end_of_stream"))


# -- TokenPaginator (Jira nextPageToken) ----------------------------------------------------------


@respx.mock
def test_token_in_the_json_body_until_the_last_page_omits_it():
    route = respx.post(f"{BASE}/search").mock(side_effect=[
        httpx.Response(200, json={"items": [1], "nextPageToken": "t1"}),
        httpx.Response(200, json={"items": [2], "isLast": True}),  # the last page: no token, no total
    ])
    pages = walk(TokenPaginator(in_body=True), Request("/search", method="POST", json={"jql": "project = SUP"}))
    assert pages == [[1], [2]]
    assert [json.loads(call.request.content) for call in route.calls] == [{"jql": "project = SUP"},
                                                                          {"jql": "project = SUP", "nextPageToken": "t1"}]


@respx.mock
def test_token_an_empty_page_without_a_token_is_the_end():
    route = respx.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json={"items": []}))
    assert walk(TokenPaginator()) == [[]] and route.call_count == 1


@respx.mock
def test_token_is_last_false_without_a_token_is_an_error_not_an_end():
    respx.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json={"items": [1], "isLast": False}))
    with pytest.raises(PaginationError, match="names no continuation"):
        walk(TokenPaginator())


@respx.mock
def test_token_repeated_stops_the_walk():
    respx.get(f"{BASE}/items").mock(side_effect=[
        httpx.Response(200, json={"items": [1], "nextPageToken": "same", "isLast": False}),
        httpx.Response(200, json={"items": [2], "nextPageToken": "same", "isLast": False}),
    ])
    with pytest.raises(PaginationError):
        walk(TokenPaginator())


@respx.mock
def test_token_that_looks_like_a_url_stays_a_parameter():
    foreign = respx.get(FOREIGN).mock(return_value=httpx.Response(200, json={}))
    route = respx.get(f"{BASE}/items").mock(side_effect=[
        httpx.Response(200, json={"items": [1], "nextPageToken": FOREIGN}),
        httpx.Response(200, json={"items": [2], "isLast": True}),
    ])
    walk(TokenPaginator())
    assert sent(route)[1] == {"nextPageToken": FOREIGN} and foreign.call_count == 0


# -- NextUrlPaginator (Zendesk next_page, ServiceNow Link rel="next") ----------------------------


@respx.mock
def test_next_url_from_the_body_drops_the_old_query():
    route = respx.get(f"{BASE}/items").mock(side_effect=[
        httpx.Response(200, json={"items": [1], "next_page": f"{BASE}/items?page=2&per_page=1"}),
        httpx.Response(200, json={"items": [2], "next_page": None}),
    ])
    assert walk(NextUrlPaginator(path="next_page"), Request("/items", {"per_page": 1, "sort": "id"})) == [[1], [2]]
    assert sent(route) == [{"per_page": "1", "sort": "id"}, {"page": "2", "per_page": "1"}]


@respx.mock
def test_next_url_from_the_link_header_until_there_is_no_next():
    route = respx.get(f"{BASE}/api/now/table/incident").mock(side_effect=[
        httpx.Response(200, json={"result": [1]}, headers={
            "Link": f'<{BASE}/api/now/table/incident?sysparm_offset=0>;rel="first",<{BASE}/api/now/table/incident?sysparm_offset=1>;rel="next"'}),
        httpx.Response(200, json={"result": [2]}, headers={"Link": f'<{BASE}/api/now/table/incident?sysparm_offset=0>;rel="first"'}),
    ])
    assert walk(NextUrlPaginator(rel="next"), Request("/api/now/table/incident"), records="result") == [[1], [2]]
    assert sent(route)[1] == {"sysparm_offset": "1"}


@respx.mock
def test_next_url_an_empty_page_without_next_ends():
    route = respx.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json={"items": []}))
    assert walk(NextUrlPaginator(path="next_page")) == [[]] and route.call_count == 1


@respx.mock
def test_next_url_repeated_stops_the_walk():
    respx.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json={"items": [1], "next_page": f"{BASE}/items?page=2"}))
    with pytest.raises(PaginationError):
        walk(NextUrlPaginator(path="next_page"))


@respx.mock
@pytest.mark.parametrize("elsewhere", [FOREIGN, "http://help.example.com/items?page=2", "https://help.example.com:8443/items?page=2",
                                       "//harvest.example.net/steal", "https:harvest.example.net/steal"])
def test_next_url_to_another_origin_is_never_requested(elsewhere):
    foreign = respx.route(host="harvest.example.net").mock(return_value=httpx.Response(200, json={"items": []}))
    other = respx.route(url__regex=r"^https?://help\.example\.com(:8443)?/(?!items$)").mock(return_value=httpx.Response(200, json={"items": []}))
    plain = respx.route(scheme="http").mock(return_value=httpx.Response(200, json={"items": []}))
    respx.get(f"{BASE}/items").mock(return_value=httpx.Response(200, json={"items": [1], "next_page": elsewhere}))
    with pytest.raises(OffOriginLink, match="outside the source's origin") as caught:
        walk(NextUrlPaginator(path="next_page"))
    assert foreign.call_count == other.call_count == plain.call_count == 0  # the credentials went nowhere
    assert "secret-token" not in str(caught.value)


def test_next_url_reads_the_body_or_the_header_not_both():
    with pytest.raises(ValueError, match="one of them"):
        NextUrlPaginator(path="next", rel="next")


# -- OffsetPaginator (Jira changelog startAt/isLast, JSM start/isLastPage) ------------------------


@respx.mock
def test_offset_moves_by_the_records_read_until_is_last():
    route = respx.get(f"{BASE}/changelog").mock(side_effect=[
        httpx.Response(200, json={"values": [1, 2, 3], "startAt": 0, "isLast": False}),  # the server may return fewer than asked
        httpx.Response(200, json={"values": [4], "startAt": 3, "isLast": True}),
    ])
    assert walk(OffsetPaginator(), Request("/changelog", {"maxResults": 100}), records="values") == [[1, 2, 3], [4]]
    assert sent(route) == [{"maxResults": "100"}, {"maxResults": "100", "startAt": "3"}]


@respx.mock
def test_offset_ends_when_the_total_is_reached_or_on_an_empty_page():
    with_total = respx.get(f"{BASE}/a").mock(side_effect=[
        httpx.Response(200, json={"values": [1, 2], "total": 3}),
        httpx.Response(200, json={"values": [3], "total": 3}),
    ])
    assert walk(OffsetPaginator(is_last=None), Request("/a"), records="values") == [[1, 2], [3]] and with_total.call_count == 2
    bare = respx.get(f"{BASE}/b").mock(side_effect=[
        httpx.Response(200, json={"values": [1]}),
        httpx.Response(200, json={"values": []}),
    ])
    assert walk(OffsetPaginator(is_last=None, total=None), Request("/b"), records="values") == [[1], []] and bare.call_count == 2


@respx.mock
def test_offset_empty_page_that_is_not_the_last_repeats_and_stops():
    route = respx.get(f"{BASE}/changelog").mock(side_effect=[
        httpx.Response(200, json={"values": [1], "isLast": False}),
        httpx.Response(200, json={"values": [], "isLast": False}),  # startAt would stay at 1 for ever
    ])
    with pytest.raises(PaginationError, match="'1' a second time"):
        walk(OffsetPaginator(), Request("/changelog"), records="values")
    assert route.call_count == 2


@respx.mock
def test_offset_is_a_number_on_the_source_never_a_url():
    respx.get(f"{BASE}/changelog").mock(side_effect=[
        httpx.Response(200, json={"values": [1], "isLast": False, "nextPage": FOREIGN}),  # Jira names a nextPage URL too
        httpx.Response(200, json={"values": [2], "isLast": True}),
    ])
    foreign = respx.get(FOREIGN).mock(return_value=httpx.Response(200, json={}))
    assert walk(OffsetPaginator(), Request("/changelog"), records="values") == [[1], [2]] and foreign.call_count == 0


# -- KeysetPaginator (ServiceNow sys_updated_on, sys_id) ------------------------------------------


def _keyset() -> KeysetPaginator:
    return KeysetPaginator(
        position=lambda row: (row["sys_updated_on"], row["sys_id"]),
        after=lambda request, at: request.with_params(
            sysparm_query=f"sys_updated_on>{at[0]}^NQsys_updated_on={at[0]}^sys_id>{at[1]}^ORDERBYsys_updated_on^ORDERBYsys_id"),
    )


def _row(second: int, sys_id: str) -> dict[str, str]:
    return {"sys_updated_on": f"2026-11-01 10:00:{second:02d}", "sys_id": sys_id}


@respx.mock
def test_keyset_a_short_page_is_not_the_end_only_an_empty_one_is():
    route = respx.get(f"{BASE}/api/now/table/incident").mock(side_effect=[
        httpx.Response(200, json={"result": [_row(1, "a"), _row(1, "b")]}),
        httpx.Response(200, json={"result": [_row(1, "c")]}),  # shortened by row ACLs: more may follow
        httpx.Response(200, json={"result": []}),
    ])
    pages = walk(_keyset(), Request("/api/now/table/incident", {"sysparm_limit": 2}), records="result")
    assert [len(page) for page in pages] == [2, 1, 0]
    assert sent(route)[1]["sysparm_query"].startswith("sys_updated_on>2026-11-01 10:00:01^NQsys_updated_on=2026-11-01 10:00:01^sys_id>b")
    assert sent(route)[2]["sysparm_query"].endswith("sys_id>c^ORDERBYsys_updated_on^ORDERBYsys_id")


@respx.mock
def test_keyset_a_position_that_does_not_advance_stops_the_walk():
    respx.get(f"{BASE}/t").mock(return_value=httpx.Response(200, json={"result": [_row(5, "z")]}))  # the same last row again
    with pytest.raises(PaginationError, match="a second time"):
        walk(_keyset(), Request("/t"), records="result")


@respx.mock
def test_keyset_goes_on_from_the_last_readable_row_when_the_last_is_malformed():
    route = respx.get(f"{BASE}/t").mock(side_effect=[
        httpx.Response(200, json={"result": [_row(1, "a"), {"sys_id": "broken"}]}),
        httpx.Response(200, json={"result": []}),
    ])
    walk(_keyset(), Request("/t"), records="result")
    assert sent(route)[1]["sysparm_query"].startswith("sys_updated_on>2026-11-01 10:00:01^NQsys_updated_on=2026-11-01 10:00:01^sys_id>a")


@respx.mock
def test_keyset_builds_requests_on_the_source_whatever_the_rows_say():
    foreign = respx.get(FOREIGN).mock(return_value=httpx.Response(200, json={}))
    route = respx.get(f"{BASE}/t").mock(side_effect=[
        httpx.Response(200, json={"result": [{"sys_updated_on": "2026-11-01 10:00:00", "sys_id": FOREIGN}]}),
        httpx.Response(200, json={"result": []}),
    ])
    walk(_keyset(), Request("/t"), records="result")
    assert route.call_count == 2 and foreign.call_count == 0


# -- the loop's own bound -------------------------------------------------------------------------


@respx.mock
def test_a_walk_that_never_ends_stops_at_the_page_bound():
    counter = iter(range(10**6))
    route = respx.get(f"{BASE}/items").mock(side_effect=lambda request: httpx.Response(
        200, json={"items": [], "after_cursor": f"fresh-{next(counter)}", "end_of_stream": False}))
    with pytest.raises(PageBoundReached, match="more than 7 pages"):
        walk(CursorPaginator(token="after_cursor", param="cursor", end="end_of_stream"), max_pages=7)
    assert route.call_count == 7
