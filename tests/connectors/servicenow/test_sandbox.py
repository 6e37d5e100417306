"""The ServiceNow sandbox on its own: the Table API's paging, queries, display modes and errors,
sys_audit and sys_journal_field, the Batch API, OAuth and rate-limit rules, as a connector sees
them over HTTP; its requests checked against the vendor's Table API document."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from connectors.kit.story import tell
from connectors.servicenow.sandbox import AGENT_NAMES, ServiceNowSandbox
from tests.conftest import Clock
from tests.oas import load_spec

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
GUID = re.compile(r"[0-9a-f]{32}")
RECORD_FIELDS = ("sys_id,number,short_description,state,hold_reason,priority,opened_at,sys_created_on,sys_updated_on,sys_mod_count,"
                 "resolved_at,closed_at,caller_id,opened_by,assigned_to,assignment_group,company,active,u_sla_status")
AUDIT_FIELDS = "sys_id,documentkey,fieldname,oldvalue,newvalue,user,sys_created_on,record_checkpoint"
ORDER = "^ORDERBYsys_updated_on^ORDERBYsys_id"


def _spec_patch(document: dict[str, Any]) -> None:
    """The document's known faults: none patched (it declares no responses at all)."""


# sysparm_offset is documented by ServiceNow (Table API page) but absent from the generated document.
SPEC = load_spec("servicenow-table-openapi.json", _spec_patch, {("GET", "/api/now/table/{tableName}"): {"sysparm_offset"}})


def client(box: ServiceNowSandbox, *, auth: bool = True) -> httpx.Client:
    return httpx.Client(transport=box.transport(), base_url=box.base_url, auth=(box.username, box.password) if auth else None,
                        headers={"Accept": "application/json"})


@pytest.fixture(scope="module")
def shared() -> ServiceNowSandbox:
    """A sandbox the read-only tests share (nothing here writes to it)."""
    return ServiceNowSandbox.for_tests(300, anchor=ANCHOR)


@pytest.fixture
def box() -> ServiceNowSandbox:
    return ServiceNowSandbox.for_tests(80, anchor=ANCHOR)


@pytest.fixture
def http(box: ServiceNowSandbox) -> Iterator[httpx.Client]:
    with client(box) as c:
        yield c


def records(c: httpx.Client, query: str, limit: int = 500, **params: Any) -> httpx.Response:
    return c.get("/api/now/table/incident", params={"sysparm_query": query, "sysparm_fields": RECORD_FIELDS, "sysparm_display_value": "false",
                                                    "sysparm_exclude_reference_link": "true", "sysparm_limit": limit, **params})


def keyset_walk(c: httpx.Client, since: str, limit: int) -> list[dict[str, Any]]:
    """The connector's walk: a lower bound, then the records after the last one's (time, sys_id)."""
    seen: list[dict[str, Any]] = []
    answer = records(c, f"sys_updated_on>={since}{ORDER}", limit)
    while True:
        page = answer.json()["result"]
        seen += page
        if not page:
            following = answer.links.get("next", {}).get("url")
            if not following:
                return seen
            answer = c.get(following)
            continue
        at, sys_id = page[-1]["sys_updated_on"], page[-1]["sys_id"]
        answer = records(c, f"sys_updated_on={at}^sys_id>{sys_id}^NQsys_updated_on>{at}{ORDER}", limit)


# -- data -------------------------------------------------------------------------------------


def test_same_seed_same_records_and_deterministic_sys_ids() -> None:
    one, two = (ServiceNowSandbox.for_tests(60, anchor=ANCHOR) for _ in range(2))
    with client(one) as a, client(two) as b:
        first = a.get("/api/now/table/incident", params={"sysparm_query": "ORDERBYnumber"}).json()
        second = b.get("/api/now/table/incident", params={"sysparm_query": "ORDERBYnumber"}).json()
        audits = [c.get("/api/now/table/sys_audit").json() for c in (a, b)]
    assert first == second and audits[0] == audits[1]
    assert first["result"][0]["number"] == "INC0010001"
    assert all(GUID.fullmatch(row["sys_id"]) for row in first["result"])
    seventh = next(row for row in first["result"] if row["number"] == "INC0010007")
    assert seventh["sys_id"] == one.external_id(7) == two.external_id(7)
    other = ServiceNowSandbox(60, seed=12, anchor=ANCHOR, clock=lambda: ANCHOR)
    assert other.external_id(1) != one.external_id(1)


def test_every_value_is_a_string_and_null_is_empty(shared: ServiceNowSandbox) -> None:
    with client(shared) as c:
        rows = c.get("/api/now/table/incident", params={"sysparm_limit": 50}).json()["result"]
    assert rows and all(isinstance(v, str) or set(v) == {"link", "value"} for row in rows for v in row.values())
    assert {row["active"] for row in rows} <= {"true", "false"}
    open_rows = [row for row in rows if row["state"] in ("1", "2", "3")]
    assert all(row["closed_at"] == "" for row in open_rows)
    assert all(row["work_notes"] == "" and row["comments"] == "" for row in rows)  # journals read back empty


def test_many_records_share_one_sys_updated_on_second(shared: ServiceNowSandbox) -> None:
    with client(shared) as c:
        rows = records(c, f"sys_updated_on>=2026-01-01 00:00:00{ORDER}", 1000).json()["result"]
    seconds: dict[str, int] = {}
    for row in rows:
        seconds[row["sys_updated_on"]] = seconds.get(row["sys_updated_on"], 0) + 1
    assert max(seconds.values()) >= 20  # the admin's bulk list edit
    assert sum(1 for n in seconds.values() if n > 1) >= 5  # and the daily autoclose job's seconds


def test_incident_states_priorities_and_callers_tell_the_story(shared: ServiceNowSandbox) -> None:
    with client(shared) as c:
        rows = c.get("/api/now/table/incident", params={"sysparm_fields": "state,hold_reason,priority,impact,urgency,caller_id,company"
                                                        ",assigned_to", "sysparm_exclude_reference_link": "true"}).json()["result"]
        callers = {u["sys_id"]: u for u in c.get("/api/now/table/sys_user", params={"sysparm_fields": "sys_id,company",
                                                                                     "sysparm_exclude_reference_link": "true"}).json()["result"]}
    assert {row["state"] for row in rows} <= {"1", "2", "3", "6", "7"} and {"6", "7"} <= {row["state"] for row in rows}
    assert {row["priority"] for row in rows} == {"1", "2", "3", "4"}
    assert {(r["impact"], r["urgency"], r["priority"]) for r in rows} <= {("1", "1", "1"), ("1", "2", "2"), ("2", "2", "3"), ("2", "3", "4")}
    assert all(r["hold_reason"] == "1" for r in rows if r["state"] == "3")
    assert all(callers[r["caller_id"]]["company"] == r["company"] for r in rows)  # the caller works for the customer


def test_deleted_story_tickets_are_gone(shared: ServiceNowSandbox) -> None:
    deleted = [n for n in range(1, 301) if shared.numbers[n] not in shared.tables["incident"].rows]
    assert deleted
    with client(shared) as c:
        gone = c.get(f"/api/now/table/incident/{shared.external_id(deleted[0])}")
        listed = c.get("/api/now/table/incident", params={"sysparm_fields": "sys_id"}).json()["result"]
    assert gone.status_code == 404
    assert len(listed) == 300 - len(deleted) and shared.external_id(deleted[0]) not in {r["sys_id"] for r in listed}


# -- paging -----------------------------------------------------------------------------------


def test_keyset_paging_across_a_shared_second_reads_every_record_once(shared: ServiceNowSandbox) -> None:
    with client(shared) as c:
        walked = keyset_walk(c, "2026-01-01 00:00:00", limit=7)
        everything = records(c, f"sys_updated_on>=2026-01-01 00:00:00{ORDER}", 1000).json()["result"]
        # The trap keyset paging avoids: a strict ">" after a page that ends inside a shared second.
        ten = records(c, f"sys_updated_on>=2026-10-29 09:29:00{ORDER}", 10).json()["result"]
        strict = records(c, f"sys_updated_on>{ten[-1]['sys_updated_on']}{ORDER}", 1000).json()["result"]
    ids = [row["sys_id"] for row in walked]
    assert len(ids) == len(set(ids)) == len(everything) == 300 - sum(1 for s in shared.numbers.values() if s not in shared.tables["incident"].rows)
    assert ids == [row["sys_id"] for row in everything]  # in (sys_updated_on, sys_id) order, as ORDERBY asked
    assert ten[-1]["sys_updated_on"] == "2026-10-29 09:30:00"
    missed = {r["sys_id"] for r in everything if r["sys_updated_on"] >= "2026-10-29 09:29:00"} - {r["sys_id"] for r in ten + strict}
    assert missed  # rows of that second after the page's end


def test_link_header_in_the_real_format_and_absent_for_one_page(http: httpx.Client) -> None:
    first = http.get("/api/now/table/incident", params={"sysparm_query": "ORDERBYnumber", "sysparm_limit": 20, "sysparm_fields": "number"})
    total = int(first.headers["X-Total-Count"])
    last_offset = (total - 1) // 20 * 20
    last = http.get("/api/now/table/incident", params={"sysparm_query": "ORDERBYnumber", "sysparm_limit": 20, "sysparm_offset": last_offset,
                                                       "sysparm_fields": "number"})
    single = http.get("/api/now/table/incident", params={"sysparm_limit": 1000, "sysparm_fields": "number"})
    assert re.fullmatch(r'<https://sandbox\.service-now\.com/api/now/table/incident\?[^>]+>;rel="first",<[^>]+>;rel="next",<[^>]+>;rel="last"',
                        first.headers["Link"])
    assert "sysparm_offset=20" in first.links["next"]["url"] and f"sysparm_offset={last_offset}" in first.links["last"]["url"]
    assert set(last.links) == {"first", "prev", "last"}  # the last page has prev and no next
    assert "Link" not in single.headers and single.headers["X-Total-Count"] == str(total)
    no_count = http.get("/api/now/table/incident", params={"sysparm_limit": 20, "sysparm_no_count": "true"})
    assert "X-Total-Count" not in no_count.headers and set(no_count.links) == {"first", "next"}
    suppressed = http.get("/api/now/table/incident", params={"sysparm_limit": 20, "sysparm_suppress_pagination_header": "true"})
    assert "Link" not in suppressed.headers and suppressed.headers["X-Total-Count"] == str(total)


def test_acl_hidden_rows_shorten_pages_after_the_limit_and_still_count(box: ServiceNowSandbox, http: httpx.Client) -> None:
    query: dict[str, Any] = {"sysparm_query": "ORDERBYnumber", "sysparm_limit": 5, "sysparm_fields": "sys_id,number"}
    before = http.get("/api/now/table/incident", params=query).json()["result"]
    for row in before[:2]:
        box.hidden.add(row["sys_id"])
    short = http.get("/api/now/table/incident", params=query)
    for row in before[2:]:
        box.hidden.add(row["sys_id"])
    empty = http.get("/api/now/table/incident", params=query)
    following = http.get(empty.links["next"]["url"])
    assert [r["number"] for r in short.json()["result"]] == [r["number"] for r in before[2:]]  # 3 of 5: not the end
    assert empty.json()["result"] == [] and "next" in empty.links  # empty, yet more rows exist
    assert short.headers["X-Total-Count"] == empty.headers["X-Total-Count"] == str(len(box.tables["incident"].rows))
    assert len(following.json()["result"]) == 5 and following.json()["result"][0]["number"] > before[-1]["number"]
    assert http.get(f"/api/now/table/incident/{before[0]['sys_id']}").status_code == 404


def test_v1_answers_404_when_nothing_matches_v2_and_latest_an_empty_list(http: httpx.Client) -> None:
    nothing = {"sysparm_query": "number=INC9999999"}
    v1 = http.get("/api/now/v1/table/incident", params=nothing)
    v2 = http.get("/api/now/v2/table/incident", params=nothing)
    latest = http.get("/api/now/table/incident", params=nothing)
    assert v1.status_code == 404 and v1.json() == {"error": {"message": "No Record found", "detail": "Records matching query not found. "
                                                             "Check query parameter or offset parameter"}, "status": "failure"}
    assert (v2.status_code, v2.json()) == (latest.status_code, latest.json()) == (200, {"result": []})
    assert http.get("/api/now/v1/table/incident", params={"sysparm_query": "number=INC0010001"}).status_code == 200


# -- queries ----------------------------------------------------------------------------------


def numbers(c: httpx.Client, query: str, table: str = "incident") -> list[str]:
    return [r["number"] for r in c.get(f"/api/now/table/{table}", params={"sysparm_query": query, "sysparm_fields": "number"}).json()["result"]]


def test_encoded_query_operators(http: httpx.Client) -> None:
    assert numbers(http, "numberININC0010001,INC0010003^ORDERBYnumber") == ["INC0010001", "INC0010003"]
    assert numbers(http, "number=INC0010002^ORnumber=INC0010004^ORDERBYDESCnumber") == ["INC0010004", "INC0010002"]
    assert numbers(http, "number=INC0010005^NQnumber=INC0010001^ORDERBYnumber") == ["INC0010001", "INC0010005"]
    assert numbers(http, "numberSTARTSWITHINC001000^numberNOT ININC0010001,INC0010002^ORDERBYnumber")[:2] == ["INC0010003", "INC0010004"]
    assert numbers(http, "short_descriptionLIKErequest 1^ORDERBYnumber")[:3] == ["INC0010001", "INC0010010", "INC0010011"]
    assert numbers(http, "numberENDSWITH0079") == ["INC0010079"]
    assert all(n for n in numbers(http, "u_sla_statusISEMPTY^ORDERBYnumber")) and numbers(http, "u_sla_statusISNOTEMPTY") == []
    assert numbers(http, "priority<=1^priority>=1") == numbers(http, "priority=1") != []
    assert numbers(http, "priorityBETWEEN1@2^ORDERBYnumber") == numbers(http, "priorityIN1,2^ORDERBYnumber")
    assert "INC0010001" not in numbers(http, "short_descriptionNOT LIKErequest 1^ORDERBYnumber")
    assert numbers(http, "numberININC0010001,INC0010002^ORDERBYDESCnumber^ORDERBYsys_id") == ["INC0010002", "INC0010001"]
    pairs = http.get("/api/now/table/incident", params={"number": "INC0010003", "sysparm_fields": "number"}).json()["result"]
    assert pairs == [{"number": "INC0010003"}]  # name=value pairs instead of sysparm_query


def test_an_unknown_field_in_a_query_is_dropped_so_a_typo_returns_everything(http: httpx.Client) -> None:
    everything = numbers(http, "ORDERBYnumber")
    assert numbers(http, "nmber=INC0010001^ORDERBYnumber") == everything  # glide.invalid_query.returns_no_rows=false
    assert numbers(http, "number=INC0010001^u_no_such_field=x") == ["INC0010001"]
    assert numbers(http, "sys_updated_on>=yesterday^number=INC0010002") == ["INC0010002"]  # an unreadable date: dropped too


def test_date_literals_are_utc_but_gs_date_generate_reads_the_users_zone(box: ServiceNowSandbox, http: httpx.Client) -> None:
    box.agent_edits(4, at=datetime(2026, 11, 1, 11, 30, 0, tzinfo=timezone.utc))
    assert "INC0010004" in numbers(http, "sys_updated_on>=2026-11-01 11:30:00")
    assert "INC0010004" not in numbers(http, "sys_updated_on>2026-11-01 11:30:00")
    # 03:30 in Los Angeles (PST after the DST change that morning) is 11:30 UTC.
    assert "INC0010004" in numbers(http, "sys_updated_on>=javascript:gs.dateGenerate('2026-11-01','03:30:00')")
    assert "INC0010004" not in numbers(http, "sys_updated_on>=javascript:gs.dateGenerate('2026-11-01','04:00:00')")


def test_sys_user_has_role_dot_walks_roles_and_users(box: ServiceNowSandbox, http: httpx.Client) -> None:
    params: dict[str, Any] = {"sysparm_query": "role.nameINitil,sn_customerservice_agent^user.active=true",
                              "sysparm_fields": "user.user_name,user.sys_id,role.name", "sysparm_limit": 1000}
    rows = http.get("/api/now/table/sys_user_has_role", params=params).json()["result"]
    assert all(set(row) == {"user.user_name", "user.sys_id", "role.name"} for row in rows)
    assert {r["user.user_name"] for r in rows} >= {"beth.anglin", "don.goodliffe", "bud.richman", "fred.luddy", "sla.bridge"}
    assert {r["role.name"] for r in rows} == {"itil"}
    box.downgrade("bud.richman")
    after = http.get("/api/now/table/sys_user_has_role", params=params).json()["result"]
    assert "bud.richman" not in {r["user.user_name"] for r in after}


def test_sysparm_fields_ignores_unknown_names_and_dot_walks(http: httpx.Client, box: ServiceNowSandbox) -> None:
    row = http.get(f"/api/now/table/incident/{box.external_id(1)}", params={"sysparm_fields": "number,no_such,company.name,caller_id.email"}).json()
    assert row["result"]["number"] == "INC0010001" and set(row["result"]) == {"number", "company.name", "caller_id.email"}
    assert row["result"]["company.name"] in ("ACME Ltd", "Globex", "Initech") and row["result"]["caller_id.email"].endswith(".example")


# -- display values ---------------------------------------------------------------------------


def test_display_modes_false_true_and_all(box: ServiceNowSandbox, http: httpx.Client) -> None:
    box.agent_replies(2, at=datetime(2026, 10, 30, 12, 0, 0, tzinfo=timezone.utc), waiting=True)
    url = f"/api/now/table/incident/{box.external_id(2)}"
    fields = {"sysparm_fields": "state,hold_reason,sys_updated_on,assigned_to,comments"}
    raw = http.get(url, params=fields).json()["result"]
    shown = http.get(url, params={**fields, "sysparm_display_value": "true"}).json()["result"]
    both = http.get(url, params={**fields, "sysparm_display_value": "all", "sysparm_exclude_reference_link": "true"}).json()["result"]
    agent = raw["assigned_to"]["value"]
    assert raw["state"] == "3" and raw["hold_reason"] == "1" and raw["sys_updated_on"] == "2026-10-30 12:00:00" and raw["comments"] == ""
    assert raw["assigned_to"] == {"link": f"https://sandbox.service-now.com/api/now/table/sys_user/{agent}", "value": agent}
    assert shown["state"] == "On Hold" and shown["hold_reason"] == "Awaiting Caller"
    assert shown["sys_updated_on"] == "2026-10-30 05:00:00"  # Los Angeles (PDT), with no zone marker
    assert set(shown["assigned_to"]) == {"display_value", "link"} and shown["assigned_to"]["display_value"].istitle()
    assert shown["comments"].startswith("2026-10-30 05:00:00 - ") and "(Additional comments)\nCould you send the logs?" in shown["comments"]
    assert both["state"] == {"display_value": "On Hold", "value": "3"}
    assert both["assigned_to"] == {"display_value": shown["assigned_to"]["display_value"], "value": agent}


def test_display_dates_move_with_daylight_saving_inside_one_answer(box: ServiceNowSandbox, http: httpx.Client) -> None:
    quiet = [n for n in sorted(box.numbers) if box.tables["incident"].rows.get(box.numbers[n], {}).get("sys_updated_on", "9") < "2026-11-01 08:00"]
    summer, winter = quiet[:2]
    box.agent_edits(summer, at=datetime(2026, 11, 1, 8, 0, 0, tzinfo=timezone.utc))  # 01:00 PDT, before the clocks go back at 09:00 UTC
    box.agent_edits(winter, at=datetime(2026, 11, 1, 11, 30, 0, tzinfo=timezone.utc))  # 03:30 PST
    rows = {r["sys_id"]["value"]: r["sys_updated_on"] for r in http.get("/api/now/table/incident", params={
        "sysparm_query": f"sys_idIN{box.external_id(summer)},{box.external_id(winter)}", "sysparm_fields": "sys_id,sys_updated_on",
        "sysparm_display_value": "all"}).json()["result"]}
    assert rows[box.external_id(summer)] == {"display_value": "2026-11-01 01:00:00", "value": "2026-11-01 08:00:00"}  # -7 h
    assert rows[box.external_id(winter)] == {"display_value": "2026-11-01 03:30:00", "value": "2026-11-01 11:30:00"}  # -8 h


# -- history ----------------------------------------------------------------------------------


def test_audit_rows_come_in_sys_id_order_unless_orderby_says_otherwise(shared: ServiceNowSandbox) -> None:
    ids = ",".join(shared.external_id(n) for n in range(1, 11))
    with client(shared) as c:
        plain = c.get("/api/now/table/sys_audit", params={"sysparm_query": f"tablename=incident^documentkeyIN{ids}",
                                                          "sysparm_fields": AUDIT_FIELDS}).json()["result"]
        timed = c.get("/api/now/table/sys_audit", params={"sysparm_query": f"tablename=incident^documentkeyIN{ids}^ORDERBYsys_created_on^ORDERBYsys_id",
                                                          "sysparm_fields": AUDIT_FIELDS}).json()["result"]
    assert [r["sys_id"] for r in plain] == sorted(r["sys_id"] for r in plain)
    assert [r["sys_created_on"] for r in plain] != sorted(r["sys_created_on"] for r in plain)  # sys_id order is not time order
    assert [(r["sys_created_on"], r["sys_id"]) for r in timed] == sorted((r["sys_created_on"], r["sys_id"]) for r in plain)


def test_a_records_audit_trail_from_insert_to_close(shared: ServiceNowSandbox) -> None:
    closed = next(n for n in range(1, 301) if shared.tables["incident"].rows.get(shared.numbers[n], {}).get("state") == "7")
    with client(shared) as c:
        rows = c.get("/api/now/table/sys_audit", params={
            "sysparm_query": f"tablename=incident^documentkey={shared.external_id(closed)}^fieldnameINstate,incident_state,comments,active"
                             "^ORDERBYsys_created_on^ORDERBYsys_id", "sysparm_fields": AUDIT_FIELDS + ",tablename"}).json()["result"]
    state = [r for r in rows if r["fieldname"] == "state"]
    assert state[0]["oldvalue"] == "" and state[0]["newvalue"] == "1" and state[0]["record_checkpoint"] == "0"  # the insert
    assert state[-1]["oldvalue"] == "6" and state[-1]["newvalue"] == "7" and state[-1]["user"] == "system"  # the autoclose job
    assert state[-1]["sys_created_on"].endswith(" 03:00:00")
    assert [r["newvalue"] for r in rows if r["fieldname"] == "incident_state"] == [r["newvalue"] for r in state]  # both audited
    assert [r["newvalue"] for r in rows if r["fieldname"] == "active"] == ["1", "0"]  # booleans as 1/0 in sys_audit
    first = next(r for r in rows if r["fieldname"] == "comments")
    assert first["oldvalue"] == "JOURNAL FIELD ADDITION" and first["sys_created_on"] == state[0]["sys_created_on"]
    assert re.fullmatch(r"[a-z]+\.user\d\d", first["user"])  # a user name, not a sys_id


def test_a_story_handoff_is_an_audited_change_of_assignment_group_and_the_record_follows_it(shared: ServiceNowSandbox) -> None:
    """The story hands a ticket from first line to the 2nd line (Step.group): sys_audit keeps the
    groups' sys_ids, old and new (reference §3.1, "for reference fields, old and new values are
    sys_ids"), and the record's group is the 2nd line from then on."""
    stories = {s.number: s for s in tell(300, seed=11, latest=ANCHOR - timedelta(minutes=5))}  # for_tests: seed 11
    handed = [(n, step) for n, story in stories.items() for step in story.steps if step.group is not None
              and shared.numbers[n] in shared.tables["incident"].rows]
    assert handed
    number, step = handed[0]
    with client(shared) as c:
        groups = {g["name"]: g["sys_id"] for g in c.get("/api/now/table/sys_user_group", params={"sysparm_fields": "sys_id,name"}).json()["result"]}
        rows = c.get("/api/now/table/sys_audit", params={
            "sysparm_query": f"tablename=incident^documentkey={shared.external_id(number)}^fieldname=assignment_group^ORDERBYsys_created_on",
            "sysparm_fields": AUDIT_FIELDS}).json()["result"]
        record = c.get(f"/api/now/table/incident/{shared.external_id(number)}", params={
            "sysparm_fields": "assignment_group,assignment_group.name,reassignment_count"}).json()["result"]
    assert [(r["oldvalue"], r["newvalue"], r["record_checkpoint"] == "0") for r in rows] == [
        ("", groups["Support"], True), (groups["Support"], groups["2nd line"], False)]  # the insert, then the handoff
    assert rows[1]["sys_created_on"] == step.at.strftime("%Y-%m-%d %H:%M:%S")
    assert rows[1]["user"] == AGENT_NAMES[stories[number].agent - 1]  # the agent who handed it on
    assert record == {"assignment_group": {"link": f"{shared.base_url}/api/now/table/sys_user_group/{groups['2nd line']}",
                                           "value": groups["2nd line"]}, "assignment_group.name": "2nd line", "reassignment_count": "1"}


def test_a_deleted_group_stays_a_sys_id_in_the_history_and_its_records(box: ServiceNowSandbox, http: httpx.Client) -> None:
    network = box.hand_off(5, "Network", ANCHOR - timedelta(minutes=3))
    box.delete_group("Network")
    rows = http.get("/api/now/table/sys_audit", params={
        "sysparm_query": f"documentkey={box.external_id(5)}^fieldname=assignment_group^record_checkpoint!=0",
        "sysparm_fields": "newvalue"}).json()["result"]
    record = http.get(f"/api/now/table/incident/{box.external_id(5)}", params={
        "sysparm_fields": "assignment_group,assignment_group.name", "sysparm_exclude_reference_link": "true"}).json()["result"]
    assert rows[-1] == {"newvalue": network}
    assert record == {"assignment_group": network, "assignment_group.name": ""}  # the dot-walk finds no group
    assert http.get("/api/now/table/sys_user_group", params={"sysparm_query": f"sys_id={network}"}).json() == {"result": []}


def test_without_audit_viewer_the_history_answers_an_empty_200() -> None:
    box = ServiceNowSandbox(20, anchor=ANCHOR, clock=lambda: ANCHOR, audit_viewer=False)
    with client(box) as c:
        audit = c.get("/api/now/table/sys_audit", params={"sysparm_query": "tablename=incident", "sysparm_limit": 1, "sysparm_fields": "sys_id"})
        journal = c.get("/api/now/table/sys_journal_field", params={"sysparm_limit": 1})
        sample = c.get("/api/now/table/incident", params={"sysparm_limit": 1, "sysparm_fields": "sys_id"})
    assert (audit.status_code, audit.json(), journal.status_code, journal.json()) == (200, {"result": []}, 200, {"result": []})
    assert len(sample.json()["result"]) == 1


def test_a_long_history_pages_its_audit_rows_with_link_next(box: ServiceNowSandbox, http: httpx.Client) -> None:
    box.long_history(3, 30)
    params: dict[str, Any] = {"sysparm_query": f"tablename=incident^documentkeyIN{box.external_id(3)}^fieldnameINstate,comments,work_notes"
                               "^ORDERBYsys_created_on^ORDERBYsys_id", "sysparm_fields": AUDIT_FIELDS, "sysparm_limit": 10}
    pages = [http.get("/api/now/table/sys_audit", params=params)]
    while "next" in pages[-1].links:
        pages.append(http.get(pages[-1].links["next"]["url"]))
    rows = [r for page in pages for r in page.json()["result"]]
    assert len(pages) >= 4 and len(rows) == int(pages[0].headers["X-Total-Count"]) == len({r["sys_id"] for r in rows})
    assert sum(1 for r in rows if r["fieldname"] == "work_notes") >= 30


# -- writing ----------------------------------------------------------------------------------


def test_patch_writes_the_field_a_work_note_its_journal_and_audit_rows(box: ServiceNowSandbox, http: httpx.Client) -> None:
    sys_id = box.external_id(4)
    before = http.get(f"/api/now/table/incident/{sys_id}", params={"sysparm_fields": "sys_mod_count"}).json()["result"]
    answer = http.patch(f"/api/now/table/incident/{sys_id}", params={"sysparm_fields": "sys_id,sys_updated_on,sys_mod_count,work_notes,u_sla_status",
                                                                     "sysparm_exclude_reference_link": "true"},
                        json={"u_sla_status": "breached", "work_notes": "SLA breach [sla-bridge:src:x:resolution:1]", "u_nonsense": "1"})
    assert answer.status_code == 200
    assert answer.json()["result"] == {"sys_id": sys_id, "sys_updated_on": "2026-11-01 12:00:00", "u_sla_status": "breached",
                                       "sys_mod_count": str(int(before["sys_mod_count"]) + 1), "work_notes": ""}  # the journal reads ""
    journal = http.get("/api/now/table/sys_journal_field", params={
        "sysparm_query": f"element_id={sys_id}^element=work_notes^valueLIKE[sla-bridge:src:x:resolution:1]", "sysparm_fields": "sys_id,value,sys_created_by"})
    audit = http.get("/api/now/table/sys_audit", params={"sysparm_query": f"documentkey={sys_id}^sys_created_on=2026-11-01 12:00:00",
                                                         "sysparm_fields": "fieldname,oldvalue,newvalue,user"}).json()["result"]
    assert [(r["value"], r["sys_created_by"]) for r in journal.json()["result"]] == [("SLA breach [sla-bridge:src:x:resolution:1]", "sla.bridge")]
    assert sorted((r["fieldname"], r["oldvalue"], r["newvalue"], r["user"]) for r in audit) == [
        ("u_sla_status", "", "breached", "sla.bridge"),
        ("work_notes", "JOURNAL FIELD ADDITION", "SLA breach [sla-bridge:src:x:resolution:1]", "sla.bridge")]
    assert box.api_journal == [{"sys_id": sys_id, "number": "INC0010004", "element": "work_notes",
                                "value": "SLA breach [sla-bridge:src:x:resolution:1]", "user": "sla.bridge"}]
    assert box.comments_by("sla.bridge") == [] and box.writeback_summary().tickets_tagged == 1
    assert box.writeback_summary().notes == ["SLA breach [sla-bridge:src:x:resolution:1]"]


def test_patch_without_a_response_body_missing_and_refused_records(box: ServiceNowSandbox, http: httpx.Client) -> None:
    quiet = http.patch(f"/api/now/table/incident/{box.external_id(5)}", json={"u_sla_status": "met"}, headers={"X-no-response-body": "true"})
    missing = http.patch("/api/now/table/incident/0123456789abcdef0123456789abcdef", json={"u_sla_status": "met"})
    box.hide(9)
    hidden = http.patch(f"/api/now/table/incident/{box.external_id(9)}", json={"u_sla_status": "met"})
    box.refuse("u_sla_status")
    refused = http.patch(f"/api/now/table/incident/{box.external_id(10)}", json={"u_sla_status": "met"})
    assert quiet.status_code == 200 and quiet.content == b""
    assert box.tables["incident"].rows[box.external_id(5)]["u_sla_status"] == "met"
    for answer in (missing, hidden):
        assert (answer.status_code, answer.json()) == (404, {"error": {"message": "No Record found", "detail": "Record doesn't exist or ACL "
                                                                       "restricts the record retrieval"}, "status": "failure"})
    assert refused.status_code == 403 and refused.json()["status"] == "failure" and "Data Policy Exception" in refused.json()["error"]["detail"]
    assert box.tables["incident"].rows[box.external_id(10)]["u_sla_status"] == ""


def test_a_comment_through_the_api_is_recorded_as_customer_visible(box: ServiceNowSandbox, http: httpx.Client) -> None:
    """The record a connector test reads to prove sla-bridge never wrote ``comments`` does catch one."""
    http.patch(f"/api/now/table/incident/{box.external_id(22)}", json={"comments": "Hello customer", "state": "2"})
    assert [(e["element"], e["value"]) for e in box.api_journal] == [("comments", "Hello customer")]
    assert box.comments_by("sla.bridge") == ["Hello customer"]
    audit = http.get("/api/now/table/sys_audit", params={"sysparm_query": f"documentkey={box.external_id(22)}^user=sla.bridge",
                                                         "sysparm_fields": "fieldname,newvalue"}).json()["result"]
    changed = {a["fieldname"] for a in audit}
    assert {"comments"} <= changed and (("state" in changed) == ("incident_state" in changed))


def test_a_patch_that_changes_nothing_writes_nothing(box: ServiceNowSandbox, http: httpx.Client) -> None:
    sys_id = box.external_id(11)
    audits = len(box.tables["sys_audit"].rows)
    row = dict(box.tables["incident"].rows[sys_id])
    answer = http.patch(f"/api/now/table/incident/{sys_id}", json={"short_description": row["short_description"], "sys_mod_count": "99"})
    assert answer.status_code == 200 and box.tables["incident"].rows[sys_id] == row and len(box.tables["sys_audit"].rows) == audits


def batch_item(item_id: str, sys_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": item_id, "method": "PATCH", "exclude_response_headers": True,
            "url": f"/api/now/table/incident/{sys_id}?sysparm_fields=sys_id,sys_updated_on,sys_mod_count&sysparm_exclude_reference_link=true",
            "headers": [{"name": "Content-Type", "value": "application/json"}, {"name": "Accept", "value": "application/json"}],
            "body": base64.b64encode(json.dumps(body).encode()).decode()}


def test_batch_runs_each_item_with_its_own_status(box: ServiceNowSandbox, http: httpx.Client) -> None:
    box.hide(13)
    answer = http.post("/api/now/v1/batch", json={"batch_request_id": "b1", "rest_requests": [
        batch_item("1", box.external_id(12), {"u_sla_status": "at_risk", "work_notes": "note [sla-bridge:a]"}),
        batch_item("2", box.external_id(13), {"u_sla_status": "at_risk"}),
        {**batch_item("3", box.external_id(14), {}), "body": "not base64!"}]})
    data = answer.json()
    served = {s["id"]: s for s in data["serviced_requests"]}
    assert answer.status_code == 200 and data["batch_request_id"] == "b1" and data["unserviced_requests"] == []
    assert [served[i]["status_code"] for i in ("1", "2", "3")] == [200, 404, 400]
    first = json.loads(base64.b64decode(served["1"]["body"]))["result"]
    assert set(first) == {"sys_id", "sys_updated_on", "sys_mod_count"} and first["sys_id"] == box.external_id(12)
    assert json.loads(base64.b64decode(served["2"]["body"]))["error"]["message"] == "No Record found"
    assert "headers" not in served["1"] and isinstance(served["1"]["execution_time"], int)
    assert box.work_notes(12)[-1] == "note [sla-bridge:a]" and box.writes() == 1
    assert box.requests[-1][2]["rest_requests"][0].startswith("PATCH /api/now/table/incident/")


def test_batch_items_past_the_timeout_are_unserviced(box: ServiceNowSandbox, http: httpx.Client) -> None:
    box.batch_timeout(after=2)
    items = [batch_item(str(i), box.external_id(i), {"u_sla_status": "met"}) for i in (15, 16, 17, 18)]
    data = http.post("/api/now/v1/batch", json={"batch_request_id": "b2", "rest_requests": items}).json()
    assert [s["id"] for s in data["serviced_requests"]] == ["15", "16"] and data["unserviced_requests"] == ["17", "18"]
    assert box.tables["incident"].rows[box.external_id(17)]["u_sla_status"] == ""


def test_writes_need_a_json_content_type(box: ServiceNowSandbox, http: httpx.Client) -> None:
    url = f"/api/now/table/incident/{box.external_id(21)}"
    untyped = http.patch(url, content=b'{"u_sla_status": "met"}')
    as_text = http.patch(url, content=b'{"u_sla_status": "met"}', headers={"Content-Type": "text/plain"})
    assert (untyped.status_code, as_text.status_code) == (400, 415) and untyped.json()["status"] == "failure"
    assert box.tables["incident"].rows[box.external_id(21)]["u_sla_status"] == ""


def test_post_creates_an_audited_record_and_delete_removes_it(box: ServiceNowSandbox, http: httpx.Client) -> None:
    created = http.post("/api/now/table/incident", params={"sysparm_exclude_reference_link": "true"},
                        json={"short_description": "Printer on fire", "caller_id": box.users["acme.user01"], "urgency": "1", "impact": "1"})
    record = created.json()["result"]
    audit = http.get("/api/now/table/sys_audit", params={"sysparm_query": f"documentkey={record['sys_id']}^fieldnameINstate,priority",
                                                         "sysparm_fields": "fieldname,oldvalue,newvalue"}).json()["result"]
    gone = http.delete(f"/api/now/table/incident/{record['sys_id']}")
    assert created.status_code == 201 and created.headers["Location"].endswith(record["sys_id"])
    assert (record["state"], record["priority"], record["opened_by"], record["sys_mod_count"]) == ("1", "1", box.users["sla.bridge"], "0")
    assert sorted((a["fieldname"], a["oldvalue"], a["newvalue"]) for a in audit) == [("priority", "", "1"), ("state", "", "1")]
    assert gone.status_code == 204 and http.get(f"/api/now/table/incident/{record['sys_id']}").status_code == 404
    assert http.patch(f"/api/now/table/sys_user/{box.users['acme.user01']}", json={"name": "x"}).status_code == 403


# -- faults -----------------------------------------------------------------------------------


def test_endless_paging_is_an_empty_page_whose_link_always_moves_on(box: ServiceNowSandbox, http: httpx.Client) -> None:
    box.inject("endless", path="/api/now/table/incident", times=3)
    answer = records(http, f"sys_updated_on>=2026-01-01 00:00:00{ORDER}", 50)
    offsets = []
    for _ in range(3):
        assert answer.json()["result"] == []
        offsets.append(int(re.search(r"sysparm_offset=(\d+)", answer.links["next"]["url"]).group(1)))  # type: ignore[union-attr]
        answer = http.get(answer.links["next"]["url"])
    assert offsets == [50, 100, 150]  # ever further on
    assert answer.headers["X-Total-Count"] == str(len(box.tables["incident"].rows))  # then the fault is spent: a real answer


def test_foreign_links_point_every_url_elsewhere(box: ServiceNowSandbox, http: httpx.Client) -> None:
    box.inject("foreign_links")
    answer = http.get("/api/now/table/incident", params={"sysparm_limit": 5})
    assert answer.links["next"]["url"].startswith("https://harvest.example.net/api/now/table/incident?")
    assert answer.json()["result"][0]["caller_id"]["link"].startswith("https://harvest.example.net/")
    assert http.get("/api/now/table/incident", params={"sysparm_limit": 5}).links["next"]["url"].startswith(box.base_url)


def test_served_on_a_loopback_port_links_name_that_origin() -> None:
    box = ServiceNowSandbox(10, anchor=ANCHOR, clock=lambda: ANCHOR)
    with box.serve() as url, httpx.Client(base_url=url, auth=(box.username, box.password)) as c:
        answer = c.get("/api/now/table/incident", params={"sysparm_limit": 2, "sysparm_fields": "number"})
    assert answer.status_code == 200 and answer.links["next"]["url"].startswith(f"{url}/api/now/table/incident?")
    assert answer.headers["Date"] == "Sun, 01 Nov 2026 12:00:00 GMT"


# -- auth, limits, errors ---------------------------------------------------------------------


def test_oauth_client_credentials_tokens_expire_by_the_sandbox_clock() -> None:
    clock = Clock(ANCHOR)
    box = ServiceNowSandbox(10, anchor=ANCHOR, clock=clock)
    with client(box, auth=False) as c:
        form = {"grant_type": "client_credentials", "client_id": box.client_id, "client_secret": box.client_secret}
        token = c.post("/oauth_token.do", data=form)
        as_json = c.post("/oauth_token.do", json=form)
        wrong = c.post("/oauth_token.do", data={**form, "client_secret": "nope"})
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        fresh = c.get("/api/now/table/incident", params={"sysparm_limit": 1}, headers=bearer)
        clock.now += timedelta(seconds=1799)
        expired = c.get("/api/now/table/incident", params={"sysparm_limit": 1}, headers=bearer)
    assert token.status_code == 200 and {k: v for k, v in token.json().items() if k != "access_token"} == {
        "scope": "useraccount", "token_type": "Bearer", "expires_in": 1799}
    assert as_json.status_code == 400 and wrong.status_code == 401
    assert fresh.status_code == 200 and expired.status_code == 401
    assert expired.json() == {"error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}, "status": "failure"}
    assert box.writes() == 0  # a token request changes nothing


def test_bad_basic_credentials_are_a_401(box: ServiceNowSandbox) -> None:
    with httpx.Client(transport=box.transport(), base_url=box.base_url, auth=(box.username, "wrong")) as c:
        answer = c.get("/api/now/table/incident")
    assert answer.status_code == 401 and answer.json()["error"]["message"] == "User Not Authenticated"


def test_rate_rules_answer_429_with_their_headers_and_no_remaining() -> None:
    clock = Clock(ANCHOR + timedelta(minutes=10))
    box = ServiceNowSandbox(10, anchor=ANCHOR, clock=clock, rate_rules={"GET /now/table/{tableName}": 2})
    with client(box) as c:
        answers = [c.get("/api/now/table/incident", params={"sysparm_limit": 1}) for _ in range(2)]
        answers.append(c.get("/api/now/v2/table/sys_user", params={"sysparm_limit": 1}))  # the same resource, another table and version
        other = c.get(f"/api/now/table/incident/{box.external_id(1)}")  # no rule names it
        clock.now += timedelta(minutes=50)
        next_hour = c.get("/api/now/table/incident", params={"sysparm_limit": 1})
    limited = answers[2]
    reset = int((ANCHOR + timedelta(hours=1)).timestamp())
    assert [a.status_code for a in answers] == [200, 200, 429] and other.status_code == 200 and next_hour.status_code == 200
    assert limited.headers["Retry-After"] == "3000" and limited.headers["X-RateLimit-Limit"] == "2"
    assert limited.headers["X-RateLimit-Reset"] == str(reset) and GUID.fullmatch(limited.headers["X-RateLimit-Rule"])
    assert answers[0].headers["X-RateLimit-Rule"] == limited.headers["X-RateLimit-Rule"]  # counted answers carry the rule too
    assert all("X-RateLimit-Remaining" not in a.headers for a in (*answers, next_hour))
    assert limited.json() == {"error": {"message": "Rate limit exceeded", "detail": "Rate limit of 2 requests per hour for Table API exceeded"},
                              "status": "failure"}


def test_a_semaphore_429_has_no_headers(box: ServiceNowSandbox, http: httpx.Client) -> None:
    box.semaphores_exhausted(1)
    first = http.get("/api/now/table/incident", params={"sysparm_limit": 1})
    box.inject("429", path="/api/now/table/incident")
    injected = http.get("/api/now/table/incident", params={"sysparm_limit": 1})
    box.inject("429", path="/api/now/table/incident", retry_after=7)
    ruled = http.get("/api/now/table/incident", params={"sysparm_limit": 1})
    for answer in (first, injected):
        assert answer.status_code == 429 and not [h for h in answer.headers if h.lower().startswith(("retry-after", "x-ratelimit"))]
    assert ruled.status_code == 429 and ruled.headers["Retry-After"] == "7" and "X-RateLimit-Rule" in ruled.headers
    assert http.get("/api/now/table/incident", params={"sysparm_limit": 1}).status_code == 200


def test_error_shapes(http: httpx.Client) -> None:
    invalid_table = http.get("/api/now/table/incidnet")
    nowhere = http.get("/api/now/tabel/incident")
    bad_limit = http.get("/api/now/table/incident", params={"sysparm_limit": "0"})
    for answer, status in ((invalid_table, 400), (nowhere, 400), (bad_limit, 400)):
        body = answer.json()
        assert answer.status_code == status and set(body) == {"error", "status"} and body["status"] == "failure"
        assert set(body["error"]) == {"message", "detail"}
    assert invalid_table.json()["error"]["message"] == "Invalid table incidnet"


# -- hooks ------------------------------------------------------------------------------------


def test_hooks_the_conformance_suite_uses(box: ServiceNowSandbox, http: httpx.Client) -> None:
    box.malform(2)
    label = box.unknown_value(3)
    box.noted(1, "[sla-bridge:src:1:resolution:1]")
    malformed = http.get(f"/api/now/table/incident/{box.external_id(2)}", params={"sysparm_fields": "opened_at,sys_created_on,sys_updated_on"}).json()
    state = http.get(f"/api/now/table/incident/{box.external_id(3)}", params={"sysparm_fields": "state", "sysparm_display_value": "all"}).json()
    choice = http.get("/api/now/table/sys_choice", params={"sysparm_query": "name=incident^element=state^value=21", "sysparm_fields": "label"}).json()
    assert malformed["result"]["opened_at"] == "not a date" and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", malformed["result"]["sys_updated_on"])
    assert label == "Awaiting Evidence" == state["result"]["state"]["display_value"] and state["result"]["state"]["value"] == "21"
    assert choice == {"result": [{"label": "Awaiting Evidence"}]}
    assert box.work_notes(1)[-1].endswith("[sla-bridge:src:1:resolution:1]")
    assert box.busy_ticket() is None
    config = box.source_config("http://127.0.0.1:9", "SN_PASSWORD")
    assert config == {"system": "servicenow", "url": "http://127.0.0.1:9", "start": "2026-07-24",
                      "auth": {"username": "sla.bridge", "password_env": "SN_PASSWORD"}, "table": "incident",
                      "fields": {"customer": "company.name", "group": "assignment_group.name"},
                      "writeback": {"enabled": True, "status_field": "u_sla_status"}}
    assert box.token == box.password


def test_customer_and_agent_replies_move_the_state_as_the_base_rules_do(box: ServiceNowSandbox, http: httpx.Client) -> None:
    moment = ANCHOR - timedelta(minutes=3)
    box.agent_replies(20, at=moment - timedelta(minutes=1), waiting=True)
    box.customer_replies(20, at=moment)
    row = http.get(f"/api/now/table/incident/{box.external_id(20)}", params={"sysparm_fields": "state,hold_reason,incident_state"}).json()["result"]
    assert row == {"state": "2", "hold_reason": "", "incident_state": "2"}
    assert box.comments_by(box.tables["sys_user"].rows[box.tables["incident"].rows[box.external_id(20)]["caller_id"]]["user_name"])[-1] == "Any news?"


def test_the_dictionary_and_choices_list_the_custom_fields(http: httpx.Client) -> None:
    columns = http.get("/api/now/table/sys_dictionary", params={"sysparm_query": "nameINincident,task^elementISNOTEMPTY",
                                                                "sysparm_fields": "name,element,column_label,internal_type,reference,max_length",
                                                                "sysparm_limit": 1000}).json()["result"]
    by_element = {c["element"]: c for c in columns}
    assert by_element["u_sla_status"] == {"name": "incident", "element": "u_sla_status", "column_label": "SLA status", "internal_type": "string",
                                          "reference": "", "max_length": "40"}
    assert by_element["u_service"]["internal_type"] == "choice" and by_element["state"]["name"] == "task"
    assert by_element["caller_id"]["reference"] == "sys_user" and "" not in by_element
    services = http.get("/api/now/table/sys_choice", params={"sysparm_query": "nameINincident,task^element=u_service^inactive=false",
                                                             "sysparm_fields": "value,label"}).json()["result"]
    assert sorted((s["value"], s["label"]) for s in services) == [("email", "Email"), ("printing", "Printing"), ("vpn", "VPN")]


@pytest.mark.parametrize(("table", "caller", "states"), [
    ("sn_customerservice_case", "contact", {"1": "New", "10": "Open", "18": "Awaiting Info", "6": "Resolved", "3": "Closed", "7": "Cancelled"}),
    ("sc_req_item", "requested_for", {"-5": "Pending", "1": "Open", "2": "Work in Progress", "3": "Closed Complete", "4": "Closed Incomplete",
                                      "7": "Closed Skipped"}),
])
def test_other_tables_use_their_own_states_and_caller_fields(table: str, caller: str, states: dict[str, str]) -> None:
    box = ServiceNowSandbox(60, anchor=ANCHOR, clock=lambda: ANCHOR, table=table)
    with client(box) as c:
        rows = c.get(f"/api/now/table/{table}", params={"sysparm_fields": f"number,state,{caller},account", "sysparm_exclude_reference_link": "true",
                                                         "sysparm_display_value": "all"}).json()["result"]
        choices = c.get("/api/now/table/sys_choice", params={"sysparm_query": f"nameIN{table},task^element=state^inactive=false",
                                                             "sysparm_fields": "name,value,label"}).json()["result"]
        empty = c.get("/api/now/table/incident").json()
    own = {ch["value"]: ch["label"] for ch in choices if ch["name"] == table} or {ch["value"]: ch["label"] for ch in choices if ch["name"] == "task"}
    assert own == states and empty == {"result": []}
    assert rows and all(r[caller]["value"] and r[caller]["display_value"] for r in rows)
    assert {r["state"]["value"] for r in rows} <= set(states) and all(r["state"]["display_value"] == states[r["state"]["value"]] for r in rows)
    assert rows[0]["number"]["value"].startswith("CS" if table == "sn_customerservice_case" else "RITM")
    assert box.source_config("u", "e")["table"] == table
