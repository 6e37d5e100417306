"""The ServiceNow connector against canned responses (respx): keyset paging, ACL-short pages, a
one-hour Retry-After, OAuth, work notes that are never comments, our own notes pulled back."""

from __future__ import annotations

import ast
import base64
import json
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from bridge.config import load_config
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.errors import BadRequest, PaginationError, RetriableSourceError
from bridge.model import Note, Ticket, WritebackPlan
from connectors.servicenow import ServiceNowConnector
from connectors.servicenow.connector import patch_body
from tests.conftest import pages

URL = "https://acme.service-now.com"
NOW = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
RECORDS = f"{URL}/api/now/table/incident"
AUDIT = f"{URL}/api/now/table/sys_audit"
CHOICES = [
    {"name": "incident", "element": "state", "value": "1", "label": "New", "sequence": "1", "dependent_value": ""},
    {"name": "incident", "element": "state", "value": "2", "label": "In Progress", "sequence": "2", "dependent_value": ""},
    {"name": "incident", "element": "state", "value": "3", "label": "On Hold", "sequence": "3", "dependent_value": ""},
    {"name": "incident", "element": "state", "value": "6", "label": "Resolved", "sequence": "6", "dependent_value": ""},
    {"name": "incident", "element": "hold_reason", "value": "1", "label": "Awaiting Caller", "sequence": "1", "dependent_value": "3"},
    {"name": "task", "element": "priority", "value": "2", "label": "2 - High", "sequence": "2", "dependent_value": ""},
]


def sys_id(number: int) -> str:
    return f"{number:032x}"


def record(number: int, updated: str = "2026-10-01 10:00:00", **extra: str) -> dict[str, str]:
    return {"sys_id": sys_id(number), "number": f"INC{number:07d}", "short_description": f"Issue {number}", "state": "2",
            "hold_reason": "", "priority": "2", "opened_at": "2026-10-01 09:00:00", "sys_created_on": "2026-10-01 09:00:00",
            "sys_updated_on": updated, "sys_mod_count": "3", "resolved_at": "", "closed_at": "", "opened_by": "",
            "assigned_to": "", "active": "true", "caller_id": sys_id(9000), "caller_id.user_name": "cara.customer",
            "company.name": "ACME Ltd", "assignment_group.name": "Service Desk", "u_sla_status": "", **extra}


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make(monkeypatch: pytest.MonkeyPatch, sleeps: list[float], **source: Any) -> ServiceNowConnector:
    monkeypatch.setenv("SN_SECRET", "sn-secret-abcdef")
    table = {"system": "servicenow", "url": URL, "start": "2026-09-01", "auth": {"username": "sla.bridge", "password_env": "SN_SECRET"},
             "writeback": {"enabled": True, "status_field": "u_sla_status"}, **source}
    config = load_config(data={"sources": {"sn": table}}, environ=False)
    client = build_client(URL, http=config.http, auth=ServiceNowConnector.auth(config.sources["sn"], config.source_secret("sn")))
    return ServiceNowConnector("sn", config.sources["sn"], SourceClient("sn", client, RetryPolicy(sleep=sleeps.append, clock=lambda: NOW)))


@pytest.fixture
def connector(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> ServiceNowConnector:
    return make(monkeypatch, sleeps)


def look_ups(agents: tuple[str, ...] = ("ann.agent",), audit: list[dict[str, str]] | None = None) -> None:
    respx.get(f"{URL}/api/now/table/sys_choice").mock(return_value=httpx.Response(200, json={"result": CHOICES}))
    respx.get(f"{URL}/api/now/table/sys_user_has_role").mock(return_value=httpx.Response(200, json={"result": [
        {"user.user_name": name, "role.name": "itil"} for name in agents]}))
    respx.get(AUDIT).mock(side_effect=lambda request: httpx.Response(200, json={"result": audit if audit is not None else [
        # every record's insert wrote its initial state
        {"sys_id": key[::-1], "documentkey": key, "fieldname": "state", "oldvalue": "", "newvalue": "1", "user": "cara.customer",
         "sys_created_on": "2026-10-01 09:00:00", "record_checkpoint": "0"}
        for key in query_of(request).split("documentkeyIN")[1].split("^")[0].split(",")]}))


def query_of(request: httpx.Request) -> str:
    return parse_qs(urlsplit(str(request.url)).query)["sysparm_query"][0]


def query(call: Any) -> str:
    return parse_qs(urlsplit(str(call.request.url)).query)["sysparm_query"][0]


@respx.mock
def test_fifty_records_in_one_second_are_paged_by_keyset_and_none_is_skipped(connector: ServiceNowConnector) -> None:
    look_ups()
    second = [record(n, "2026-10-01 10:00:00") for n in range(1, 51)]
    route = respx.get(RECORDS).mock(side_effect=[
        httpx.Response(200, json={"result": second[:20]}), httpx.Response(200, json={"result": second[20:40]}),
        httpx.Response(200, json={"result": second[40:]}), httpx.Response(200, json={"result": []})])
    found = [t.external_id for p in pages(connector, now=NOW) for t in p.tickets]
    assert found == [sys_id(n) for n in range(1, 51)]
    first, following = query(route.calls[0]), query(route.calls[1])
    assert "sys_updated_on>=" in first and "javascript" not in first and first.endswith("^ORDERBYsys_updated_on^ORDERBYsys_id")
    assert following == (f"sys_updated_on=2026-10-01 10:00:00^sys_id>{sys_id(20)}^NQsys_updated_on>2026-10-01 10:00:00"
                         "^ORDERBYsys_updated_on^ORDERBYsys_id")
    assert parse_qs(urlsplit(str(route.calls[0].request.url)).query)["sysparm_display_value"] == ["false"]


@respx.mock
def test_a_page_shortened_or_emptied_by_acls_is_not_the_end(connector: ServiceNowConnector) -> None:
    look_ups()
    link = f'<{RECORDS}?sysparm_offset=500&sysparm_limit=500&sysparm_query=x>;rel="next"'
    route = respx.get(RECORDS).mock(side_effect=[
        httpx.Response(200, json={"result": [record(1, "2026-10-01 10:00:00")]}),  # 499 of 500 hidden: short, not the end
        httpx.Response(200, json={"result": []}, headers={"Link": link}),  # all 500 hidden, but more follow
        httpx.Response(200, json={"result": [record(2, "2026-10-01 11:00:00")]}),
        httpx.Response(200, json={"result": []}),
    ])
    found = [t.external_id for p in pages(connector, now=NOW) for t in p.tickets]
    assert found == [sys_id(1), sys_id(2)]
    assert "sysparm_offset=500" in str(route.calls[2].request.url)  # the Link followed past the hidden rows


@respx.mock
def test_a_one_hour_retry_after_stops_the_source_without_sleeping_and_keeps_the_cursor(connector: ServiceNowConnector,
                                                                                     sleeps: list[float]) -> None:
    look_ups()
    limited = {"error": {"message": "Rate limit exceeded", "detail": "Rate limit of 100 requests per hour for Table API exceeded"},
               "status": "failure"}
    respx.get(RECORDS).mock(side_effect=[
        httpx.Response(200, json={"result": [record(1, "2026-10-01 10:00:00")]}),
        httpx.Response(429, json=limited, headers={"Retry-After": "3600", "X-RateLimit-Limit": "100", "X-RateLimit-Rule": "a" * 32}),
    ])
    kept = []
    with pytest.raises(RetriableSourceError) as raised:
        kept.extend(pages(connector, now=NOW))
    assert sleeps == [] and "retry after 2026-11-01 13:00:00 UTC" in str(raised.value)  # an hour on: stopped, not asleep
    assert len(kept) == 1 and kept[0].cursor and "2026-10-01T10:00:00" in kept[0].cursor  # the page before is kept, with its cursor


@respx.mock
def test_oauth_client_credentials_fetch_a_token_once_and_every_request_carries_it(monkeypatch: pytest.MonkeyPatch,
                                                                                sleeps: list[float]) -> None:
    connector = make(monkeypatch, sleeps, auth={"client_id": "sla-bridge-app", "client_secret_env": "SN_SECRET"})
    token = respx.post(f"{URL}/oauth_token.do").mock(return_value=httpx.Response(200, json={
        "access_token": "sn-access-token-123456", "token_type": "Bearer", "expires_in": 1799, "scope": "useraccount"}))
    look_ups()
    route = respx.get(RECORDS).mock(side_effect=[httpx.Response(200, json={"result": [record(1)]}),
                                                 httpx.Response(200, json={"result": []})])
    list(pages(connector, now=NOW))
    assert token.call_count == 1
    assert {c.request.headers["Authorization"] for c in route.calls} == {"Bearer sn-access-token-123456"}


def test_patch_body_refuses_the_customer_visible_journal() -> None:
    assert patch_body({"u_sla_status": "breached"}, "note [m]") == {"u_sla_status": "breached", "work_notes": "note [m]"}
    with pytest.raises(AssertionError, match="comments"):
        patch_body({"comments": "hello customer"}, None)


def test_no_code_path_of_the_connector_names_the_comments_journal_but_to_refuse_it() -> None:
    """Read from the source: the string "comments" appears only as the refused constant, and
    every write body comes from patch_body."""
    source = (Path(__file__).resolve().parents[3] / "connectors" / "servicenow" / "connector.py").read_text()
    tree = ast.parse(source)
    uses = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value == "comments"]
    assert len(uses) == 1  # CUSTOMER_FACING = "comments" (the history fields read are the normaliser's)
    keys = [k.value for node in ast.walk(tree) if isinstance(node, ast.Dict) for k in node.keys if isinstance(k, ast.Constant)]
    assert "comments" not in keys


@respx.mock
def test_a_batch_writes_the_status_field_and_a_work_note_and_reports_each_record(connector: ServiceNowConnector) -> None:
    served = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        items = []
        for item in body["rest_requests"]:
            sent = json.loads(base64.b64decode(item["body"]))
            served.append((item["method"], item["url"], sent))
            status = 404 if "0000000000000000000000000000000b" in item["url"] else 200
            reply = {"result": {"sys_mod_count": "4"}} if status == 200 else {"error": {"message": "No Record found", "detail": "gone"}}
            items.append({"id": item["id"], "status_code": status, "status_text": "OK",
                          "body": base64.b64encode(json.dumps(reply).encode()).decode()})
        return httpx.Response(200, json={"batch_request_id": body["batch_request_id"], "serviced_requests": items,
                                         "unserviced_requests": []})

    route = respx.post(f"{URL}/api/now/v1/batch").mock(side_effect=answer)
    marker = f"[sla-bridge:sn:{sys_id(10)}:resolution:1]"
    plans = [WritebackPlan(pulled(10), set_fields={"u_sla_status": "breached"}, notes=[Note(marker, f"Breach. {marker}")]),
             WritebackPlan(pulled(11), set_fields={"u_sla_status": "at_risk"})]
    first, second = connector.write(plans)
    assert route.call_count == 1
    assert first.outcomes() == {"field:u_sla_status": "sent", f"note:{marker}": "sent"}
    assert second.outcomes() == {"field:u_sla_status": "refused"} and "No Record found" in second.detail
    assert [(m, body) for m, _, body in served] == [("PATCH", {"u_sla_status": "breached", "work_notes": f"Breach. {marker}"}),
                                                    ("PATCH", {"u_sla_status": "at_risk"})]
    assert all("comments" not in body for _, _, body in served)


def pulled(number: int) -> Ticket:
    return Ticket("sn", "servicenow", sys_id(number), f"INC{number:07d}", "T", "open", "In Progress", NOW, NOW)


@respx.mock
def test_our_own_work_note_pulled_back_moves_no_clock(connector: ServiceNowConnector) -> None:
    marker = f"[sla-bridge:sn:{sys_id(1)}:resolution:1]"
    audit = [
        {"sys_id": "a" * 32, "documentkey": sys_id(1), "fieldname": "work_notes", "oldvalue": "JOURNAL FIELD ADDITION",
         "newvalue": f"SLA breach. {marker}", "user": "sla.bridge", "sys_created_on": "2026-10-01 11:00:00", "record_checkpoint": "4"},
        {"sys_id": "b" * 32, "documentkey": sys_id(1), "fieldname": "comments", "oldvalue": "JOURNAL FIELD ADDITION",
         "newvalue": "We are on it", "user": "ann.agent", "sys_created_on": "2026-10-01 09:30:00", "record_checkpoint": "2"},
    ]
    look_ups(audit=audit)
    respx.get(RECORDS).mock(side_effect=[httpx.Response(200, json={"result": [record(1, "2026-10-01 11:00:00")]}),
                                         httpx.Response(200, json={"result": []})])
    events = [(e.kind, e.to_value) for p in pages(connector, now=NOW) for e in p.events]
    assert ("note", marker) in events
    assert [kind for kind, _ in events if kind.endswith("reply")] == ["agent_reply"]  # the agent's comment; our note is none


@respx.mock
def test_the_history_is_asked_for_a_page_of_records_at_a_time(connector: ServiceNowConnector) -> None:
    look_ups()
    respx.get(RECORDS).mock(side_effect=[httpx.Response(200, json={"result": [record(n) for n in range(1, 151)]}),
                                         httpx.Response(200, json={"result": []})])
    list(pages(connector, now=NOW))
    asked = [query(call) for call in respx.calls if call.request.url.path.endswith("sys_audit")]
    assert len(asked) == 2  # 150 records: two requests of at most 100 sys_ids
    ids = asked[0].split("documentkeyIN")[1].split("^")[0].split(",")
    assert asked[0].startswith("tablename=incident^documentkeyIN") and len(ids) == 100



def test_a_missing_client_secret_names_the_key_it_is_read_from(monkeypatch: pytest.MonkeyPatch) -> None:
    from bridge.errors import ConfigError

    monkeypatch.delenv("SN_CLIENT_SECRET", raising=False)
    config = load_config(data={"sources": {"sn": {"system": "servicenow", "url": URL, "start": "2026-09-01",
                                                  "auth": {"client_id": "app", "client_secret_env": "SN_CLIENT_SECRET"}}}}, environ=False)
    with pytest.raises(ConfigError, match=r"sources\.sn\.auth\.client_secret"):
        config.source_secret("sn")


@respx.mock
def test_no_history_for_a_whole_page_stops_the_source_naming_audit_viewer(connector: ServiceNowConnector) -> None:
    """An ACL answers 200 [] on sys_audit: judged without history every clock would breach, so nothing is kept."""
    look_ups(audit=[])
    respx.get(RECORDS).mock(side_effect=[httpx.Response(200, json={"result": [record(1), record(2)]}),
                                         httpx.Response(200, json={"result": []})])
    with pytest.raises(BadRequest, match="audit_viewer"):
        list(pages(connector, now=NOW))


@respx.mock
def test_a_page_out_of_the_order_asked_for_stops_the_source(connector: ServiceNowConnector) -> None:
    look_ups()
    respx.get(RECORDS).mock(return_value=httpx.Response(200, json={"result": [
        record(2, "2026-10-01 10:00:05"), record(1, "2026-10-01 10:00:01")]}))
    with pytest.raises(PaginationError, match="out of order"):
        list(pages(connector, now=NOW))


@respx.mock
def test_choices_are_read_in_english_and_agents_whether_active_or_not(connector: ServiceNowConnector) -> None:
    look_ups()
    respx.get(RECORDS).mock(return_value=httpx.Response(200, json={"result": []}))
    list(pages(connector, now=NOW))
    [choices] = [query(c) for c in respx.calls if c.request.url.path.endswith("sys_choice")]
    [roles] = [query(c) for c in respx.calls if c.request.url.path.endswith("sys_user_has_role")]
    assert "^language=en" in choices and "active" not in roles  # a former agent's replies were agents' replies


@respx.mock
def test_a_write_answered_200_that_kept_nothing_is_refused(connector: ServiceNowConnector) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        [item] = json.loads(request.content)["rest_requests"]
        body = base64.b64encode(json.dumps({"result": {"sys_mod_count": "3"}}).encode()).decode()
        return httpx.Response(200, json={"serviced_requests": [{"id": item["id"], "status_code": 200, "body": body}]})

    respx.post(f"{URL}/api/now/v1/batch").mock(side_effect=answer)
    marker = f"[sla-bridge:sn:{sys_id(10)}:resolution:1]"
    plan = WritebackPlan(replace(pulled(10), version="3"), set_fields={"u_sla_status": "breached"}, notes=[Note(marker, f"B {marker}")])
    [result] = connector.write([plan])
    assert result.outcomes() == {"field:u_sla_status": "refused", f"note:{marker}": "refused"} and "kept nothing" in result.detail
    # a field alone may hold the value already (written by a run that was killed before it journaled): sent
    [again] = connector.write([WritebackPlan(replace(pulled(10), version="3"), set_fields={"u_sla_status": "breached"})])
    assert again.outcomes() == {"field:u_sla_status": "sent"}


def test_closed_and_cancelled_records_are_not_written_to(connector: ServiceNowConnector) -> None:
    assert connector.writable(replace(pulled(1), status="resolved"))
    assert not connector.writable(replace(pulled(1), status="closed")) and not connector.writable(replace(pulled(1), status="canceled"))


@respx.mock
def test_an_admin_query_is_in_every_group_of_the_keyset_query(monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    """Its ^OR binds inside its own group; left out of one ^NQ group, the walk would pull the whole table."""
    connector = make(monkeypatch, sleeps, query="priority=1^ORpriority=2")
    look_ups()
    route = respx.get(RECORDS).mock(side_effect=[httpx.Response(200, json={"result": [record(1, "2026-10-01 10:00:00")]}),
                                                 httpx.Response(200, json={"result": []})])
    list(pages(connector, now=NOW))
    first, following = query(route.calls[0]), query(route.calls[1])
    assert first.startswith("priority=1^ORpriority=2^sys_updated_on>=")
    groups = following.removesuffix("^ORDERBYsys_updated_on^ORDERBYsys_id").split("^NQ")
    assert groups == [f"priority=1^ORpriority=2^sys_updated_on=2026-10-01 10:00:00^sys_id>{sys_id(1)}",
                      "priority=1^ORpriority=2^sys_updated_on>2026-10-01 10:00:00"]


def test_an_access_token_the_instance_expired_mid_run_is_refreshed_and_the_pull_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox expires its tokens by its own clock (30 minutes); the next request answers 401,
    a new token is fetched and the request sent again, and nothing is lost."""
    from connectors.servicenow.sandbox import ServiceNowSandbox
    from tests.conftest import Clock

    clock = Clock(NOW)
    box = ServiceNowSandbox(40, seed=3, anchor=NOW, clock=clock)
    monkeypatch.setenv("SN_CLIENT_SECRET", box.client_secret)
    table = {**box.source_config(box.base_url, "UNUSED"), "auth": {"client_id": box.client_id, "client_secret_env": "SN_CLIENT_SECRET"}}
    config = load_config(data={"sources": {"sn": table}}, environ=False)
    client = build_client(box.base_url, http=config.http, transport=box.transport(),
                          auth=ServiceNowConnector.auth(config.sources["sn"], config.source_secret("sn")))
    connector = ServiceNowConnector("sn", config.sources["sn"], SourceClient("sn", client, RetryPolicy(sleep=lambda s: None)))
    walk = pages(connector, now=NOW)
    first = next(walk)
    clock.now = NOW.replace(hour=13)  # an hour on: the token the walk began with has expired
    rest = list(walk)
    assert len({t.external_id for p in [first, *rest] for t in p.tickets}) == len(box.tables["incident"].rows)
    assert box.count("/oauth_token.do") == 2 and 401 in box.statuses


# -- assignment-group history -------------------------------------------------------------------

DESK, NETWORK, GONE = "a" * 31 + "1", "a" * 31 + "2", "a" * 31 + "3"


def group_row(n: int, key: str, old: str, new: str, at: str, checkpoint: str) -> dict[str, str]:
    return {"sys_id": f"{n:032x}"[::-1], "documentkey": key, "fieldname": "assignment_group", "oldvalue": old, "newvalue": new,
            "user": "ann.agent", "sys_created_on": at, "record_checkpoint": checkpoint}


@respx.mock
def test_group_ids_no_record_names_are_looked_up_once_a_run_and_a_deleted_one_keeps_its_sys_id(connector: ServiceNowConnector) -> None:
    """sys_audit names groups by sys_id (reference §3.1). The records name the groups they are in
    now; the rest (a group a ticket passed through, a deleted one) take one sys_user_group request
    for a page's new ids, and an id asked for once is not asked for again in the run."""
    look_ups()
    history = {
        sys_id(1): [group_row(1, sys_id(1), "", DESK, "2026-10-01 09:00:00", "0"),  # the insert
                    group_row(2, sys_id(1), DESK, NETWORK, "2026-10-01 09:20:00", "1"),
                    group_row(3, sys_id(1), NETWORK, DESK, "2026-10-01 09:40:00", "2")],
        sys_id(2): [group_row(4, sys_id(2), DESK, GONE, "2026-10-01 09:30:00", "1")],
        sys_id(3): [group_row(5, sys_id(3), GONE, DESK, "2026-10-01 10:30:00", "2")],
    }
    audit = respx.get(AUDIT).mock(side_effect=lambda request: httpx.Response(200, json={"result": [
        row for key in query_of(request).split("documentkeyIN")[1].split("^")[0].split(",") for row in history[key]]}))
    groups = respx.get(f"{URL}/api/now/table/sys_user_group").mock(return_value=httpx.Response(200, json={"result": [
        {"sys_id": NETWORK, "name": "Network"}]}))  # GONE was deleted: the table no longer holds it
    desk = {"assignment_group": DESK, "assignment_group.name": "Service Desk"}
    route = respx.get(RECORDS).mock(side_effect=[
        httpx.Response(200, json={"result": [record(1, "2026-10-01 10:00:00", **desk), record(2, "2026-10-01 10:00:01", **desk)]}),
        httpx.Response(200, json={"result": [record(3, "2026-10-01 11:00:00", **desk)]}),
        httpx.Response(200, json={"result": []})])
    events = {(e.ticket_id, e.from_value, e.to_value, e.author) for p in pages(connector, now=NOW) for e in p.events if e.kind == "group"}
    assert events == {(f"sn:{sys_id(1)}", "Service Desk", "Network", "ann.agent"), (f"sn:{sys_id(1)}", "Network", "Service Desk", "ann.agent"),
                      (f"sn:{sys_id(2)}", "Service Desk", GONE, "ann.agent"), (f"sn:{sys_id(3)}", GONE, "Service Desk", "ann.agent")}
    assert len(groups.calls) == 1  # the second page's GONE was asked for on the first
    asked = parse_qs(urlsplit(str(groups.calls[0].request.url)).query)
    assert asked["sysparm_query"] == [f"sys_idIN{NETWORK},{GONE}"] and asked["sysparm_fields"] == ["sys_id,name"]
    fields = parse_qs(urlsplit(str(route.calls[0].request.url)).query)["sysparm_fields"][0].split(",")
    assert {"assignment_group", "assignment_group.name"} <= set(fields)  # each record names its group's sys_id
    # The group column's rows are asked for too, but not its insert rows (checkpoint 0): no change, and a row a record more
    assert query(audit.calls[0]).endswith("^fieldnameINstate,hold_reason,priority,comments,work_notes,assignment_group"
                                          "^record_checkpoint!=0^ORfieldnameINstate,hold_reason,priority,comments,work_notes"
                                          "^ORDERBYsys_created_on^ORDERBYsys_id")


@respx.mock
def test_a_group_role_through_another_reference_names_its_ids_from_the_table_the_dictionary_names(
        monkeypatch: pytest.MonkeyPatch, sleeps: list[float]) -> None:
    connector = make(monkeypatch, sleeps, fields={"group": "u_team.u_label"})
    look_ups(audit=[{**group_row(1, sys_id(1), DESK, NETWORK, "2026-10-01 09:20:00", "1"), "fieldname": "u_team"}])
    dictionary = respx.get(f"{URL}/api/now/table/sys_dictionary").mock(return_value=httpx.Response(200, json={"result": [
        {"name": "task", "element": "u_team", "reference": "u_task_team"}]}))
    teams = respx.get(f"{URL}/api/now/table/u_task_team").mock(return_value=httpx.Response(200, json={"result": [
        {"sys_id": NETWORK, "u_label": "Network"}]}))
    respx.get(RECORDS).mock(side_effect=[
        httpx.Response(200, json={"result": [record(1, "2026-10-01 10:00:00", u_team=NETWORK, **{"u_team.u_label": "Network"})]}),
        httpx.Response(200, json={"result": []})])
    found = [p for p in pages(connector, now=NOW)]
    assert [t.group for p in found for t in p.tickets] == ["Network"]
    assert [(e.from_value, e.to_value) for p in found for e in p.events if e.kind == "group"] == [(DESK, "Network")]
    assert query(dictionary.calls[0]) == "nameINincident,task^element=u_team"
    assert parse_qs(urlsplit(str(teams.calls[0].request.url)).query)["sysparm_fields"] == ["sys_id,u_label"]


@respx.mock
def test_a_group_table_the_account_may_not_read_leaves_the_sys_ids_and_the_pull_goes_on(connector: ServiceNowConnector) -> None:
    look_ups(audit=[group_row(1, sys_id(1), NETWORK, DESK, "2026-10-01 09:20:00", "1")])
    respx.get(f"{URL}/api/now/table/sys_user_group").mock(return_value=httpx.Response(403, json={
        "error": {"message": "User Not Authorized", "detail": "Required to provide Auth information"}, "status": "failure"}))
    respx.get(RECORDS).mock(side_effect=[
        httpx.Response(200, json={"result": [record(1, "2026-10-01 10:00:00", assignment_group=DESK)]}),
        httpx.Response(200, json={"result": []})])
    found = list(pages(connector, now=NOW))
    assert [t.external_id for p in found for t in p.tickets] == [sys_id(1)]
    assert [(e.from_value, e.to_value) for p in found for e in p.events if e.kind == "group"] == [(NETWORK, "Service Desk")]
