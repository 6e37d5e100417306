"""The Jira connector against canned responses (respx): the search, its watermark, history the
search cuts short, agents, Jira's errors, and write-back that never posts a public comment."""

from __future__ import annotations

import ast
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from bridge.config import load_config
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.errors import BadRequest, PermissionDenied
from bridge.framework.roster import AgentRoster, Span
from bridge.framework.watermark import Watermark
from bridge.model import Note, Ticket, WritebackPlan
from connectors.jira import JiraConnector
from tests.conftest import pages

URL = "https://acme.atlassian.net"
NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
SEARCH = f"{URL}/rest/api/3/search/jql"
BULK = f"{URL}/rest/api/3/changelog/bulkfetch"
AGENTS = f"{URL}/rest/api/3/user/permission/search"
FIELDS = f"{URL}/rest/api/3/field"
AGENT = {"accountId": "agent-1", "accountType": "atlassian", "displayName": "Ann Agent"}
LICENSED = {"accountId": "dev-7", "accountType": "atlassian", "displayName": "Dev Eloper"}  # a licence, not an agent
CUSTOMER = {"accountId": "qm:1:c1", "accountType": "customer", "displayName": "Cara Customer"}
SITE_FIELDS = [
    {"id": "summary", "name": "Summary", "custom": False, "schema": {"type": "string", "system": "summary"}},
    {"id": "customfield_10502", "name": "Organisationen", "custom": True,
     "schema": {"type": "array", "items": "sd-customerorganization", "custom": "com.atlassian.servicedesk:sd-customer-organizations", "customId": 10502}},
    {"id": "customfield_10610", "name": "Zeit bis zur ersten Antwort", "custom": True,
     "schema": {"type": "sd-servicelevelagreement", "custom": "com.atlassian.servicedesk:sd-sla-field", "customId": 10610}},
    {"id": "customfield_10777", "name": "Service", "custom": True,
     "schema": {"type": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select", "customId": 10777}},
    {"id": "customfield_10901", "name": "SLA status", "custom": True,
     "schema": {"type": "string", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:textfield", "customId": 10901}},
    {"id": "customfield_10888", "name": "Assignment group", "custom": True,
     "schema": {"type": "option", "custom": "com.atlassian.jira.plugin.system.customfieldtypes:select", "customId": 10888}},
]


def raw_issue(number: int, *, updated: str = "2026-10-01T10:00:00.000+0200", histories: list[Any] | None = None,
              total: int | None = None, comments: list[Any] | None = None, comment_total: int | None = None) -> dict[str, Any]:
    histories = histories if histories is not None else [
        {"id": f"{number}01", "created": "2026-10-01T09:30:00.000+0200", "author": AGENT,
         "items": [{"field": "status", "fieldtype": "jira", "fieldId": "status", "from": "1", "fromString": "Waiting for support",
                    "to": "3", "toString": "In Progress"}]}]
    comments = comments if comments is not None else [
        {"id": f"{number}1", "author": AGENT, "created": "2026-10-01T09:30:00.000+0200", "jsdPublic": True,
         "body": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "On it"}]}]}}]
    return {
        "id": str(number), "key": f"SUP-{number}", "self": f"{URL}/rest/api/3/issue/{number}",
        "fields": {
            "summary": f"Issue {number}", "status": {"id": "3", "name": "In Progress"}, "priority": {"id": "2", "name": "High"},
            "created": "2026-10-01T09:00:00.000+0200", "updated": updated, "resolutiondate": None, "labels": ["vip"],
            "reporter": CUSTOMER, "assignee": AGENT, "issuetype": {"id": "10001", "name": "Service request"},
            "project": {"id": "10000", "key": "SUP"}, "customfield_10502": [{"id": "1", "name": "ACME Ltd"}],
            "customfield_10610": None, "customfield_10777": {"value": "email", "id": "10020"}, "customfield_10901": None,
            "comment": {"comments": comments, "maxResults": 20, "total": comment_total if comment_total is not None else len(comments), "startAt": 0},
        },
        "changelog": {"startAt": 0, "maxResults": 20, "total": total if total is not None else len(histories), "histories": histories},
    }


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make(monkeypatch: pytest.MonkeyPatch, sleeps: list[float], **source: Any) -> JiraConnector:
    monkeypatch.setenv("JIRA_TOKEN", "jira-token-abcdef")
    table = {"system": "jira", "url": URL, "start": "2026-09-01", "projects": ["SUP"],
             "auth": {"email": "bot@acme.example", "token_env": "JIRA_TOKEN"},
             "fields": {"service": "name:Service"}, "writeback": {"enabled": True, "status_field": "customfield_10901"}, **source}
    config = load_config(data={"sources": {"jsm": table}}, environ=False)
    client = build_client(URL, http=config.http, auth=JiraConnector.auth(config.sources["jsm"], config.source_secret("jsm")))
    connector = JiraConnector("jsm", config.sources["jsm"], SourceClient("jsm", client, RetryPolicy(sleep=sleeps.append, clock=lambda: NOW)))
    return connector


@pytest.fixture
def connector(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> JiraConnector:
    return make(monkeypatch, sleeps)


def site(agents: list[dict[str, Any]] | None = None) -> None:
    """The look-ups every pull makes: the fields, the project's agents."""
    respx.get(FIELDS).mock(return_value=httpx.Response(200, json=SITE_FIELDS))
    respx.get(AGENTS).mock(side_effect=lambda request: httpx.Response(
        200, json=[a for a in (agents if agents is not None else [AGENT])
                   if "accountId" not in request.url.params or a["accountId"] == request.url.params["accountId"]]))


def bodies(route: respx.Route) -> list[dict[str, Any]]:
    return [json.loads(call.request.content) for call in route.calls]


# -- the search -----------------------------------------------------------------------------


@respx.mock
def test_token_paging_reads_every_page_and_sends_the_token_back_in_the_body(connector: JiraConnector) -> None:
    site()
    route = respx.post(SEARCH).mock(side_effect=[
        httpx.Response(200, json={"issues": [raw_issue(1), raw_issue(2)], "nextPageToken": "tok-A", "isLast": False}),
        httpx.Response(200, json={"issues": [raw_issue(3)], "nextPageToken": "tok-B", "isLast": False}),
        httpx.Response(200, json={"issues": [raw_issue(4)], "isLast": True}),  # the last page: no token at all
    ])
    found = list(pages(connector, now=NOW))
    assert [t.key for p in found for t in p.tickets] == ["SUP-1", "SUP-2", "SUP-3", "SUP-4"]
    sent = bodies(route)
    assert [b.get("nextPageToken") for b in sent] == [None, "tok-A", "tok-B"]
    assert len({b["jql"] for b in sent}) == 1  # the same query on every page
    assert found[-1].done and not found[0].done


@respx.mock
def test_the_lower_bound_is_an_instant_not_a_date_in_the_users_zone(connector: JiraConnector) -> None:
    """JQL reads "yyyy/MM/dd HH:mm" in the API user's profile zone; an epoch-millis number is an instant."""
    site()
    route = respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [], "isLast": True}))
    mark = Watermark(datetime(2026, 10, 20, 8, 7, 42, tzinfo=timezone.utc), "41").encode()
    list(pages(connector, {"issues": mark}, now=NOW))
    jql = bodies(route)[0]["jql"]
    # floored to the minute (08:07), less the ten-minute overlap: 07:57:00 UTC, as epoch milliseconds
    expected = int(datetime(2026, 10, 20, 7, 57, tzinfo=timezone.utc).timestamp() * 1000)
    assert f"updated >= {expected} " in jql and "/" not in jql.split("updated >=")[1]
    assert jql.startswith('project in ("SUP") AND ') and jql.endswith("ORDER BY updated ASC, key ASC")


@respx.mock
def test_an_extra_filter_is_anded_in_parentheses(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    connector = make(monkeypatch, sleeps, jql='labels = vip OR priority = Highest')
    site()
    route = respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [], "isLast": True}))
    list(pages(connector, now=NOW))
    assert 'project in ("SUP") AND (labels = vip OR priority = Highest) AND updated >= ' in bodies(route)[0]["jql"]


@respx.mock
def test_three_hundred_issues_in_one_minute_are_all_read_and_the_next_walk_reads_that_minute_again(connector: JiraConnector) -> None:
    site()
    minute = [raw_issue(n, updated=f"2026-10-20T10:07:{n % 60:02d}.{n % 1000:03d}+0200") for n in range(1, 301)]
    respx.post(SEARCH).mock(side_effect=[
        httpx.Response(200, json={"issues": minute[:100], "nextPageToken": "p2", "isLast": False}),
        httpx.Response(200, json={"issues": minute[100:200], "nextPageToken": "p3", "isLast": False}),
        httpx.Response(200, json={"issues": minute[200:], "isLast": True}),
    ])
    found = list(pages(connector, now=NOW))
    assert len({t.external_id for p in found for t in p.tickets}) == 300
    mark = Watermark.decode(found[-1].cursor or "")
    # The next walk starts at or before the minute all 300 share, so none can be skipped.
    route = respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [], "isLast": True}))
    list(pages(make_like(connector), {"issues": found[-1].cursor}, now=NOW))
    bound = int(bodies(route)[-1]["jql"].split("updated >= ")[1].split()[0])
    assert bound <= int(datetime(2026, 10, 20, 8, 7, tzinfo=timezone.utc).timestamp() * 1000) < mark.at.timestamp() * 1000


def make_like(connector: JiraConnector) -> JiraConnector:
    return JiraConnector(connector.name, connector.config, connector.http)


@respx.mock
def test_a_changelog_longer_than_the_inline_cap_is_read_whole_from_the_bulk_changelog(connector: JiraConnector) -> None:
    site()
    history = [{"id": str(100 + n), "created": f"2026-10-01T{10 + n // 60:02d}:{n % 60:02d}:00.000+0200", "author": AGENT,
                "items": [{"field": "status", "fieldId": "status", "from": "3" if n % 2 else "10002", "fromString": "x",
                           "to": "10002" if n % 2 else "3", "toString": "y"}]} for n in range(45)]
    inline = list(reversed(history))[:20]  # the search keeps the newest 20
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={
        "issues": [raw_issue(7, histories=inline, total=45), raw_issue(8)], "isLast": True}))
    bulk = respx.post(BULK).mock(side_effect=[
        httpx.Response(200, json={"issueChangeLogs": [{"issueId": "7", "changeHistories": history[:30]}], "nextPageToken": "b2"}),
        httpx.Response(200, json={"issueChangeLogs": [{"issueId": "7", "changeHistories": history[30:]}]}),
    ])
    events = [e for p in pages(connector, now=NOW) for e in p.events]
    assert sorted(e.event_id for e in events if e.ticket_id == "jsm:7" and e.kind == "status") == sorted(
        f"s{100 + n}:1" for n in range(45))
    sent = bodies(bulk)
    assert sent[0]["issueIdsOrKeys"] == ["7"] and sent[0]["fieldIds"] == ["status", "priority"]  # issue 8 was whole
    assert sent[1]["nextPageToken"] == "b2"
    assert [e.kind for e in events if e.ticket_id == "jsm:8"].count("status") == 1


def handoff(history_id: str, created: str, before: tuple[str, str] | None, after: tuple[str, str] | None, *,
            field_id: bool = True) -> dict[str, Any]:
    """A change of the "Assignment group" select, as the changelog carries it (reference §3)."""
    item: dict[str, Any] = {"field": "Assignment group", "fieldtype": "custom", "from": before and before[0],
                            "fromString": before and before[1], "to": after and after[0], "toString": after and after[1]}
    if field_id:
        item["fieldId"] = "customfield_10888"
    return {"id": history_id, "created": created, "author": AGENT, "items": [item]}


@respx.mock
def test_group_changes_come_from_the_changelogs_already_read_and_the_bulk_one_asks_for_the_group_field(
        monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    connector = make(monkeypatch, sleeps, fields={"service": "name:Service", "group": "name:Assignment group"})
    site()
    support, second = ("10200", "Support"), ("10201", "2nd line")
    # Issue 7's changelog is whole in the page; one item comes without a fieldId (some custom items do).
    inline = [handoff("701", "2026-10-01T10:00:00.000+0200", support, second),
              handoff("702", "2026-10-01T11:00:00.000+0200", second, support, field_id=False)]
    # Issue 8's was cut: the bulk changelog brings it whole.
    cut = [handoff("801", "2026-10-01T12:00:00.000+0200", None, second)] + [
        {"id": str(810 + n), "created": "2026-10-01T12:30:00.000+0200", "author": AGENT,
         "items": [{"field": "status", "fieldId": "status", "from": "3", "fromString": "In Progress", "to": "10002",
                    "toString": "Waiting for customer"}]} for n in range(25)]
    issue7, issue8 = raw_issue(7, histories=inline), raw_issue(8, histories=cut[-20:], total=len(cut))
    for issue, current in ((issue7, support), (issue8, second)):
        issue["fields"]["customfield_10888"] = {"self": f"{URL}/rest/api/3/customFieldOption/{current[0]}", "value": current[1], "id": current[0]}
    search = respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [issue7, issue8], "isLast": True}))
    bulk = respx.post(BULK).mock(return_value=httpx.Response(200, json={"issueChangeLogs": [{"issueId": "8", "changeHistories": cut}]}))
    found = list(pages(connector, now=NOW))
    groups = sorted((e.ticket_id, e.event_id, e.from_value, e.to_value, e.author) for p in found for e in p.events if e.kind == "group")
    assert groups == [
        ("jsm:7", "g701:1", "Support", "2nd line", "agent-1"),
        ("jsm:7", "g702:1", "2nd line", "Support", "agent-1"),
        ("jsm:8", "g801:1", None, "2nd line", "agent-1"),
    ]
    assert {t.key: t.group for p in found for t in p.tickets} == {"SUP-7": "Support", "SUP-8": "2nd line"}
    assert "customfield_10888" in bodies(search)[0]["fields"]
    assert [b["fieldIds"] for b in bodies(bulk)] == [["status", "priority", "customfield_10888"]]
    assert connector.http.requests_made == 4  # fields, agents, one search page, one bulk changelog: none for the groups


@respx.mock
def test_a_quiet_rerun_makes_no_request_beyond_the_search_and_the_look_ups(connector: JiraConnector) -> None:
    site()
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [raw_issue(1), raw_issue(2)], "isLast": True}))
    bulk = respx.post(BULK).mock(return_value=httpx.Response(500))
    list(pages(connector, now=NOW))
    assert not bulk.called and connector.http.requests_made == 3  # fields, agents, one search page


@respx.mock
def test_cut_comments_are_fetched_whole_with_their_internal_flags(connector: JiraConnector) -> None:
    site()
    note = {"id": "90", "author": AGENT, "created": "2026-10-01T11:00:00.000+0200", "jsdPublic": True,
            "properties": [{"key": "sd.public.comment", "value": {"internal": True}}],
            "body": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
                {"type": "text", "text": "Breach noted [sla-bridge:jsm:5:resolution:1]"}]}]}}
    public = [{"id": str(60 + n), "author": CUSTOMER, "created": f"2026-10-01T10:{n:02d}:00.000+0200", "jsdPublic": True,
               "body": "v2 text"} for n in range(25)]
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={
        "issues": [raw_issue(5, comments=public[:20], comment_total=26)], "isLast": True}))
    route = respx.get(f"{URL}/rest/api/3/issue/5/comment").mock(side_effect=[
        httpx.Response(200, json={"startAt": 0, "maxResults": 20, "total": 26, "comments": public[:20]}),
        httpx.Response(200, json={"startAt": 20, "maxResults": 20, "total": 26, "comments": [*public[20:], note]}),
    ])
    events = [e for p in pages(connector, now=NOW) for e in p.events if e.ticket_id == "jsm:5"]
    assert route.calls[0].request.url.params["expand"] == "properties"
    assert sum(e.kind == "customer_reply" for e in events) == 25
    assert [(e.kind, e.to_value) for e in events if e.kind == "note"] == [("note", "[sla-bridge:jsm:5:resolution:1]")]


@respx.mock
def test_a_licensed_author_is_an_agent_only_if_jira_says_so_for_that_project(connector: JiraConnector) -> None:
    site(agents=[AGENT])
    comments = [
        {"id": "1", "author": LICENSED, "created": "2026-10-01T09:10:00.000+0200", "jsdPublic": True, "body": "me too"},
        {"id": "2", "author": AGENT, "created": "2026-10-01T09:20:00.000+0200", "jsdPublic": True, "body": "on it"},
        {"id": "3", "author": CUSTOMER, "created": "2026-10-01T09:30:00.000+0200", "jsdPublic": True, "body": "thanks"},
    ]
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [raw_issue(1, comments=comments)], "isLast": True}))
    events = {e.event_id: e.kind for p in pages(connector, now=NOW) for e in p.events}
    assert (events["c1"], events["c2"], events["c3"]) == ("customer_reply", "agent_reply", "customer_reply")
    asked = [call.request.url.params.get("accountId") for call in respx.calls if call.request.url.path.endswith("permission/search")]
    assert asked == [None, "dev-7"]  # the list, then the one licensed author it lacked; never the portal customer


@respx.mock
def test_without_the_right_to_list_agents_the_pull_stops_saying_why(connector: JiraConnector) -> None:
    respx.get(FIELDS).mock(return_value=httpx.Response(200, json=SITE_FIELDS))
    respx.get(AGENTS).mock(return_value=httpx.Response(403, json={"errorMessages": ["You do not have permission"], "errors": {}}))
    with pytest.raises(PermissionDenied, match="Administer Projects"):
        list(pages(connector, now=NOW))


@respx.mock
def test_a_field_named_in_config_that_the_site_lacks_stops_before_any_search(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    connector = make(monkeypatch, sleeps, fields={"service": "name:Servce"})
    site()
    search = respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [], "isLast": True}))
    with pytest.raises(BadRequest, match=r"sources\.jsm\.fields\.service: .*no field named 'Servce'.*did you mean name:Service"):
        list(pages(connector, now=NOW))
    assert not search.called


@respx.mock
def test_fields_resolve_by_schema_and_name_and_sla_fields_are_asked_for(connector: JiraConnector) -> None:
    site()
    route = respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [raw_issue(3)], "isLast": True}))
    [ticket] = [t for p in pages(connector, now=NOW) for t in p.tickets]
    asked = bodies(route)[0]["fields"]
    assert {"customfield_10502", "customfield_10610", "customfield_10777", "customfield_10901", "comment"} <= set(asked)
    assert bodies(route)[0]["expand"] == "changelog"
    assert (ticket.customer, ticket.service) == ("ACME Ltd", "email")


@respx.mock
def test_429_with_retry_after_zero_is_retried_and_the_pull_goes_on(connector: JiraConnector, sleeps: list[float]) -> None:
    site()
    respx.post(SEARCH).mock(side_effect=[
        httpx.Response(429, headers={"Retry-After": "0", "RateLimit-Reason": "jira-burst-based"},
                       json={"errorMessages": ["The request has been rate-limited."], "errors": {}, "status": 429}),
        httpx.Response(429, headers={"Retry-After": "3", "Content-Type": "text/html"}, text="<html>Too many</html>"),
        httpx.Response(200, json={"issues": [raw_issue(1)], "isLast": True}),
    ])
    assert [t.key for p in pages(connector, now=NOW) for t in p.tickets] == ["SUP-1"]
    assert sleeps == [0.0, 3.0]


@respx.mock
def test_the_old_search_is_never_called_and_its_410_reads_clearly(connector: JiraConnector) -> None:
    site()
    gone = {"errorMessages": ["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
                              "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"], "errors": {}}
    old = respx.route(path__regex=r"/rest/api/[23]/search$").mock(return_value=httpx.Response(410, json=gone))
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [raw_issue(1)], "isLast": True}))
    list(pages(connector, now=NOW))
    assert not old.called
    with pytest.raises(BadRequest, match=r"410.*CHANGE-2046"):
        connector.http.get_json("/rest/api/3/search", params={"jql": "project = SUP"})


@respx.mock
def test_a_history_that_cannot_be_read_quarantines_that_issue_only(connector: JiraConnector) -> None:
    site()
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={
        "issues": [raw_issue(7, histories=[], total=3), raw_issue(8)], "isLast": True}))
    respx.post(BULK).mock(return_value=httpx.Response(200, json={
        "issueChangeLogs": [{"issueId": "7", "changeHistories": [{"id": "1", "created": "yesterday", "items": [
            {"fieldId": "status", "to": "3", "toString": "In Progress"}]}]}]}))
    [page] = list(pages(connector, now=NOW))
    assert [t.external_id for t in page.tickets] == ["8"]  # 7 is not judged without its history
    assert [q.record_id for q in page.quarantined] == ["7"] and "created" in page.quarantined[0].reason
    assert not [e for e in page.events if e.ticket_id == "jsm:7"]


# -- write-back -----------------------------------------------------------------------------


def pulled(number: int = 5, key: str = "SUP-5") -> Ticket:
    return Ticket("jsm", "jira", str(number), key, "T", "open", "In Progress", NOW, NOW, tags=["vip"])


def plan(**change: Any) -> WritebackPlan:
    return WritebackPlan(pulled(), **change)


NOTE = Note("[sla-bridge:jsm:5:resolution:1]", "SLA breach: resolution.\n\nCredit owed: 1%. [sla-bridge:jsm:5:resolution:1]")


@respx.mock
def test_labels_are_added_and_removed_never_replaced_and_nobody_is_emailed(connector: JiraConnector) -> None:
    route = respx.put(f"{URL}/rest/api/3/issue/5").mock(return_value=httpx.Response(204))
    [result] = connector.write([plan(add_tags=["sla_breached"], remove_tags=["sla_at_risk"], set_fields={"customfield_10901": "breached"})])
    assert result.outcomes() == {"field:customfield_10901": "sent", "tags": "sent"}
    request = route.calls[0].request
    assert request.url.params["notifyUsers"] == "false"
    assert json.loads(request.content) == {"update": {"labels": [{"add": "sla_breached"}, {"remove": "sla_at_risk"}]},
                                           "fields": {"customfield_10901": "breached"}}


@respx.mock
def test_a_field_off_the_edit_screen_is_refused_and_the_labels_still_land(connector: JiraConnector) -> None:
    off = {"errorMessages": [], "errors": {"customfield_10901": "Field 'customfield_10901' cannot be set. It is not on the appropriate screen, or unknown."}}
    route = respx.put(f"{URL}/rest/api/3/issue/5").mock(side_effect=[httpx.Response(400, json=off), httpx.Response(204)])
    [result] = connector.write([plan(add_tags=["sla_breached"], set_fields={"customfield_10901": "breached"})])
    assert result.outcomes() == {"field:customfield_10901": "refused", "tags": "sent"}
    assert "not on the appropriate screen" in result.detail
    assert "fields" not in json.loads(route.calls[1].request.content)


@respx.mock
def test_labels_landed_and_the_note_refused_are_reported_apart(connector: JiraConnector) -> None:
    respx.put(f"{URL}/rest/api/3/issue/5").mock(return_value=httpx.Response(204))
    respx.post(f"{URL}/rest/servicedeskapi/request/5/comment").mock(return_value=httpx.Response(
        413, json={"errorMessages": ["Too many comments"], "errors": {}}))
    [result] = connector.write([plan(add_tags=["sla_breached"], notes=[NOTE])])
    assert result.outcomes() == {"tags": "sent", f"note:{NOTE.marker}": "refused"}
    assert "as many comments as Jira allows" in result.detail


@respx.mock
def test_a_gone_issue_refuses_every_item(connector: JiraConnector) -> None:
    gone = {"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}
    respx.put(f"{URL}/rest/api/3/issue/5").mock(return_value=httpx.Response(404, json=gone))
    [result] = connector.write([plan(add_tags=["sla_breached"])])
    assert result.outcomes() == {"tags": "refused"} and "Issue does not exist" in result.detail


def _internal(request: httpx.Request) -> bool:
    body = json.loads(request.content)
    if "/servicedeskapi/" in request.url.path:
        return body.get("public") is False
    return {"key": "sd.public.comment", "value": {"internal": True}} in body.get("properties", [])


@pytest.mark.parametrize("answer", ["created", "no request type", "rate limited first", "refused"])
@respx.mock
def test_an_internal_note_is_never_sent_public(connector: JiraConnector, answer: str) -> None:
    missing = {"errorMessage": "Either you don't have access to this request type, or it doesn't exist.",
               "i18nErrorMessage": {"i18nKey": "sd.customerview.error.vpOriginMissing", "parameters": []}}
    jsm = {
        "created": [httpx.Response(201, json={"id": "1", "public": False})],
        "no request type": [httpx.Response(404, json=missing)],
        "rate limited first": [httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(201, json={"id": "1"})],
        "refused": [httpx.Response(400, json={"errorMessage": "bad", "i18nErrorMessage": {"i18nKey": "x", "parameters": []}})],
    }[answer]
    service_desk = respx.post(f"{URL}/rest/servicedeskapi/request/5/comment").mock(side_effect=jsm)
    platform = respx.post(f"{URL}/rest/api/3/issue/5/comment").mock(return_value=httpx.Response(201, json={"id": "2", "jsdPublic": False}))
    [result] = connector.write([plan(notes=[NOTE])])
    sent = [call.request for call in [*service_desk.calls, *platform.calls]]
    assert sent and all(_internal(request) for request in sent)
    assert result.outcomes()[f"note:{NOTE.marker}"] == ("refused" if answer == "refused" else "sent")
    if answer == "no request type":
        body = json.loads(platform.calls[0].request.content)["body"]
        assert body["type"] == "doc" and "[sla-bridge:jsm:5:resolution:1]" in json.dumps(body)  # ADF for the v3 route


def test_no_code_path_builds_a_comment_that_is_not_internal() -> None:
    """Read from the connector's source: no literal says ``public`` is anything but False or
    ``internal`` anything but True, and every POST it makes outside ``_post_internal`` (which
    refuses a body that is not internal, below) goes to a route that is not a comment's."""
    folder = Path(__file__).resolve().parents[3] / "connectors" / "jira"
    posts = 0
    for path in sorted(folder.glob("*.py")):
        if path.name == "sandbox.py":  # the fake helpdesk, not the connector
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value in ("public", "jsdPublic"):
                        assert isinstance(value, ast.Constant) and value.value is False, f"{path.name}:{node.lineno}"
                    if isinstance(key, ast.Constant) and key.value == "internal":
                        assert isinstance(value, ast.Constant) and value.value is True, f"{path.name}:{node.lineno}"
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
                values = [*call.args, *(kw.value for kw in call.keywords)]
                if not any(isinstance(v, ast.Constant) and v.value == "POST" for v in values):
                    continue
                posts += 1
                url = ast.unparse(values[1]) if len(values) > 1 else ""
                assert function.name == "_post_internal" or "comment" not in url, f"{path.name}:{call.lineno} posts to {url}"
    assert posts >= 1  # the scan saw the connector's POSTs


def test_the_one_comment_sender_refuses_a_body_that_is_not_internal(connector: JiraConnector) -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.post(url__regex=r".*/comment$").mock(return_value=httpx.Response(201, json={"id": "1"}))
        for url, body in [("/rest/servicedeskapi/request/5/comment", {"body": "x", "public": True}),
                          ("/rest/servicedeskapi/request/5/comment", {"body": "x"}),
                          ("/rest/api/3/issue/5/comment", {"body": {"type": "doc", "version": 1, "content": []}})]:
            with pytest.raises(AssertionError, match="not internal"):
                connector._post_internal(url, body)
        assert not route.called


@respx.mock
def test_note_exists_looks_only_at_internal_comments(connector: JiraConnector) -> None:
    marker = "[sla-bridge:jsm:5:resolution:1]"
    respx.get(f"{URL}/rest/api/3/issue/5/comment").mock(return_value=httpx.Response(200, json={"startAt": 0, "maxResults": 100, "total": 2, "comments": [
        {"id": "1", "jsdPublic": True, "body": f"quoting {marker}", "created": "2026-10-01T10:00:00.000+0000"},
    ]}))
    assert connector.note_exists("5", marker) is False
    respx.get(f"{URL}/rest/api/3/issue/5/comment").mock(return_value=httpx.Response(200, json={"startAt": 0, "maxResults": 100, "total": 1, "comments": [
        {"id": "2", "jsdPublic": False, "body": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [
            {"type": "text", "text": f"Breach {marker}"}]}]}, "created": "2026-10-01T10:00:00.000+0000"},
    ]}))
    assert connector.note_exists("5", marker) is True


# -- check --online and fields ---------------------------------------------------------------


@respx.mock
def test_check_reports_what_the_account_cannot_do(connector: JiraConnector) -> None:
    respx.get(f"{URL}/rest/api/3/myself").mock(return_value=httpx.Response(200, json={
        "accountId": "bot", "accountType": "atlassian", "displayName": "SLA bot", "emailAddress": "bot@acme.example",
        "timeZone": "Pacific/Kiritimati"}))
    respx.get(f"{URL}/rest/servicedeskapi/servicedesk").mock(return_value=httpx.Response(200, json={
        "size": 1, "start": 0, "limit": 50, "isLastPage": True, "values": [{"id": "1", "projectId": "10000", "projectKey": "SUP"}]}))
    respx.get(f"{URL}/rest/api/3/mypermissions").mock(return_value=httpx.Response(200, json={"permissions": {
        key: {"key": key, "havePermission": key != "ADMINISTER_PROJECTS"} for key in
        ("BROWSE_PROJECTS", "EDIT_ISSUES", "ADD_COMMENTS", "ADMINISTER_PROJECTS", "SERVICEDESK_AGENT")}}))
    respx.get(FIELDS).mock(return_value=httpx.Response(200, json=SITE_FIELDS))
    check = connector.check_credentials()
    assert check.account == "SLA bot <bot@acme.example>" and "Pacific/Kiritimati" in check.detail
    [problem] = check.problems
    assert problem.startswith("sources.jsm.auth:") and "notifyUsers=false" in problem and "SUP" in problem


@respx.mock
def test_fields_lists_jsm_fields_by_their_kind(connector: JiraConnector) -> None:
    respx.get(FIELDS).mock(return_value=httpx.Response(200, json=SITE_FIELDS))
    listed = {f.id: (f.title, f.type) for f in connector.list_fields()}
    assert listed["customfield_10610"] == ("Zeit bis zur ersten Antwort", "sd-sla-field")
    assert listed["customfield_10502"] == ("Organisationen", "sd-customer-organizations")
    assert listed["summary"] == ("Summary", "string")


def test_since_is_never_the_users_zone(connector: JiraConnector) -> None:
    """A far-off profile zone changes nothing: the bound is computed from the instant alone."""
    connector._resolved, connector._sla_ids = {}, []
    instant = datetime(2026, 3, 29, 0, 59, tzinfo=timezone.utc)
    request = connector._search(connector.streams()[0].request, instant)
    assert f"updated >= {int(instant.timestamp() * 1000)} " in str((request.json or {})["jql"])


# -- found in review ---------------------------------------------------------------------------


@respx.mock
def test_an_agent_beyond_the_list_stays_an_agent_run_after_run_and_a_demoted_one_does_not(connector: JiraConnector) -> None:
    """The permission search scans the first thousand users only: an agent the roster knows and
    the list lacks is asked about by id before the span is closed, even in a run where they
    wrote nothing (else their next reply, written before the run that sees it, is a customer's)."""
    far, gone = {"accountId": "far-1", "accountType": "atlassian"}, {"accountId": "gone-2", "accountType": "atlassian"}
    connector.roster = AgentRoster([Span("SUP/far-1", None), Span("SUP/gone-2", None)])
    respx.get(FIELDS).mock(return_value=httpx.Response(200, json=SITE_FIELDS))
    respx.get(AGENTS).mock(side_effect=lambda request: httpx.Response(200, json=(
        [a for a in (AGENT, far) if a["accountId"] == request.url.params["accountId"]] if "accountId" in request.url.params else [AGENT])))
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [raw_issue(1)], "isLast": True}))
    list(pages(connector, now=NOW))
    later = NOW + timedelta(hours=1)  # a reply written before the next run
    assert connector.roster.was_agent("SUP/far-1", later)
    assert not connector.roster.was_agent("SUP/gone-2", later)  # demoted: asked, and Jira says no
    assert connector.roster.was_agent("SUP/gone-2", NOW - timedelta(days=30))  # their earlier replies stay agents'
    # the list, then each roster agent it lacks, by id
    assert [c.request.url.params.get("accountId") for c in respx.calls if "permission" in c.request.url.path] == [None, "far-1", gone["accountId"]]


@respx.mock
def test_a_search_page_that_fails_with_503_is_retried_like_any_read(connector: JiraConnector, sleeps: list[float]) -> None:
    site()
    respx.post(SEARCH).mock(side_effect=[httpx.Response(503, headers={"Retry-After": "2"}),
                                         httpx.Response(200, json={"issues": [raw_issue(1)], "isLast": True})])
    assert [t.key for p in pages(connector, now=NOW) for t in p.tickets] == ["SUP-1"]
    assert sleeps == [2.0]


@respx.mock
def test_a_409_is_a_conflict_a_422_refused_and_neither_stops_the_source(connector: JiraConnector) -> None:
    respx.put(f"{URL}/rest/api/3/issue/5").mock(return_value=httpx.Response(409, json={"errorMessages": ["Conflict"], "errors": {}}))
    respx.put(f"{URL}/rest/api/3/issue/6").mock(return_value=httpx.Response(422, json={"errorMessages": ["Workflow"], "errors": {}}))
    other = WritebackPlan(Ticket("jsm", "jira", "6", "SUP-6", "T", "open", "In Progress", NOW, NOW), add_tags=["sla_breached"])
    first, second = connector.write([plan(add_tags=["sla_breached"]), other])
    assert first.outcomes() == {"tags": "conflict"} and second.outcomes() == {"tags": "refused"}


@respx.mock
def test_a_note_jira_refuses_with_403_is_refused_and_the_labels_still_reported(connector: JiraConnector) -> None:
    respx.put(f"{URL}/rest/api/3/issue/5").mock(return_value=httpx.Response(204))
    respx.post(f"{URL}/rest/servicedeskapi/request/5/comment").mock(return_value=httpx.Response(
        403, json={"errorMessage": "You do not have permission", "i18nErrorMessage": {"i18nKey": "x", "parameters": []}}))
    [result] = connector.write([plan(add_tags=["sla_breached"], notes=[NOTE])])
    assert result.outcomes() == {"tags": "sent", f"note:{NOTE.marker}": "refused"}


@respx.mock
def test_a_platform_note_jira_made_public_is_deleted_at_once_and_refused(connector: JiraConnector) -> None:
    pulled_plain = Ticket("jsm", "jira", "5", "SUP-5", "T", "open", "In Progress", NOW, NOW, fields={"customfield_10200": None})
    connector._request_type = "customfield_10200"  # pulled without a request type: the platform route
    respx.post(f"{URL}/rest/api/3/issue/5/comment").mock(return_value=httpx.Response(201, json={"id": "77", "jsdPublic": True}))
    deleted = respx.delete(f"{URL}/rest/api/3/issue/5/comment/77").mock(return_value=httpx.Response(204))
    [result] = connector.write([WritebackPlan(pulled_plain, notes=[NOTE])])
    assert deleted.called
    assert result.outcomes() == {f"note:{NOTE.marker}": "refused"} and "deleted at once" in result.detail


@respx.mock
def test_an_issue_whose_comments_are_gone_by_the_time_they_are_fetched_is_quarantined_alone(connector: JiraConnector) -> None:
    site()
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={
        "issues": [raw_issue(5, comment_total=40), raw_issue(6)], "isLast": True}))
    respx.get(f"{URL}/rest/api/3/issue/5/comment").mock(return_value=httpx.Response(
        404, json={"errorMessages": ["Issue does not exist or you do not have permission to see it."], "errors": {}}))
    [page] = list(pages(connector, now=NOW))
    assert [t.external_id for t in page.tickets] == ["6"] and [q.record_id for q in page.quarantined] == ["5"]


@respx.mock
def test_an_apps_public_comment_is_no_ones_reply(connector: JiraConnector) -> None:
    site()
    robot = {"accountId": "557058:automation", "accountType": "app", "displayName": "Automation for Jira"}
    comments = [{"id": "1", "author": robot, "created": "2026-10-01T09:01:00.000+0200", "jsdPublic": True, "body": "We got it"}]
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [raw_issue(1, comments=comments)], "isLast": True}))
    kinds = [e.kind for p in pages(connector, now=NOW) for e in p.events]
    assert "agent_reply" not in kinds and "customer_reply" not in kinds


@respx.mock
def test_an_inline_list_without_a_total_is_fetched_whole(connector: JiraConnector) -> None:
    site()
    issue = raw_issue(3)
    del issue["changelog"]["total"]
    respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [issue], "isLast": True}))
    bulk = respx.post(BULK).mock(return_value=httpx.Response(200, json={"issueChangeLogs": [
        {"issueId": "3", "changeHistories": issue["changelog"]["histories"]}]}))
    events = [e for p in pages(connector, now=NOW) for e in p.events if e.kind == "status"]
    assert bulk.called and len(events) == 1


@respx.mock
def test_a_configured_overlap_moves_the_lower_bound(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    connector = make(monkeypatch, sleeps, overlap="2h")
    site()
    route = respx.post(SEARCH).mock(return_value=httpx.Response(200, json={"issues": [], "isLast": True}))
    mark = Watermark(datetime(2026, 10, 20, 8, 7, 42, tzinfo=timezone.utc), "41").encode()
    list(pages(connector, {"issues": mark}, now=NOW))
    expected = int(datetime(2026, 10, 20, 6, 7, tzinfo=timezone.utc).timestamp() * 1000)
    assert f"updated >= {expected} " in bodies(route)[0]["jql"]


def test_an_overlap_under_a_minute_is_refused_naming_the_key(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    from bridge.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sources\.jsm\.overlap: '30s' is shorter than 1m.*JQL compares whole minutes"):
        make(monkeypatch, sleeps, overlap="30s")
