"""ServiceNow records and sys_audit rows -> the normalised model, on the shapes of
../shared/reference/servicenow-api.md (sections 2.4-2.7, 3.1, 12): raw values as strings, "" for
nothing, naive UTC date-times, audit rows out of time order, one update's rows sharing a checkpoint."""

from __future__ import annotations

import copy
import random
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

from bridge.framework.mapping import ValueMapper
from bridge.framework.roster import AgentRoster, Span
from connectors.servicenow.normalise import DEFAULT_PRIORITIES, DEFAULT_STATUSES, Choices, ServiceNowRecords

SYS_ID = "9c573169c611228700193229fff72400"
CALLER = "5137153cc611227c000bbd1bd8cd2005"
COMPANY = "31bea3d53790200044e0bfc8bcbe5dec"
GROUP = "8a5055c9c61122780043563ef53438e3"
AGENT_ID = "46d44a23a9fe19810012d100cca80666"
MARKER = "[sla-bridge:sn:9c573169c611228700193229fff72400:resolution:1]"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)


def choice(name: str, element: str, value: str, label: str, dependent: str = "") -> dict[str, str]:
    return {"name": name, "element": element, "value": value, "label": label, "sequence": value, "dependent_value": dependent}


# sys_choice rows as the look-up returns them: task's rows first, then the table's, which override them.
CHOICES = [
    choice("task", "state", "1", "Open"), choice("task", "state", "2", "Work in Progress"),
    choice("task", "state", "3", "Closed Complete"), choice("task", "state", "-5", "Pending"),
    choice("task", "priority", "1", "1 - Critical"), choice("task", "priority", "2", "2 - High"),
    choice("task", "priority", "3", "3 - Moderate"), choice("task", "priority", "4", "4 - Low"),
    choice("task", "priority", "5", "5 - Planning"),
    choice("incident", "state", "1", "New"), choice("incident", "state", "2", "In Progress"),
    choice("incident", "state", "3", "On Hold"), choice("incident", "state", "6", "Resolved"),
    choice("incident", "state", "7", "Closed"), choice("incident", "state", "8", "Canceled"), choice("incident", "state", "9", "Triage"),
    choice("incident", "hold_reason", "1", "Awaiting Caller", "3"), choice("incident", "hold_reason", "3", "Awaiting Problem", "3"),
    choice("incident", "hold_reason", "4", "Awaiting Vendor", "3"), choice("incident", "hold_reason", "5", "Awaiting Change", "3"),
]


def records(table: str = "incident", *, statuses: dict[str, str] | None = None, priorities: dict[str, str] | None = None,
            fields: dict[str, str] | None = None, choices: list[dict[str, str]] | None = None, **options: Any) -> ServiceNowRecords:
    values = ValueMapper(statuses={**DEFAULT_STATUSES, **(statuses or {})}, priorities={**DEFAULT_PRIORITIES, **(priorities or {})})
    return ServiceNowRecords("sn", "https://acme.service-now.com/", table, values, fields or {},
                             Choices(CHOICES if choices is None else choices), **options)


# Raw mode with exclude_reference_link=true: every value a string, "" for nothing, references bare sys_ids.
RECORD: dict[str, Any] = {
    "sys_id": SYS_ID,
    "number": "INC0010042",
    "short_description": "VPN drops every 10 minutes",
    "state": "3", "hold_reason": "1", "priority": "2",
    "active": "true",
    "opened_at": "2026-03-02 08:14:05",
    "resolved_at": "", "closed_at": "",
    "sys_created_on": "2026-03-02 08:14:09",   # differs from opened_at on most rows
    "sys_updated_on": "2026-03-02 13:40:11",
    "sys_mod_count": "6",
    "caller_id": CALLER,
    "opened_by": CALLER,
    "company": COMPANY,
    "company.name": "Acme Corp",
    "assignment_group": GROUP,
    "assigned_to": "",
    "u_sla_status": "at_risk",
    "u_service_credit_note": "",
}


@pytest.fixture
def berlin() -> Iterator[None]:
    """The process's local zone is not UTC: a naive time read as local would be off by an hour or two."""
    saved = time.tzname
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "Europe/Berlin")
        time.tzset()
        assert time.tzname != saved or time.timezone != 0
        yield
    time.tzset()


def test_a_raw_record_becomes_a_ticket(berlin: None) -> None:
    [ticket] = records(fields={"customer": "company.name", "group": "assignment_group"}, status_field="u_sla_status").ticket(
        copy.deepcopy(RECORD))
    assert (ticket.source, ticket.system, ticket.external_id, ticket.key, ticket.id) == (
        "sn", "servicenow", SYS_ID, "INC0010042", f"sn:{SYS_ID}")
    assert ticket.url == f"https://acme.service-now.com/nav_to.do?uri=incident.do?sys_id={SYS_ID}"
    assert ticket.title == "VPN drops every 10 minutes"
    assert (ticket.status, ticket.status_raw) == ("waiting_customer", "On Hold/Awaiting Caller")
    assert (ticket.priority, ticket.priority_raw) == ("p2", "2 - High")
    assert (ticket.customer, ticket.group, ticket.service, ticket.type) == ("Acme Corp", GROUP, None, None)
    assert (ticket.requester, ticket.assignee) == (CALLER, None)  # "" is nobody
    # naive UTC text stays UTC whatever the local zone (Berlin is UTC+1 in March)
    assert (ticket.created_at, ticket.updated_at, ticket.resolved_at) == (utc(2026, 3, 2, 8, 14, 5), utc(2026, 3, 2, 13, 40, 11), None)
    assert ticket.version == "6"
    assert ticket.fields == {"u_sla_status": "at_risk", "u_service_credit_note": ""}
    assert ticket.tags == []


def test_times_either_side_of_a_dst_change_are_read_as_utc(berlin: None) -> None:
    # 01:30 and 02:30 UTC on 29 March 2026 are 03:30 and 04:30 in Berlin; 02:30 local does not exist.
    raw = {**RECORD, "opened_at": "2026-03-29 01:30:00", "sys_updated_on": "2026-03-29 02:30:00"}
    [ticket] = records().ticket(raw)
    assert (ticket.created_at, ticket.updated_at) == (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30))


def test_created_is_opened_at_else_sys_created_on() -> None:
    [ticket] = records().ticket({**RECORD, "opened_at": ""})
    assert ticket.created_at == utc(2026, 3, 2, 8, 14, 9)


def test_a_reference_with_its_link_reads_as_its_sys_id() -> None:
    # exclude_reference_link left out: {"link", "value"}
    raw = {**RECORD, "caller_id": {"link": f"https://acme.service-now.com/api/now/table/sys_user/{CALLER}", "value": CALLER}}
    assert records().ticket(raw)[0].requester == CALLER


def test_names_resolve_references_and_anything_else_stays_as_pulled() -> None:
    service = "27d32778c0a8000b00db970eeaa60f16"
    raw = {**RECORD, "business_service": service, "category": "network"}
    [ticket] = records(fields={"group": "assignment_group", "service": "business_service", "type": "category"},
                       names={GROUP: "Network", "ffffffffffffffffffffffffffffffff": "Other"}).ticket(raw)
    assert (ticket.group, ticket.service, ticket.type) == ("Network", service, "network")


@pytest.mark.parametrize(("table", "field"), [("incident", "caller_id"), ("sn_customerservice_case", "contact"),
                                              ("sc_req_item", "requested_for")])
def test_the_requester_is_the_table_s_caller(table: str, field: str) -> None:
    contact = "62826bf03710200044e0bfc8bcbe5df1"
    raw = {**RECORD, "caller_id": CALLER if field != "caller_id" else contact, field: contact}
    assert records(table).ticket(raw)[0].requester == contact


def test_the_url_names_the_configured_table() -> None:
    [ticket] = records("sn_customerservice_case").ticket({**RECORD, "number": "CS0001001", "state": "10"})
    assert ticket.url == f"https://acme.service-now.com/nav_to.do?uri=sn_customerservice_case.do?sys_id={SYS_ID}"


@pytest.mark.parametrize(("state", "hold", "statuses", "status", "raw"), [
    ("3", "1", {}, "waiting_customer", "On Hold/Awaiting Caller"),
    ("3", "4", {}, "waiting_third_party", "On Hold/Awaiting Vendor"),
    ("3", "5", {}, "on_hold", "On Hold/Awaiting Change"),
    ("3", "", {}, "on_hold", "On Hold"),
    ("3", "9", {}, "on_hold", "On Hold"),                       # a hold reason the instance does not list
    ("2", "1", {}, "open", "In Progress"),                      # a hold reason left behind: not part of the status
    ("6", "", {}, "resolved", "Resolved"),
    ("3", "1", {"3/1": "on_hold"}, "on_hold", "3/1"),           # by codes, first
    ("3", "1", {"3": "open"}, "waiting_customer", "On Hold/Awaiting Caller"),  # labels with the hold beat the bare code
    ("3", "", {"3": "waiting_third_party"}, "waiting_third_party", "3"),       # the bare code beats the bare label
    ("2", "", {"In Progress": "new"}, "new", "In Progress"),
    ("10", "", {}, "10", "10"),                                 # no label known: the code, reported unmapped
    ("9", "1", {}, "Triage", "Triage"),                         # unmapped, with a hold reason of another state: left out
    ("9", "", {"9/1": "open"}, "Triage", "Triage"),
])
def test_the_status_is_the_state_and_hold_reason_by_the_first_key_the_config_maps(
        state: str, hold: str, statuses: dict[str, str], status: str, raw: str) -> None:
    [ticket] = records(statuses=statuses).ticket({**RECORD, "state": state, "hold_reason": hold})
    assert (ticket.status, ticket.status_raw) == (status, raw)


def test_an_unmapped_status_is_reported_by_its_labels() -> None:
    translated = [choice("incident", "state", "3", "En attente"), choice("incident", "hold_reason", "1", "Attente de l'appelant", "3")]
    sn = records(choices=translated)
    [ticket] = sn.ticket(copy.deepcopy(RECORD))
    assert (ticket.status, ticket.status_raw) == ("En attente/Attente de l'appelant", "En attente/Attente de l'appelant")
    assert sn.values.unmapped["status \"En attente/Attente de l'appelant\""] == 1


def test_a_table_without_hold_reasons_maps_its_state_alone() -> None:
    case_choices = [choice("sn_customerservice_case", "state", "18", "Awaiting Info"), choice("task", "state", "18", "Something else")]
    raw = {key: value for key, value in RECORD.items() if key != "hold_reason"} | {"state": "18"}
    [ticket] = records("sn_customerservice_case", choices=case_choices).ticket(raw)
    assert (ticket.status, ticket.status_raw) == ("waiting_customer", "Awaiting Info")


def test_the_table_s_own_choices_override_task_s_in_any_order() -> None:
    rows = [choice("incident", "state", "2", "In Progress"), choice("task", "state", "2", "Work in Progress"),
            choice("task", "state", "-5", "Pending")]
    sn = records(choices=rows)
    assert sn.ticket({**RECORD, "state": "2", "hold_reason": ""})[0].status_raw == "In Progress"
    assert sn.ticket({**RECORD, "state": "-5", "hold_reason": ""})[0].status_raw == "Pending"  # task's, where the table has none
    assert Choices(rows).label("state", "2") == "In Progress"


@pytest.mark.parametrize(("label", "status"), [("Open", "open"), ("Work in Progress", "open"), ("Pending", "on_hold"),
                                               ("Closed Complete", "closed"), ("Closed Incomplete", "closed"),
                                               ("Closed Skipped", "closed"), ("Awaiting Info", "waiting_customer"),
                                               ("Cancelled", "canceled"), ("Canceled", "canceled")])
def test_the_defaults_cover_the_task_and_case_families(label: str, status: str) -> None:
    assert DEFAULT_STATUSES[label] == status


@pytest.mark.parametrize(("code", "priorities", "priority", "raw"), [
    ("1", {}, "p1", "1 - Critical"),
    ("5", {}, "p5", "5 - Planning"),
    ("2", {"2": "p1"}, "p1", "2"),      # the config maps the code: the code is kept
    ("", {}, None, None),
    ("7", {}, None, "7"),               # no label, not mapped: dropped, reported
])
def test_the_priority_is_its_label_or_its_mapped_code(code: str, priorities: dict[str, str], priority: str | None,
                                                      raw: str | None) -> None:
    [ticket] = records(priorities=priorities).ticket({**RECORD, "priority": code})
    assert (ticket.priority, ticket.priority_raw) == (priority, raw)


@pytest.mark.parametrize(("state", "closed_at", "resolved"), [
    ("7", "2026-03-05 10:00:00", utc(2026, 3, 5, 10)),   # sc_req_item-like: closed, no resolved_at
    ("2", "2026-03-05 10:00:00", None),                  # messy data: In Progress with closed_at set
])
def test_closed_at_stands_in_for_resolved_at_only_on_a_record_that_is_done(state: str, closed_at: str, resolved: datetime | None) -> None:
    [ticket] = records().ticket({**RECORD, "state": state, "hold_reason": "", "closed_at": closed_at})
    assert ticket.resolved_at == resolved


def test_resolved_at_is_taken_as_pulled() -> None:
    [ticket] = records().ticket({**RECORD, "state": "6", "resolved_at": "2026-03-04 09:00:00", "closed_at": "2026-03-07 09:00:00"})
    assert ticket.resolved_at == utc(2026, 3, 4, 9)


@pytest.mark.parametrize(("change", "reason"), [
    ({"opened_at": "02.03.2026 09:14:05"}, "incident INC0010042: opened_at is '02.03.2026 09:14:05', not a raw date-time"),
    ({"sys_updated_on": "2026-03-02T13:40:11Z"}, "incident INC0010042: sys_updated_on is '2026-03-02T13:40:11Z', not a raw"),
    ({"sys_updated_on": "2026-02-30 13:40:11"}, "incident INC0010042: sys_updated_on is '2026-02-30 13:40:11', not a date-time"),
    ({"sys_updated_on": ""}, "incident INC0010042: sys_updated_on is not set"),
    ({"opened_at": "", "sys_created_on": ""}, "incident INC0010042: neither opened_at nor sys_created_on is set"),
    ({"state": {"display_value": "On Hold", "value": "3"}}, "incident INC0010042: state is a display value"),
    ({"caller_id": {"display_value": "Abel Tuter", "link": "https://acme.service-now.com/x"}}, "incident INC0010042: caller_id is a display value"),
    ({"priority": 2}, "incident INC0010042: priority is 2, not text"),
    ({"sys_mod_count": "six"}, "incident INC0010042: sys_mod_count is 'six', not a count"),
    ({"sys_id": "INC0010042"}, "incident INC0010042: sys_id is 'INC0010042', not a sys_id"),
    ({"sys_id": SYS_ID.upper()}, "incident INC0010042: sys_id is"),
    ({"number": ""}, f"incident record '{SYS_ID}': number is ''"),
])
def test_a_malformed_record_raises_naming_the_record_and_field(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(reason)):
        records().ticket({**RECORD, **change})


def test_a_record_without_its_state_raises_saying_what_to_ask_for() -> None:
    raw = {key: value for key, value in RECORD.items() if key != "state"}
    with pytest.raises(ValueError, match=r"^incident INC0010042: state is missing \(is it among sysparm_fields\?\)"):
        records().ticket(raw)


# -- history ------------------------------------------------------------------------------------

def audit(sys_id: str, field: str, old: str, new: str, at: str, checkpoint: str, user: str = "beth.anglin") -> dict[str, str]:
    return {"sys_id": sys_id, "documentkey": SYS_ID, "fieldname": field, "oldvalue": old, "newvalue": new, "user": user,
            "sys_created_on": at, "record_checkpoint": checkpoint}


def row_id(n: int) -> str:
    # sys_ids whose order is not time order: the sys_id order of a response says nothing about when
    return f"{(n * 7919) % 1000:03d}{n:029x}"


J = "JOURNAL FIELD ADDITION"
# One incident's life, as sys_audit holds it (incident_state mirrors state on every update).
HISTORY = [
    # the insert: empty old values, the caller's first comment with it
    audit(row_id(1), "state", "", "1", "2026-03-02 08:14:05", "0", "abel.tuter"),
    audit(row_id(2), "incident_state", "", "1", "2026-03-02 08:14:05", "0", "abel.tuter"),
    audit(row_id(3), "priority", "", "3", "2026-03-02 08:14:05", "0", "abel.tuter"),
    audit(row_id(4), "comments", "", "VPN drops every 10 minutes", "2026-03-02 08:14:05", "0", "abel.tuter"),
    # the agent takes it and raises the priority
    audit(row_id(5), "state", "1", "2", "2026-03-02 09:00:00", "1"),
    audit(row_id(6), "incident_state", "1", "2", "2026-03-02 09:00:00", "1"),
    audit(row_id(7), "priority", "3", "2", "2026-03-02 09:00:00", "1"),
    audit(row_id(8), "comments", J, "Please restart the client and tell me", "2026-03-02 09:05:00", "2"),
    # one update: state and hold reason together, one status change
    audit(row_id(9), "state", "2", "3", "2026-03-02 09:06:00", "3"),
    audit(row_id(10), "hold_reason", "", "1", "2026-03-02 09:06:00", "3"),
    audit(row_id(11), "incident_state", "2", "3", "2026-03-02 09:06:00", "3"),
    # the caller answers; the instance takes the incident back to In Progress in the same update
    audit(row_id(12), "comments", J, "Still drops", "2026-03-02 10:00:00", "4", "abel.tuter"),
    audit(row_id(13), "state", "3", "2", "2026-03-02 10:00:00", "4", "abel.tuter"),
    audit(row_id(14), "hold_reason", "1", "", "2026-03-02 10:00:00", "4", "abel.tuter"),
    # on hold for a vendor, then for a problem: the hold reason alone changes the status
    audit(row_id(15), "state", "2", "3", "2026-03-02 11:00:00", "5"),
    audit(row_id(16), "hold_reason", "", "4", "2026-03-02 11:00:00", "5"),
    audit(row_id(17), "hold_reason", "4", "3", "2026-03-02 12:00:00", "6"),
    # work notes: sla-bridge's own, with its marker, and an agent's without one
    audit(row_id(18), "work_notes", J, f"SLA breach: resolution target missed by 42 min {MARKER}", "2026-03-02 13:40:11", "7", "sla.bridge"),
    audit(row_id(19), "work_notes", J, "Vendor ticket VND-77 opened", "2026-03-02 13:45:00", "8"),
    # two updates in one second: checkpoint 9 before 10 (as numbers, not text)
    audit(row_id(20), "state", "3", "2", "2026-03-02 15:00:00", "9"),
    audit(row_id(21), "hold_reason", "3", "", "2026-03-02 15:00:00", "9"),
    audit(row_id(22), "state", "2", "6", "2026-03-02 15:00:00", "10"),
]
AGENTS = AgentRoster([Span("beth.anglin", None), Span("sla.bridge", None)])


def history(rows: list[dict[str, str]] | None = None, roster: AgentRoster = AGENTS, *, caller_user: str | None = "abel.tuter",
            own_user: str | None = "sla.bridge", **options: Any) -> list[Any]:
    shuffled = sorted(copy.deepcopy(HISTORY if rows is None else rows), key=lambda row: row["sys_id"])
    return [(e.event_id, e.kind, e.at, e.from_value, e.to_value, e.author)
            for e in records(**options).events(SYS_ID, shuffled, roster, caller_user=caller_user, own_user=own_user)]


def test_a_record_s_audit_rows_become_its_history_in_time_order() -> None:
    assert history() == [
        (f"s{row_id(1)}", "status", utc(2026, 3, 2, 8, 14, 5), None, "new", "abel.tuter"),
        (f"p{row_id(3)}", "priority", utc(2026, 3, 2, 8, 14, 5), None, "p3", "abel.tuter"),
        (f"c{row_id(4)}", "customer_reply", utc(2026, 3, 2, 8, 14, 5), None, None, "abel.tuter"),
        (f"s{row_id(5)}", "status", utc(2026, 3, 2, 9), "new", "open", "beth.anglin"),
        (f"p{row_id(7)}", "priority", utc(2026, 3, 2, 9), "p3", "p2", "beth.anglin"),
        (f"c{row_id(8)}", "agent_reply", utc(2026, 3, 2, 9, 5), None, None, "beth.anglin"),
        (f"s{row_id(9)}", "status", utc(2026, 3, 2, 9, 6), "open", "waiting_customer", "beth.anglin"),
        (f"s{row_id(13)}", "status", utc(2026, 3, 2, 10), "waiting_customer", "open", "abel.tuter"),
        (f"c{row_id(12)}", "customer_reply", utc(2026, 3, 2, 10), None, None, "abel.tuter"),
        (f"s{row_id(15)}", "status", utc(2026, 3, 2, 11), "open", "waiting_third_party", "beth.anglin"),
        (f"s{row_id(17)}", "status", utc(2026, 3, 2, 12), "waiting_third_party", "on_hold", "beth.anglin"),
        (f"n{row_id(18)}:1", "note", utc(2026, 3, 2, 13, 40, 11), None, MARKER, "sla.bridge"),
        (f"s{row_id(20)}", "status", utc(2026, 3, 2, 15), "on_hold", "open", "beth.anglin"),
        (f"s{row_id(22)}", "status", utc(2026, 3, 2, 15), "open", "resolved", "beth.anglin"),
    ]


def test_event_ids_are_the_same_whatever_order_the_rows_come_in() -> None:
    first = records().events(SYS_ID, copy.deepcopy(HISTORY), AGENTS, caller_user="abel.tuter", own_user="sla.bridge")
    rows = copy.deepcopy(HISTORY)
    random.Random(7).shuffle(rows)
    again = records().events(SYS_ID, rows, AGENTS, caller_user="abel.tuter", own_user="sla.bridge")
    assert again == first
    assert {event.ticket_id for event in first} == {f"sn:{SYS_ID}"}  # the same ticket as the record's
    assert len({event.event_id for event in first}) == len(first)


def test_incident_state_alone_changes_nothing() -> None:
    assert history([audit(row_id(1), "incident_state", "2", "3", "2026-03-02 09:06:00", "3")]) == []


def test_a_history_that_starts_mid_life_takes_the_first_old_value() -> None:
    # audit rows purged or auditing switched on late: no insert rows
    assert history([audit(row_id(9), "state", "2", "3", "2026-03-02 09:06:00", "3"),
                    audit(row_id(10), "hold_reason", "", "4", "2026-03-02 09:06:00", "3")]) == [
        (f"s{row_id(9)}", "status", utc(2026, 3, 2, 9, 6), "open", "waiting_third_party", "beth.anglin")]


def test_a_hold_reason_change_while_the_state_is_unknown_says_no_status() -> None:
    assert history([audit(row_id(17), "hold_reason", "4", "3", "2026-03-02 12:00:00", "6")]) == []


def test_the_config_s_code_mapping_applies_to_the_history() -> None:
    events = history(HISTORY[8:11], statuses={"3/1": "on_hold"})
    assert [(kind, old, new) for _, kind, _, old, new, _ in events] == [("status", "open", "on_hold")]


def test_a_comment_is_an_agent_s_reply_by_who_was_an_agent_when_it_was_written() -> None:
    roster = AgentRoster([Span("beth.anglin", None, until=utc(2026, 3, 3))])  # demoted on 3 March
    rows = [audit(row_id(1), "comments", J, "Try this", "2026-03-02 09:05:00", "2"),
            audit(row_id(2), "comments", J, "Any news?", "2026-03-04 09:05:00", "3")]
    assert [kind for _, kind, *_ in history(rows, roster)] == ["agent_reply", "customer_reply"]


def test_the_caller_s_comment_is_the_customer_s_even_when_the_caller_is_an_agent() -> None:
    rows = [audit(row_id(1), "comments", J, "My own laptop is broken", "2026-03-02 09:05:00", "2", "beth.anglin")]
    assert [kind for _, kind, *_ in history(rows, caller_user="beth.anglin")] == ["customer_reply"]
    assert [kind for _, kind, *_ in history(rows, caller_user=None)] == ["agent_reply"]


def test_comments_of_sla_bridge_s_own_user_and_the_instance_s_automation_are_no_one_s_reply() -> None:
    rows = [audit(row_id(1), "comments", J, "Ticket auto-closed", "2026-03-02 09:05:00", "2", "system"),
            audit(row_id(2), "comments", J, "written by hand with the integration account", "2026-03-02 09:06:00", "3", "sla.bridge")]
    assert history(rows) == []


def test_work_notes_never_reply_and_only_their_markers_are_kept() -> None:
    second = "[sla-bridge:sn:9c573169c611228700193229fff72400:first_response:1]"
    rows = [audit(row_id(1), "work_notes", J, f"{MARKER}\nand {second}, {MARKER} again", "2026-03-02 13:40:11", "7", "abel.tuter"),
            audit(row_id(2), "work_notes", J, "Looking into it", "2026-03-02 13:41:00", "8")]
    assert history(rows) == [(f"n{row_id(1)}:1", "note", utc(2026, 3, 2, 13, 40, 11), None, MARKER, "abel.tuter"),
                             (f"n{row_id(1)}:2", "note", utc(2026, 3, 2, 13, 40, 11), None, second, "abel.tuter")]


def test_rows_of_other_fields_are_ignored() -> None:
    assert history([audit(row_id(1), "assignment_group", "", GROUP, "2026-03-02 09:00:00", "1"),
                    audit(row_id(2), "active", "1", "0", "2026-03-02 09:00:00", "1")]) == []


@pytest.mark.parametrize(("change", "reason"), [
    ({"sys_created_on": "2026-03-02T09:00:00Z"}, "sys_created_on is '2026-03-02T09:00:00Z', not a raw date-time"),
    ({"sys_created_on": "02.03.2026 10:00:00"}, "sys_created_on is '02.03.2026 10:00:00', not a raw date-time"),
    ({"documentkey": CALLER}, f"documentkey is '{CALLER}', another record's"),
    ({"fieldname": ""}, "fieldname is not set"),
    ({"newvalue": 3}, "newvalue is 3, not text"),
    ({"fieldname": "comments", "oldvalue": "Something"}, "a comments row whose oldvalue is 'Something', not 'JOURNAL FIELD ADDITION'"),
])
def test_a_malformed_audit_row_raises_naming_the_record_and_row(change: dict[str, Any], reason: str) -> None:
    row = {**audit(row_id(5), "state", "1", "2", "2026-03-02 09:00:00", "1"), **change}
    with pytest.raises(ValueError, match="^" + re.escape(f"incident record {SYS_ID}: sys_audit row {row_id(5)}: {reason}")):
        records().events(SYS_ID, [row], AGENTS, caller_user=None, own_user=None)


@pytest.mark.parametrize(("sys_id", "rows", "reason"), [
    ("INC0010042", [], "the history of incident record 'INC0010042': not a sys_id"),
    (SYS_ID, {"result": []}, f"incident record {SYS_ID}: the sys_audit rows are dict, not a list"),
    (SYS_ID, ["x"], f"incident record {SYS_ID}: a sys_audit row is 'x', not an object"),
    (SYS_ID, [{"sys_id": "1"}], f"incident record {SYS_ID}: a sys_audit row's sys_id is '1', not a sys_id"),
])
def test_a_malformed_history_raises_naming_the_record(sys_id: Any, rows: Any, reason: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(reason)):
        records().events(sys_id, rows, AGENTS, caller_user=None, own_user=None)


def test_the_caller_s_user_name_comes_from_the_record_when_it_carries_the_dot_walk() -> None:
    """sys_audit names the caller by user name, the record by sys_id: ``caller_id.user_name`` joins them."""
    sn = records()
    assert sn.caller_user_field == "caller_id.user_name"
    sn.ticket({**RECORD, "caller_id.user_name": "beth.anglin"})  # an agent who raised their own incident
    rows = [audit(row_id(1), "comments", J, "My own laptop is broken", "2026-03-02 09:05:00", "2", "beth.anglin")]
    events = sn.events(SYS_ID, rows, AGENTS, caller_user=None, own_user=None)
    assert [event.kind for event in events] == ["customer_reply"]
    other = "0" * 31 + "1"
    assert [e.kind for e in sn.events(other, [{**rows[0], "documentkey": other}], AGENTS, caller_user=None, own_user=None)] == [
        "agent_reply"]  # another record's caller is someone else


def test_the_case_s_caller_user_name_is_the_contact_s() -> None:
    assert records("sn_customerservice_case").caller_user_field == "contact.user_name"


# -- assignment-group history (group events, OLAs) -----------------------------------------------

SECOND_LINE = "d625dccec0a8016700a222a0f7900d06"
NETWORK = "287ebd7da9fe198100f92cc8d1d2154e"
GONE = "0a52d3dcd7011200f2d224837e6103f2"
WALKED = {"group": "assignment_group.name"}  # the connector's default: the group's name, dot-walked


def test_a_group_change_is_a_group_event_named_as_the_records_name_their_groups() -> None:
    """sys_audit keeps a reference's sys_ids (reference §3.1); each record's dot-walk names its
    group, so a handoff from the service desk to the 2nd line reads in names, as Ticket.group does."""
    sn = records(fields=WALKED)
    [desk] = sn.ticket({**RECORD, "assignment_group": GROUP, "assignment_group.name": "Service Desk"})
    [other] = sn.ticket({**RECORD, "sys_id": "1" * 32, "number": "INC0010043", "assignment_group": SECOND_LINE,
                         "assignment_group.name": "2nd line"})
    assert (desk.group, other.group) == ("Service Desk", "2nd line")
    rows = [
        audit(row_id(1), "state", "", "1", "2026-03-02 08:14:05", "0", "abel.tuter"),
        audit(row_id(2), "assignment_group", "", GROUP, "2026-03-02 08:14:05", "0", "abel.tuter"),  # the insert: no change
        audit(row_id(3), "assignment_group", GROUP, SECOND_LINE, "2026-03-02 09:30:00", "2"),  # the handoff
        audit(row_id(4), "reassignment_count", "0", "1", "2026-03-02 09:30:00", "2"),
    ]
    # a normaliser that read no record naming them: the sys_ids as sys_audit holds them
    assert history(rows, fields=WALKED)[1:] == [(f"g{row_id(3)}", "group", utc(2026, 3, 2, 9, 30), GROUP, SECOND_LINE, "beth.anglin")]
    events = [(e.event_id, e.kind, e.at, e.from_value, e.to_value, e.author)
              for e in sn.events(SYS_ID, rows, AGENTS, caller_user="abel.tuter", own_user="sla.bridge")]
    assert events == [
        (f"s{row_id(1)}", "status", utc(2026, 3, 2, 8, 14, 5), None, "new", "abel.tuter"),
        (f"g{row_id(3)}", "group", utc(2026, 3, 2, 9, 30), "Service Desk", "2nd line", "beth.anglin"),
    ]


def test_an_unnamed_group_keeps_its_sys_id_and_no_group_is_none() -> None:
    """A group deleted since (or one the look-up did not find) is its sys_id; an emptied group is None."""
    sn = records(fields=WALKED)
    sn.group_names[GROUP] = "Service Desk"
    rows = [audit(row_id(1), "assignment_group", GROUP, GONE, "2026-03-02 09:30:00", "2"),
            audit(row_id(2), "assignment_group", GONE, "", "2026-03-02 10:00:00", "3"),
            audit(row_id(3), "assignment_group", "", GROUP, "2026-03-02 11:00:00", "4")]  # assigned again later: a change
    assert [(e.from_value, e.to_value) for e in sn.events(SYS_ID, rows, AGENTS, caller_user=None, own_user=None)] == [
        ("Service Desk", GONE), (GONE, None), (None, "Service Desk")]


def test_the_ids_to_look_up_are_the_group_column_s_unnamed_sys_ids() -> None:
    sn = records(fields=WALKED)
    sn.group_names[GROUP] = "Service Desk"
    rows = [audit(row_id(1), "assignment_group", GROUP, NETWORK, "2026-03-02 09:30:00", "2"),
            audit(row_id(2), "assignment_group", NETWORK, SECOND_LINE, "2026-03-02 10:00:00", "3"),
            audit(row_id(3), "assigned_to", "", AGENT_ID, "2026-03-02 10:00:00", "3"),  # another reference: not a group
            audit(row_id(4), "assignment_group", "", "not a sys_id^ORactive=true", "2026-03-02 10:00:00", "3"), "junk"]
    assert sn.unnamed_groups(rows) == sorted([NETWORK, SECOND_LINE])
    assert sn.history_fields == ("state", "hold_reason", "priority", "comments", "work_notes", "assignment_group")
    assert records(fields={"group": "assignment_group"}).unnamed_groups(rows) == []  # the column itself is the name


def test_a_group_role_on_a_plain_column_reads_its_audit_rows_as_they_are() -> None:
    """An admin who maps the group onto a choice column of their own: its codes are what Ticket.group carries."""
    sn = records(fields={"group": "u_support_tier"})
    [ticket] = sn.ticket({**RECORD, "u_support_tier": "tier1"})
    assert ticket.group == "tier1" and sn.group_reference_field is None
    rows = [audit(row_id(1), "u_support_tier", "tier1", "tier2", "2026-03-02 09:30:00", "2"),
            audit(row_id(2), "assignment_group", GROUP, SECOND_LINE, "2026-03-02 09:30:00", "2")]  # not the mapped column
    assert [(e.kind, e.from_value, e.to_value) for e in sn.events(SYS_ID, rows, AGENTS, caller_user=None, own_user=None)] == [
        ("group", "tier1", "tier2")]
