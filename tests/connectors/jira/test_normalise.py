"""Jira issues, changelogs, comments and SLA fields -> the normalised model, on the shapes of
../shared/reference/jira-api.md (sections 2.5, 3, 4.3, 5.2, 11) and the vendors' spec examples."""

from __future__ import annotations

import copy
import re
from datetime import datetime, timezone
from typing import Any

import pytest

from bridge.framework.mapping import ValueMapper
from bridge.framework.roster import AgentRoster, Span
from connectors.jira.normalise import DEFAULT_PRIORITIES, DEFAULT_STATUSES, JiraRecords, adf_text

AGENT = "5b10a2844c20165700ede21g"
CUSTOMER = "qm:a713c8ea-1075-4e30-9d96-891a7d181739:5ad6d3581db05e2a66fa80b"
MARKER = "[sla-bridge:jira:10457:resolution:1]"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=timezone.utc)


def records(statuses: dict[str, str] | None = None, fields: dict[str, str] | None = None) -> JiraRecords:
    values = ValueMapper(statuses={**DEFAULT_STATUSES, **(statuses or {})}, priorities=DEFAULT_PRIORITIES)
    return JiraRecords("jsm", "https://acme.atlassian.net/", values, fields or {})


def date_dto(jira: str, millis: int) -> dict[str, Any]:
    return {"iso8601": jira[:19] + jira[23:], "jira": jira, "friendly": "Today 9:14 AM", "epochMillis": millis}


ISSUE: dict[str, Any] = {
    "expand": "renderedFields,names,schema,operations,editmeta,changelog,versionedRepresentations,customfield_10010.requestTypePractice",
    "id": "10457",
    "self": "https://acme.atlassian.net/rest/api/3/issue/10457",
    "key": "SUP-123",
    "fields": {
        "summary": "VPN drops every 10 minutes",
        "status": {"name": "Waiting for customer", "id": "10007",
                   "statusCategory": {"id": 4, "key": "indeterminate", "name": "In Progress"}},
        "priority": {"name": "High", "id": "2"},
        # Far from UTC: Kiribati (+1400) and, on the resolution, Baker Island (-1200).
        "created": "2026-11-01T12:00:00.000+1400",
        "updated": "2026-11-01T13:40:55.903+1400",
        "resolutiondate": "2026-10-31T11:00:00.000-1200",
        "labels": ["vpn", "sla-at-risk"],
        "reporter": {"accountId": CUSTOMER, "displayName": "Fred F. User", "accountType": "customer"},
        "assignee": {"accountId": AGENT, "displayName": "Mia Krystof", "accountType": "atlassian"},
        "issuetype": {"id": "10004", "name": "[System] Incident"},
        "customfield_10010": {
            "_links": {"web": "https://acme.atlassian.net/servicedesk/customer/portal/2/SUP-123"},
            "requestType": {"id": "17", "name": "Report a system problem", "serviceDeskId": "2"},
            "currentStatus": {"status": "Waiting for customer", "statusCategory": "INDETERMINATE"},
        },
        "customfield_10002": [
            {"id": "3", "name": "Customer Corp", "_links": {"self": "https://acme.atlassian.net/rest/servicedeskapi/organization/3"}},
        ],
        "customfield_10091": None,
    },
}


def test_an_issue_becomes_a_ticket_with_its_fields_people_and_link() -> None:
    [ticket] = records(fields={"customer": "customfield_10002", "type": "customfield_10010"}).ticket(copy.deepcopy(ISSUE))
    assert (ticket.id, ticket.key, ticket.system) == ("jsm:10457", "SUP-123", "jira")
    assert ticket.url == "https://acme.atlassian.net/browse/SUP-123"
    assert ticket.title == "VPN drops every 10 minutes"
    assert (ticket.status, ticket.status_raw) == ("waiting_customer", "Waiting for customer")
    assert (ticket.priority, ticket.priority_raw) == ("p2", "High")
    assert ticket.customer == "Customer Corp"  # the Organizations field, by name
    assert ticket.type == "Report a system problem"  # the request type, by name
    assert (ticket.requester, ticket.assignee) == (CUSTOMER, AGENT)
    assert ticket.tags == ["vpn", "sla-at-risk"]
    assert ticket.fields["customfield_10091"] is None and "summary" not in ticket.fields
    assert ticket.version == "2026-11-01T13:40:55.903+1400"


def test_times_far_from_utc_keep_their_own_offsets() -> None:
    [ticket] = records().ticket(copy.deepcopy(ISSUE))
    assert ticket.created_at == utc(2026, 10, 31, 22, 0)  # 12:00 at +1400 is the evening before in UTC
    assert ticket.updated_at == datetime(2026, 10, 31, 23, 40, 55, 903000, tzinfo=timezone.utc)
    assert ticket.resolved_at == utc(2026, 10, 31, 23, 0)  # 11:00 at -1200


def test_a_status_is_mapped_by_its_stable_id_where_the_config_names_the_id() -> None:
    # A site whose statuses are localised: the name differs by the API user's language, the id does not.
    issue = copy.deepcopy(ISSUE)
    issue["fields"]["status"] = {"name": "Warten auf Kunden", "id": "10007"}
    [ticket] = records(statuses={"10007": "waiting_customer"}).ticket(issue)
    assert (ticket.status, ticket.status_raw) == ("waiting_customer", "10007")


def test_an_unmapped_status_is_kept_and_reported_by_its_name() -> None:
    issue = copy.deepcopy(ISSUE)
    issue["fields"]["status"] = {"name": "Triage", "id": "10100"}
    jira = records()
    [ticket] = jira.ticket(issue)
    assert ticket.status == "Triage"
    assert jira.values.unmapped["status 'Triage'"] == 1


@pytest.mark.parametrize(("change", "reason"), [
    (lambda issue: issue["fields"].update(created="2026-11-01T12:00:00.000"), "issue SUP-123: fields.created is unreadable"),
    (lambda issue: issue["fields"].update(created=1793530800000), "issue SUP-123: fields.created is 1793530800000"),
    (lambda issue: issue["fields"].pop("status"), "issue SUP-123: fields.status is None"),
    (lambda issue: issue["fields"].update(labels="vpn"), "issue SUP-123: fields.labels"),
    (lambda issue: issue.update(id=10457), "issue SUP-123: id is 10457"),
    (lambda issue: issue.update(key=None), "issue id 10457: key is None"),
    (lambda issue: issue.pop("fields"), "issue SUP-123: fields is NoneType"),
])
def test_a_malformed_issue_raises_naming_the_issue(change: Any, reason: str) -> None:
    issue = copy.deepcopy(ISSUE)
    change(issue)
    with pytest.raises(ValueError, match="^" + re.escape(reason)):
        records().ticket(issue)


HISTORIES: list[dict[str, Any]] = [
    {"id": "10231", "author": {"accountId": AGENT}, "created": "2026-11-01T12:30:00.000+1400",
     "items": [
         {"field": "Link", "fieldtype": "jira", "from": None, "to": "SUP-9", "toString": "This issue relates to SUP-9"},
         {"field": "assignee", "fieldtype": "jira", "fieldId": "assignee", "from": None, "to": AGENT, "toString": "Mia Krystof"},
         {"field": "Status", "fieldtype": "custom", "fieldId": "customfield_10500", "from": None, "to": "x", "toString": "x"},
         {"field": "status", "fieldtype": "jira", "fieldId": "status", "from": "10006", "fromString": "Waiting for support",
          "to": "10007", "toString": "Waiting for customer"},
         {"field": "priority", "fieldtype": "jira", "fieldId": "priority", "from": "3", "fromString": "Medium", "to": "2", "toString": "High"},
     ]},
    {"id": "10232", "created": "2026-10-31T23:00:00.000-0900",
     "items": [{"field": "status", "fieldtype": "jira", "fieldId": "status", "from": "10007", "fromString": "Waiting for customer",
                "to": "10008", "toString": "Resolved"}]},
]


def test_status_and_priority_changes_come_from_a_changelog_with_several_items_per_history() -> None:
    events = records().events("10457", copy.deepcopy(HISTORIES), [], AgentRoster())
    assert [(e.event_id, e.kind, e.from_value, e.to_value, e.at) for e in events] == [
        ("s10231:1", "status", "open", "waiting_customer", utc(2026, 10, 31, 22, 30)),
        ("p10231:1", "priority", "p3", "p2", utc(2026, 10, 31, 22, 30)),
        ("s10232:1", "status", "waiting_customer", "resolved", utc(2026, 11, 1, 8, 0)),
    ]
    assert {e.ticket_id for e in events} == {"jsm:10457"}  # the same ticket as the issue's


def test_event_ids_are_the_same_from_the_bulk_changelog_filtered_to_status() -> None:
    # changelog/bulkfetch with fieldIds ["status"] leaves the other items out: the ids must not move.
    filtered = copy.deepcopy(HISTORIES)
    filtered[0]["items"] = [item for item in filtered[0]["items"] if item.get("fieldId") == "status"]
    whole = [e.event_id for e in records().events("10457", copy.deepcopy(HISTORIES), [], AgentRoster()) if e.kind == "status"]
    assert [e.event_id for e in records().events("10457", filtered, [], AgentRoster())] == whole


def test_a_bulk_changelog_time_given_as_a_number_is_read_as_epoch() -> None:
    history = {"id": "1", "created": 1492070429, "items": [{"fieldId": "status", "from": None, "to": "1", "toString": "Open"}]}
    [event] = records().events("10457", [history], [], AgentRoster())
    assert event.at == datetime(2017, 4, 13, 8, 0, 29, tzinfo=timezone.utc)


def test_events_refuse_an_issue_key_for_an_id() -> None:
    with pytest.raises(ValueError, match=r"SUP-123.*pass the id, not the key"):
        records().events("SUP-123", [], [], AgentRoster())


def test_a_status_change_without_a_time_raises_naming_the_issue_and_history() -> None:
    history = {"id": "77", "items": [{"fieldId": "status", "to": "1", "toString": "Open"}]}
    with pytest.raises(ValueError, match="issue id 10457: changelog history 77: created"):
        records().events("10457", [history], [], AgentRoster())


# -- the group role's history (OLAs) ---------------------------------------------------------
# A select change as the changelog carries it (reference §3: item = {field, fieldtype, fieldId,
# from, fromString, to, toString}; for a select, from/to are option ids and the strings the
# options' values). The field is the one the admin mapped to the `group` role.
TEAM = "customfield_10650"
GROUP_HISTORIES: list[dict[str, Any]] = [
    {"id": "20001", "author": {"accountId": AGENT, "accountType": "atlassian"}, "created": "2026-10-31T09:00:00.000+0100",
     "items": [
         {"field": "Assignment group", "fieldtype": "custom", "fieldId": TEAM, "from": "10200", "fromString": "Support",
          "to": "10201", "toString": "2nd line"},
         {"field": "status", "fieldtype": "jira", "fieldId": "status", "from": "10006", "fromString": "Waiting for support",
          "to": "3", "toString": "In Progress"},
     ]},
    {"id": "20002", "author": {"accountId": AGENT, "accountType": "atlassian"}, "created": "2026-10-31T10:15:00.000+0100",
     "items": [
         {"field": "labels", "fieldtype": "jira", "fieldId": "labels", "from": None, "fromString": "", "to": None, "toString": "vip"},
         {"field": "Assignment group", "fieldtype": "custom", "fieldId": TEAM, "from": "10201", "fromString": "2nd line",
          "to": None, "toString": None},
     ]},
]


def test_a_group_change_in_the_changelog_is_a_group_event_with_the_names_the_ticket_carries() -> None:
    team = records(fields={"group": TEAM})
    events = [e for e in team.events("10457", copy.deepcopy(GROUP_HISTORIES), [], AgentRoster()) if e.kind == "group"]
    assert [(e.event_id, e.at, e.from_value, e.to_value, e.author) for e in events] == [
        ("g20001:1", utc(2026, 10, 31, 8, 0), "Support", "2nd line", AGENT),
        ("g20002:1", utc(2026, 10, 31, 9, 15), "2nd line", None, AGENT),  # the group cleared
    ]
    # The ticket's current group is the option's value, the same text the history names it by.
    issue = copy.deepcopy(ISSUE)
    issue["fields"][TEAM] = {"self": "https://acme.atlassian.net/rest/api/3/customFieldOption/10201", "value": "2nd line", "id": "10201"}
    [ticket] = team.ticket(issue)
    assert ticket.group == "2nd line"


def test_without_a_group_role_the_same_changelog_has_no_group_events() -> None:
    events = records().events("10457", copy.deepcopy(GROUP_HISTORIES), [], AgentRoster())
    assert [e.kind for e in events] == ["status"]


def test_group_event_ids_are_the_same_from_the_bulk_changelog_filtered_to_the_group_field() -> None:
    filtered = copy.deepcopy(GROUP_HISTORIES)
    for history in filtered:
        history["items"] = [item for item in history["items"] if item.get("fieldId") == TEAM]
    team = records(fields={"group": TEAM})
    whole = [e.event_id for e in team.events("10457", copy.deepcopy(GROUP_HISTORIES), [], AgentRoster()) if e.kind == "group"]
    assert [e.event_id for e in team.events("10457", filtered, [], AgentRoster())] == whole == ["g20001:1", "g20002:1"]


def test_a_group_item_without_a_display_string_keeps_the_raw_id_and_is_not_dropped() -> None:
    """A deleted group, or a Team item Jira shows by id only: the id's text stands for the name."""
    history = {"id": "20003", "author": {"accountId": AGENT}, "created": "2026-10-31T11:00:00.000+0100",
               "items": [{"field": "Team", "fieldtype": "custom", "fieldId": TEAM, "from": "10299", "fromString": None,
                          "to": "ec74d716-af36-4b3c-950f-f79213d08f71-1809", "toString": ""}]}
    [event] = records(fields={"group": TEAM}).events("10457", [history], [], AgentRoster())
    assert (event.kind, event.from_value, event.to_value) == ("group", "10299", "ec74d716-af36-4b3c-950f-f79213d08f71-1809")


def test_a_custom_group_item_without_a_field_id_is_matched_by_the_fields_name() -> None:
    # fieldId is absent on some custom items; their `field` is the field's name, in any case.
    history = {"id": "20004", "created": "2026-10-31T11:00:00.000+0100",
               "items": [{"field": "assignment GROUP", "fieldtype": "custom", "from": "10200", "fromString": "Support",
                          "to": "10201", "toString": "2nd line"},
                         {"field": "Other", "fieldtype": "custom", "from": None, "fromString": None, "to": "1", "toString": "x"}]}
    values = ValueMapper(statuses=DEFAULT_STATUSES, priorities=DEFAULT_PRIORITIES)
    named = JiraRecords("jsm", "https://acme.atlassian.net", values, {"group": TEAM}, group_name="Assignment group")
    [event] = named.events("10457", [copy.deepcopy(history)], [], AgentRoster())
    assert (event.event_id, event.from_value, event.to_value, event.author) == ("g20004:1", "Support", "2nd line", None)
    # Without the name (shared by two fields, or unknown) such an item names no field of ours.
    assert records(fields={"group": TEAM}).events("10457", [copy.deepcopy(history)], [], AgentRoster()) == []


def test_a_group_item_whose_value_is_not_a_value_raises_naming_the_history() -> None:
    history = {"id": "20005", "created": "2026-10-31T11:00:00.000+0100",
               "items": [{"fieldId": TEAM, "from": None, "fromString": None, "to": {"id": "1"}, "toString": None}]}
    with pytest.raises(ValueError, match="issue id 10457: changelog history 20005: group to"):
        records(fields={"group": TEAM}).events("10457", [history], [], AgentRoster())


def adf(*content: Any) -> dict[str, Any]:
    return {"type": "doc", "version": 1, "content": list(content)}


def paragraph(*texts: str) -> dict[str, Any]:
    return {"type": "paragraph", "content": [{"type": "text", "text": text} for text in texts]}


def roster_with_agent() -> AgentRoster:
    return AgentRoster([Span(AGENT, None)])


def test_public_comments_are_agent_or_customer_replies_by_who_was_an_agent_then() -> None:
    roster = AgentRoster([Span(AGENT, None, until=utc(2026, 11, 2))])  # demoted on 2 November
    comments = [
        {"id": "10000", "author": {"accountId": CUSTOMER}, "body": adf(paragraph("It still drops")),
         "created": "2026-11-01T12:10:00.000+1400", "jsdPublic": True},
        {"id": "10001", "author": {"accountId": AGENT}, "body": adf(paragraph("Try this")),
         "created": "2026-11-01T12:20:00.000+1400", "jsdPublic": True},
        {"id": "10002", "author": {"accountId": AGENT}, "body": adf(paragraph("Any news?")),
         "created": "2026-11-03T09:00:00.000+0100", "jsdPublic": True},
    ]
    events = records().events(10457, [], comments, roster)
    assert [(e.event_id, e.kind, e.author, e.at) for e in events] == [
        ("c10000", "customer_reply", CUSTOMER, utc(2026, 10, 31, 22, 10)),
        ("c10001", "agent_reply", AGENT, utc(2026, 10, 31, 22, 20)),
        ("c10002", "customer_reply", AGENT, utc(2026, 11, 3, 8, 0)),  # no longer an agent when written
    ]


def test_a_marker_inside_a_nested_paragraph_of_an_adf_internal_note_becomes_a_note_event() -> None:
    body = adf(
        paragraph("SLA breached"),
        {"type": "panel", "attrs": {"panelType": "info"}, "content": [
            {"type": "bulletList", "content": [{"type": "listItem", "content": [
                # the marker split by marks across text nodes, as an editor leaves it
                {"type": "paragraph", "content": [
                    {"type": "text", "text": "[sla-bridge:jira:"},
                    {"type": "text", "text": "10457", "marks": [{"type": "strong"}]},
                    {"type": "text", "text": ":resolution:1]"},
                ]},
            ]}]},
        ]},
    )
    comment = {"id": "10010", "author": {"accountId": AGENT}, "body": body, "created": "2026-11-01T14:00:00.000+1400",
               "jsdPublic": False}
    [event] = records().events("10457", [], [comment], roster_with_agent())
    assert (event.event_id, event.kind, event.to_value, event.at) == ("n10010:1", "note", MARKER, utc(2026, 11, 1, 0, 0))


def test_a_jsm_internal_comment_never_moves_a_clock_and_its_markers_are_notes() -> None:
    comments = [
        # /rest/servicedeskapi/request/{key}/comment: text body, `public`, created as a DateDTO
        {"id": "1000", "body": f"Breach noted {MARKER}", "public": False, "author": {"accountId": AGENT},
         "created": date_dto("2026-11-01T15:00:00.000+1400", 1793494800000)},
        {"id": "1001", "body": "Looking into it, no marker here", "public": False, "author": {"accountId": AGENT},
         "created": date_dto("2026-11-01T15:05:00.000+1400", 1793495100000)},
    ]
    events = records().events("10457", [], comments, roster_with_agent())
    assert [(e.event_id, e.kind, e.to_value, e.at) for e in events] == [("n1000:1", "note", MARKER, utc(2026, 11, 1, 1, 0))]


def test_the_sd_public_comment_property_makes_a_platform_comment_internal() -> None:
    comment = {"id": "10020", "author": {"accountId": AGENT}, "body": adf(paragraph("internal only")),
               "created": "2026-11-01T15:00:00.000+1400",
               "properties": [{"key": "sd.public.comment", "value": {"internal": True}}]}
    assert records().events("10457", [], [comment], roster_with_agent()) == []


def test_a_public_flag_that_is_not_a_boolean_raises_rather_than_guessing() -> None:
    comment = {"id": "10030", "body": "x", "created": "2026-11-01T15:00:00.000+1400", "jsdPublic": "false"}
    with pytest.raises(ValueError, match="issue id 10457: comment 10030: jsdPublic"):
        records().events("10457", [], [comment], roster_with_agent())


def test_adf_text_keeps_blocks_apart_and_inline_nodes_together() -> None:
    text = adf_text(adf(paragraph("a", "b"), {"type": "paragraph", "content": [
        {"type": "text", "text": "c"}, {"type": "hardBreak"}, {"type": "mention", "attrs": {"id": AGENT, "text": "@Mia"}}]}))
    assert text.split("\n")[:3] == ["ab", "c", "@Mia"]


SLA_ONGOING = {
    "id": "2", "name": "Time to resolution",
    "_links": {"self": "https://acme.atlassian.net/rest/servicedeskapi/request/10457/sla/2"},
    "completedCycles": [],
    "ongoingCycle": {
        "startTime": date_dto("2025-03-03T09:14:07.512+0100", 1740989647512),
        "breachTime": date_dto("2025-03-04T09:14:07.512+0100", 1741076047512),
        "breached": False, "paused": False, "withinCalendarHours": False,
        "goalDuration": {"millis": 28800000, "friendly": "8h"},
        "elapsedTime": {"millis": 2913606, "friendly": "48m"},
        "remainingTime": {"millis": 25886394, "friendly": "7h 11m"},
    },
    "slaDisplayFormat": "NEW_SLA_FORMAT",
}
SLA_COMPLETED = {
    "id": "1", "name": "Time to first response",
    "completedCycles": [{"breached": True, "goalDuration": {"millis": 7200000}, "elapsedTime": {"millis": 12180000},
                         "remainingTime": {"millis": -4980000}}],
    "slaDisplayFormat": "OLD_SLA_FORMAT",
}


def test_sla_fields_are_kept_as_jsm_sent_them_and_each_nothing_shape_is_none() -> None:
    issue = copy.deepcopy(ISSUE)
    issue["fields"].update({
        "customfield_10030": SLA_COMPLETED,  # no ongoingCycle, but a completed one: real data
        "customfield_10031": SLA_ONGOING,
        "customfield_10040": None,  # null
        "customfield_10041": {"id": "3", "name": "Time to approve", "completedCycles": [], "slaDisplayFormat": "NEW_SLA_FORMAT"},
        "customfield_10042": {"errorMessage": "The service project you are trying to view does not exist.",
                              "i18nErrorMessage": {"i18nKey": "sd.admin.servicedesk.error.not.found", "parameters": []}},
    })
    ids = ["customfield_10030", "customfield_10031", "customfield_10040", "customfield_10041", "customfield_10042", "customfield_10099"]
    assert records().sla_fields(issue, ids) == {
        "customfield_10030": SLA_COMPLETED,
        "customfield_10031": SLA_ONGOING,
        "customfield_10040": None,
        "customfield_10041": None,
        "customfield_10042": None,
        "customfield_10099": None,  # not on this issue at all
    }


def test_an_sla_field_of_an_unknown_shape_raises_naming_the_issue_and_field() -> None:
    issue = copy.deepcopy(ISSUE)
    issue["fields"]["customfield_10030"] = "Time to first response: 2h"
    with pytest.raises(ValueError, match="issue SUP-123: SLA field customfield_10030"):
        records().sla_fields(issue, ["customfield_10030"])
