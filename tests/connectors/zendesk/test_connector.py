"""The Zendesk connector against canned responses (respx): paging, resuming, quirks, writes."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import httpx
import pytest
import respx

from bridge.config import load_config
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.edges.store import Store
from bridge.errors import CursorRefused, OffOriginLink, PageBoundReached, PaginationError, RetryLater
from bridge.model import Note, Ticket, WritebackPlan
from connectors.zendesk import ZendeskConnector
from tests.conftest import pages

URL = "https://acme.zendesk.com"
NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
EXPORT = f"{URL}/api/v2/incremental/tickets/cursor.json"
EVENTS = f"{URL}/api/v2/incremental/ticket_events.json"
USERS = f"{URL}/api/v2/users.json"
GROUPS = f"{URL}/api/v2/groups.json"


def raw_ticket(number: int, status: str = "open", updated: str = "2026-10-01T10:00:00Z", **extra) -> dict:
    return {"id": number, "subject": f"T{number}", "status": status, "priority": "high", "type": "incident",
            "organization_id": 7, "group_id": 3, "requester_id": 500, "assignee_id": 100, "tags": ["vip"],
            "custom_fields": [{"id": 11, "value": "email"}], "created_at": "2026-10-01T09:00:00Z",
            "updated_at": updated, **extra}


def ticket(number: int = 5, version: str | None = "2026-10-01T10:00:00Z", tags: list[str] | None = None) -> Ticket:
    """The ticket as pulled: its version stamp and tags are what a safe write sends back."""
    return Ticket("zd", "zendesk", str(number), f"#{number}", "T", "open", "open", NOW, NOW, version=version, tags=list(tags or []))


def page(tickets: list, cursor: str, end: bool) -> dict:
    return {"tickets": tickets, "after_cursor": cursor, "after_url": f"{EXPORT}?cursor={cursor}", "before_cursor": None,
            "before_url": None, "end_of_stream": end, "organizations": [{"id": 7, "name": "ACME Ltd"}], "groups": [{"id": 3, "name": "2nd line"}]}


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def connector(monkeypatch, sleeps):
    monkeypatch.setenv("ZD_TOKEN", "tok-abcdef")
    config = load_config(data={"sources": {"zd": {
        "system": "zendesk", "url": URL, "start": "2026-09-01",
        "auth": {"email": "bot@acme.example", "token_env": "ZD_TOKEN"},
        "statuses": {"hold": "waiting_third_party"},
        "fields": {"service": "custom_field:11"},
    }}}, environ=False)
    client = build_client(URL, http=config.http, auth=ZendeskConnector.auth(config.sources["zd"], config.source_secret("zd")))
    return ZendeskConnector("zd", config.sources["zd"], SourceClient("zd", client, RetryPolicy(sleep=sleeps.append, clock=lambda: NOW)))


def no_history():
    respx.get(USERS).mock(return_value=httpx.Response(200, json={"users": [{"id": 100}], "meta": {"has_more": False}}))
    respx.get(EVENTS).mock(return_value=httpx.Response(200, json={"ticket_events": [], "count": 0, "end_time": 1790000000,
                                                                  "next_page": None, "end_of_stream": True}))


@respx.mock
def test_pages_follow_after_cursor_and_each_carries_its_cursor(connector):
    no_history()
    export = respx.get(EXPORT).mock(side_effect=[
        httpx.Response(200, json=page([raw_ticket(1), raw_ticket(2)], "c1", False)),
        httpx.Response(200, json=page([raw_ticket(3)], "c2", True)),
    ])
    walked = [p for p in pages(connector, {}, now=NOW) if p.stream == "tickets"]
    assert [(len(p.tickets), p.cursor, p.done) for p in walked] == [(2, "c1", False), (1, "c2", True)]
    first, second = export.calls[0].request.url.params, export.calls[1].request.url.params
    assert first["start_time"] == str(int(datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp()))
    assert (first["per_page"], first["include"]) == ("1000", "organizations,groups")
    assert second["cursor"] == "c1" and "start_time" not in second  # never a recomputed start time


@respx.mock
def test_tickets_are_normalised_with_names_from_sideloads(connector):
    no_history()
    respx.get(EXPORT).mock(return_value=httpx.Response(200, json=page([raw_ticket(1, status="hold")], "c1", True)))
    [ticket] = next(pages(connector, {}, now=NOW)).tickets
    assert (ticket.id, ticket.key, ticket.url) == ("zd:1", "#1", f"{URL}/agent/tickets/1")
    assert (ticket.status, ticket.status_raw, ticket.priority) == ("waiting_third_party", "hold", "p2")
    assert (ticket.customer, ticket.group, ticket.service, ticket.type) == ("ACME Ltd", "2nd line", "email", "incident")
    assert (ticket.tags, ticket.version) == (["vip"], "2026-10-01T10:00:00Z")


@respx.mock
def test_a_saved_cursor_resumes_where_a_failed_run_stopped(connector, tmp_path):
    no_history()
    respx.get(EXPORT, params={"start_time": str(int(datetime(2026, 9, 1, tzinfo=timezone.utc).timestamp()))}).mock(
        return_value=httpx.Response(200, json=page([raw_ticket(1), raw_ticket(2)], "c1", False)))
    respx.get(EXPORT, params={"cursor": "c1"}).mock(side_effect=[
        httpx.Response(401, json={"error": "Couldn't authenticate you"}),  # the run dies mid-stream
        httpx.Response(200, json=page([raw_ticket(3)], "c2", True)),
    ])
    with Store.open(tmp_path / "s.db") as store:
        with pytest.raises(Exception, match="credentials were refused"):
            for p in pages(connector, {}, now=NOW):
                store.save_page("zd", p)
        assert (store.cursor("zd"), store.count("tickets")) == ("c1", 2)
        for p in pages(connector, {"tickets": store.cursor("zd")}, now=NOW):  # the next run
            store.save_page("zd", p)
        assert (store.cursor("zd"), store.count("tickets")) == ("c2", 3)


@respx.mock
def test_deleted_tickets_and_duplicates_across_pages(connector, tmp_path):
    no_history()
    deleted = {"id": 2, "status": "deleted", "created_at": "2026-10-01T09:00:00Z", "updated_at": "2026-10-02T09:00:00Z", "tags": []}
    respx.get(EXPORT).mock(side_effect=[
        httpx.Response(200, json=page([raw_ticket(1), raw_ticket(2)], "c1", False)),
        httpx.Response(200, json=page([deleted, raw_ticket(1, status="solved", updated="2026-10-03T10:00:00Z")], "c2", True)),
    ])
    with Store.open(tmp_path / "s.db") as store:
        for p in pages(connector, {}, now=NOW):
            store.save_page("zd", p)
        assert store.count("tickets") == 2  # ticket 1 seen twice: upserted, not duplicated
        assert (store.ticket("zd:1").status, store.ticket("zd:2").status) == ("resolved", "deleted")


@respx.mock
def test_unmapped_status_is_kept_raw_and_counted(connector):
    no_history()
    respx.get(EXPORT).mock(return_value=httpx.Response(200, json=page([raw_ticket(1, status="escalated"), raw_ticket(2, priority="blocker")], "c", True)))
    tickets = next(pages(connector, {}, now=NOW)).tickets
    assert (tickets[0].status, tickets[0].status_raw, tickets[1].priority) == ("escalated", "escalated", None)
    assert connector.values.unmapped == {"status 'escalated'": 1, "priority 'blocker'": 1}


@respx.mock
def test_a_malformed_ticket_is_quarantined_and_the_page_goes_on(connector):
    no_history()
    respx.get(EXPORT).mock(return_value=httpx.Response(200, json=page([{"id": 9, "status": "open"}, raw_ticket(1)], "c", True)))
    first = next(pages(connector, {}, now=NOW))
    assert [t.id for t in first.tickets] == ["zd:1"]
    assert [(q.record_id, q.reason.split(":")[0]) for q in first.quarantined] == [("9", "ticket 9")]


@respx.mock
def test_history_maps_status_changes_and_tells_agents_from_customers(connector):
    respx.get(EXPORT).mock(return_value=httpx.Response(200, json=page([], "c", True)))
    respx.get(USERS).mock(return_value=httpx.Response(200, json={"users": [{"id": 100}, {"id": 101}], "meta": {"has_more": False}}))
    events = {"ticket_events": [
        {"id": 1, "ticket_id": 5, "timestamp": 1790000000, "created_at": "2026-09-21T14:13:20Z", "updater_id": 100, "child_events": [
            {"id": 11, "event_type": "Comment", "author_id": 100, "public": True, "created_at": "2026-09-21T14:13:20Z"},
            {"id": 12, "event_type": "Change", "status": "pending", "previous_value": "open"},
            {"id": 13, "event_type": "Comment", "author_id": 100, "public": False}]},
        {"id": 2, "ticket_id": 5, "timestamp": 1790003600, "created_at": "2026-09-21T15:13:20Z", "updater_id": 500, "child_events": [
            {"id": 21, "event_type": "Comment", "author_id": 500, "public": True},
            {"id": 22, "event_type": "Change", "field_name": "status", "value": "open", "previous_value": "pending"}]},
    ], "count": 2, "end_time": 1790003600, "next_page": None, "end_of_stream": True}
    route = respx.get(EVENTS).mock(return_value=httpx.Response(200, json=events))
    [history] = [p for p in pages(connector, {}, now=NOW) if p.stream == "ticket_events"]
    assert [(e.kind, e.from_value, e.to_value) for e in history.events] == [
        ("agent_reply", None, None), ("status", "open", "waiting_customer"),  # the internal note is not there
        ("customer_reply", None, None), ("status", "waiting_customer", "open"),
    ]
    assert history.cursor == "1790003600"
    assert route.calls.last.request.url.params["include"] == "comment_events"


@respx.mock
def test_a_group_the_ticket_pages_did_not_name_is_looked_up_once_in_the_group_list(connector):
    """The ticket page names group 3 only; the history's group 4 costs one walk of the group
    list (cursor pages of 100), read once however many changes follow; an id it lacks keeps its text."""
    respx.get(EXPORT).mock(return_value=httpx.Response(200, json=page([raw_ticket(1)], "c", True)))  # sideloads 3: "2nd line"
    respx.get(USERS).mock(return_value=httpx.Response(200, json={"users": [{"id": 100}], "meta": {"has_more": False}}))
    groups = respx.get(GROUPS).mock(side_effect=[
        httpx.Response(200, json={"groups": [{"id": 3, "name": "Renamed meanwhile"}, {"id": 4, "name": "Support"}],
                                  "meta": {"has_more": True, "after_cursor": "g1"}}),
        httpx.Response(200, json={"groups": [{"id": 6, "name": "Old team", "deleted": True}], "meta": {"has_more": False}}),
    ])
    change = {"event_type": "Change", "field_name": "group_id"}
    events = {"ticket_events": [
        {"id": 1, "ticket_id": 1, "timestamp": 1790000000, "updater_id": 100, "child_events": [
            {"id": 11, **change, "value": "3", "previous_value": "4"}]},
        {"id": 2, "ticket_id": 1, "timestamp": 1790000060, "updater_id": 100, "child_events": [
            {"id": 21, **change, "value": "6", "previous_value": "3"}]},
        {"id": 3, "ticket_id": 1, "timestamp": 1790000120, "updater_id": 100, "child_events": [
            {"id": 31, **change, "value": "8", "previous_value": "6"}]},
    ], "count": 3, "end_time": 1790000120, "next_page": None, "end_of_stream": True}
    respx.get(EVENTS).mock(return_value=httpx.Response(200, json=events))
    [history] = [p for p in pages(connector, {}, now=NOW) if p.stream == "ticket_events"]
    assert [(e.event_id, e.from_value, e.to_value) for e in history.events] == [
        ("g11", "Support", "2nd line"),  # the ticket page's name for 3 stays: the ticket carries it
        ("g21", "2nd line", "Old team"),  # a deleted group is still listed, by name
        ("g31", "Old team", "8"),  # not in the list either: its id
    ]
    assert groups.call_count == 2
    assert groups.calls[0].request.url.params["page[size]"] == "100" and groups.calls[1].request.url.params["page[after]"] == "g1"


@respx.mock
def test_429_on_the_export_waits_retry_after(connector, sleeps):
    no_history()
    respx.get(EXPORT).mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "17"}, json={"error": "APIRateLimitExceeded"}),
        httpx.Response(200, json=page([raw_ticket(1)], "c", True)),
    ])
    assert len(next(pages(connector, {}, now=NOW)).tickets) == 1
    assert sleeps == [17.0]


@respx.mock
def test_a_spent_export_budget_holds_the_next_request_until_it_resets(connector, sleeps):
    no_history()
    spent = {"Zendesk-RateLimit-incremental-exports": "total=10; remaining=0; resets=42"}
    respx.get(EXPORT).mock(side_effect=[
        httpx.Response(200, headers=spent, json=page([raw_ticket(1)], "c1", False)),
        httpx.Response(200, json=page([raw_ticket(2)], "c2", True)),
    ])
    list(pages(connector, {}, now=NOW))
    assert sleeps == [42.0]  # waited before asking, instead of running into a 429


@respx.mock
def test_a_budget_spent_for_longer_than_the_bound_stops_the_source(connector):
    no_history()
    respx.get(EXPORT).mock(return_value=httpx.Response(200, headers={"Zendesk-RateLimit-incremental-exports": "total=10; remaining=0; resets=900"},
                                                       json=page([raw_ticket(1)], "c1", False)))
    with pytest.raises(RetryLater, match="rate-limit budget is spent for 900s"):
        list(pages(connector, {}, now=NOW))


@respx.mock
def test_write_back_is_one_safe_request_that_keeps_the_agents_tags(connector):
    route = respx.put(f"{URL}/api/v2/tickets/5.json").mock(return_value=httpx.Response(200, json={"ticket": {"id": 5, "updated_at": "2026-11-01T12:00:00Z"}}))
    plan = WritebackPlan(ticket(tags=["vip", "sla_at_risk"]), set_fields={"custom_field:99": "breached"},
                         add_tags=["sla_breached"], remove_tags=["sla_at_risk"], notes=[Note("m1", "First response missed by 12m.")])
    result = connector.write_one(plan)
    body = json.loads(route.calls.last.request.content)["ticket"]
    assert result.outcomes() == {"field:custom_field:99": "sent", "tags": "sent", "note:m1": "sent"}
    assert result.version == "2026-11-01T12:00:00Z" and route.call_count == 1
    assert body == {"safe_update": True, "updated_stamp": "2026-10-01T10:00:00Z", "tags": ["vip", "sla_breached"],
                    "custom_fields": [{"id": 99, "value": "breached"}],
                    "comment": {"body": "First response missed by 12m.", "public": False}}


@respx.mock
def test_409_rereads_and_rebuilds_on_the_agents_new_tags_once(connector):
    put = respx.put(f"{URL}/api/v2/tickets/5.json").mock(side_effect=[
        httpx.Response(409, json={"error": "DatabaseConflict", "description": "Database collision"}),
        httpx.Response(200, json={"ticket": {"id": 5, "updated_at": "2026-11-01T12:05:00Z"}}),
    ])
    respx.get(f"{URL}/api/v2/tickets/5.json").mock(return_value=httpx.Response(200, json={"ticket": {
        "id": 5, "updated_at": "2026-11-01T12:01:00Z", "tags": ["vip", "escalated"]}}))
    result = connector.write_one(WritebackPlan(ticket(tags=["vip"]), add_tags=["sla_breached"]))
    retried = json.loads(put.calls.last.request.content)["ticket"]
    assert result.outcomes() == {"tags": "sent"} and put.call_count == 2
    assert (retried["updated_stamp"], retried["tags"]) == ("2026-11-01T12:01:00Z", ["vip", "escalated", "sla_breached"])


@respx.mock
def test_a_second_409_is_reported_not_forced(connector):
    respx.put(f"{URL}/api/v2/tickets/5.json").mock(return_value=httpx.Response(409, json={"error": "DatabaseConflict"}))
    respx.get(f"{URL}/api/v2/tickets/5.json").mock(return_value=httpx.Response(200, json={"ticket": {"id": 5, "updated_at": "x", "tags": []}}))
    result = connector.write_one(WritebackPlan(ticket(version="old"), add_tags=["sla_breached"]))
    assert result.outcomes() == {"tags": "conflict"} and "left for the next run" in result.detail


@respx.mock
def test_a_note_that_timed_out_is_not_posted_again(connector):
    route = respx.put(f"{URL}/api/v2/tickets/5.json").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(RetryLater, match="may or may not have been applied"):
        connector.write_one(WritebackPlan(ticket(version="v"), notes=[Note("m", "note")]))
    assert route.call_count == 1


def test_api_tokens_authenticate_as_email_slash_token(connector):
    header = connector.http.client.auth.auth_flow(httpx.Request("GET", URL)).__next__().headers["Authorization"]
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == "bot@acme.example/token:tok-abcdef"


# -- found in review: loops, shapes and cursors that used to end the run -------------------------


@respx.mock
def test_an_agent_list_that_never_ends_stops_at_the_page_bound(connector):
    """It used to loop for ever (992 requests in 45 s against a server that kept saying has_more)."""
    connector.http.max_pages = 5
    counter = iter(range(10**6))
    route = respx.get(USERS).mock(side_effect=lambda request: httpx.Response(200, json={
        "users": [], "meta": {"has_more": True, "after_cursor": f"c{next(counter)}"}}))
    with pytest.raises(PageBoundReached):
        connector.agent_ids()
    assert route.call_count == 5


@respx.mock
def test_comments_whose_next_page_repeats_stop_instead_of_looping(connector):
    route = respx.get(f"{URL}/api/v2/tickets/5/comments.json").mock(return_value=httpx.Response(200, json={
        "comments": [], "next_page": f"{URL}/api/v2/tickets/5/comments.json?page=2"}))
    with pytest.raises(PaginationError):
        connector.note_exists("5", "[sla-bridge:zd:5:resolution:1]")
    assert route.call_count == 2


@respx.mock
def test_comments_whose_next_page_is_on_another_host_are_never_fetched(connector):
    elsewhere = respx.get("http://collector.example.net/page2").mock(return_value=httpx.Response(200, json={"comments": []}))
    respx.get(f"{URL}/api/v2/tickets/5/comments.json").mock(return_value=httpx.Response(200, json={
        "comments": [], "next_page": "http://collector.example.net/page2"}))
    with pytest.raises(OffOriginLink):
        connector.note_exists("5", "[sla-bridge:zd:5:resolution:1]")
    assert elsewhere.call_count == 0  # the Authorization header never left for it


@respx.mock
@pytest.mark.parametrize(("shape", "reason"), [
    ({"priority": ["urgent"]}, "the priority is ['urgent'], not a value"),
    ({"status": {"name": "open"}}, "the status is {'name': 'open'}, not a value"),
    ({"created_at": 1790000000}, "ticket 1: created_at is 1790000000, not an ISO 8601 time"),
])
def test_a_ticket_of_an_unexpected_shape_is_quarantined_not_a_crash(connector, shape, reason):
    no_history()
    respx.get(EXPORT).mock(return_value=httpx.Response(200, json=page([raw_ticket(1, **shape), raw_ticket(2)], "c", True)))
    [tickets] = [p for p in pages(connector, {}, now=NOW) if p.stream == "tickets"]
    assert [t.external_id for t in tickets.tickets] == ["2"]
    assert [(q.record_id, q.reason) for q in tickets.quarantined] == [("1", reason)]


@respx.mock
def test_tickets_that_are_a_string_quarantine_the_page_not_the_run(connector):
    no_history()
    respx.get(EXPORT).mock(return_value=httpx.Response(200, json={**page([], "c1", True), "tickets": "<html>"}))
    walked = list(pages(connector, {}, now=NOW))
    [tickets] = [p for p in walked if p.stream == "tickets"]
    assert tickets.cursor == "c1" and "are a str, not a list" in tickets.quarantined[0].reason
    assert [p.stream for p in walked] == ["tickets", "ticket_events"]  # the history still came


@respx.mock
def test_an_events_page_that_ends_in_2100_is_refused_and_its_cursor_not_kept(connector, tmp_path):
    respx.get(EXPORT).mock(return_value=httpx.Response(200, json=page([], "c", True)))
    respx.get(USERS).mock(return_value=httpx.Response(200, json={"users": [{"id": 100}], "meta": {"has_more": False}}))
    far = int(datetime(2100, 1, 1, tzinfo=timezone.utc).timestamp())
    respx.get(EVENTS).mock(return_value=httpx.Response(200, json={"ticket_events": [], "end_time": far, "end_of_stream": True}))
    with Store.open(tmp_path / "s.db") as store:
        with pytest.raises(CursorRefused, match="2100-01-01"):
            for p in pages(connector, {}, now=NOW):
                store.save_page("zd", p)
        assert store.cursor("zd", "ticket_events") is None  # the next run starts from where it did, not from 2100
