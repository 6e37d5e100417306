"""Issue 9 in the Zendesk connector and its sandbox: what the ticket history already says (notes,
who was an agent when), what the account cannot do (a role, a drop-down), and Zendesk as it is
(silent drops, 403s, system fields that say they are removable, deleted tickets)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from bridge.config import load_config
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.edges.store import Store
from bridge.errors import ConfigError, PaginationError
from bridge.framework.roster import AgentRoster, Span
from bridge.model import Note, Ticket, WritebackPlan
from connectors.zendesk import ZendeskConnector
from connectors.zendesk.config import BUILT_IN_FIELDS
from connectors.zendesk.connector import SYSTEM_FIELDS
from connectors.zendesk.sandbox import AGENT_IDS, BOT_ID, SERVICE_FIELD, SLA_STATUS_FIELD, ZendeskSandbox
from tests.conftest import pages

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
URL = "https://sandbox.zendesk.com"
STATUS = f"custom_field:{SLA_STATUS_FIELD}"


def connector_for(box: ZendeskSandbox, monkeypatch: pytest.MonkeyPatch, *, clock: datetime = ANCHOR, status_field: str | None = STATUS,
                  roster: AgentRoster | None = None) -> ZendeskConnector:
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    source: dict[str, Any] = {"system": "zendesk", "url": URL, "start": "2026-01-01",
                              "auth": {"email": "sla-bot@example.com", "token_env": "ZD_TOKEN"}}
    if status_field:
        source["writeback"] = {"enabled": True, "status_field": status_field}
    config = load_config(data={"sources": {"zd": source}}, environ=False)
    client = build_client(URL, http=config.http, transport=box.transport(),
                          auth=ZendeskConnector.auth(config.sources["zd"], config.source_secret("zd")))
    connector = ZendeskConnector("zd", config.sources["zd"], SourceClient("zd", client, RetryPolicy(sleep=lambda s: None, clock=lambda: clock)))
    if roster is not None:
        connector.roster = roster  # as the pipeline does: loaded from the store before the pull
    return connector


def pull(connector: ZendeskConnector, store: Store) -> None:
    for page in pages(connector, store.cursors("zd"), now=ANCHOR):
        store.save_page("zd", page)


def live(box: ZendeskSandbox) -> list[int]:
    return [n for n, t in sorted(box.tickets.items()) if t["status"] not in ("closed", "deleted")]


def pulled(box: ZendeskSandbox, number: int) -> Ticket:
    raw = box.tickets[number]
    return Ticket("zd", "zendesk", str(number), f"#{number}", "", raw["status"], raw["status"], ANCHOR, ANCHOR,
                  version=raw["updated_at"], tags=list(raw["tags"]))


# -- never a duplicate note: the history says which notes a ticket holds ------------------------


def test_every_marker_in_an_internal_note_is_a_note_event_and_moves_no_clock(monkeypatch):
    box = ZendeskSandbox.for_tests(30, anchor=ANCHOR)
    number = live(box)[0]
    box.noted(number, f"[sla-bridge:zd:{number}:first_response:1] and [sla-bridge:zd:{number}:resolution:2]")
    box.noted(number, "no marker in this one")
    store = Store.memory()
    pull(connector_for(box, monkeypatch), store)
    events = store.events(f"zd:{number}")
    notes = [(e.kind, e.to_value, e.author) for e in events if e.kind == "note"]
    assert notes == [("note", f"[sla-bridge:zd:{number}:first_response:1]", str(BOT_ID)),
                     ("note", f"[sla-bridge:zd:{number}:resolution:2]", str(BOT_ID))]
    assert store.notes_seen([f"zd:{number}"]) == {f"zd:{number}": {e[1] for e in notes}}
    assert not any(e.kind.endswith("reply") and e.author == str(BOT_ID) for e in events)  # a note is never a reply


def test_the_notes_sla_bridge_posts_come_back_in_the_export_with_their_bodies(monkeypatch):
    """The sandbox's comment events carry `body` and `html_body` as Zendesk's do, sla-bridge's own
    notes included: a store that never saw the push finds them on the next pull."""
    now = [ANCHOR]
    box = ZendeskSandbox(30, seed=11, anchor=ANCHOR, clock=lambda: now[0], export_limit_per_minute=10_000)
    number = live(box)[0]
    marker = f"[sla-bridge:zd:{number}:resolution:1]"
    writer = connector_for(box, monkeypatch)
    assert writer.write_one(WritebackPlan(pulled(box, number), notes=[Note(marker, f"Resolution target missed. {marker}")])).outcomes() == {
        f"note:{marker}": "sent"}
    now[0] += timedelta(minutes=2)  # past the export's one-minute exclusion
    [comment] = [c for e in box.events for c in e["child_events"] if c.get("event_type") == "Comment" and marker in c.get("body", "")]
    assert comment["public"] is False and marker in comment["html_body"] and comment["audit_id"]
    restored = Store.memory()  # a new (or restored) store: it never journaled that note
    pull(connector_for(box, monkeypatch, clock=now[0]), restored)
    assert restored.notes_seen([f"zd:{number}"]) == {f"zd:{number}": {marker}}


def _marked(box: ZendeskSandbox, number: int, marker: str) -> int:
    return sum(marker in body for body in box.internal_notes(number))


def test_a_note_another_store_posted_since_the_plan_was_made_is_not_posted_again_after_the_409(monkeypatch):
    """A restored backup or a second store posts the note inside the export's lag: the ticket
    changed (409), and the retry used to post the same note a second time."""
    box = ZendeskSandbox.for_tests(30, anchor=ANCHOR)
    number = live(box)[0]
    marker = f"[sla-bridge:zd:{number}:first_response:1]"
    plan = WritebackPlan(pulled(box, number), notes=[Note(marker, f"First reply target missed. {marker}")])
    box.noted(number, marker, at=ANCHOR)  # the other store's post, after this plan was made
    assert box.tickets[number]["updated_at"] != plan.ticket.version  # so the write meets a 409
    result = connector_for(box, monkeypatch).write_one(plan)
    assert result.outcomes() == {f"note:{marker}": "sent"}
    assert _marked(box, number, marker) == 1


def test_after_a_409_only_the_notes_missing_from_the_ticket_are_sent_with_the_tags(monkeypatch):
    box = ZendeskSandbox.for_tests(30, anchor=ANCHOR)
    number = live(box)[0]
    there, missing = f"[sla-bridge:zd:{number}:first_response:1]", f"[sla-bridge:zd:{number}:resolution:1]"
    plan = WritebackPlan(pulled(box, number), add_tags=["sla_breached"],
                         notes=[Note(there, f"First reply target missed. {there}"), Note(missing, f"Resolution target missed. {missing}")])
    box.noted(number, there, at=ANCHOR)
    result = connector_for(box, monkeypatch).write_one(plan)
    assert result.outcomes() == {"tags": "sent", f"note:{there}": "sent", f"note:{missing}": "sent"}
    assert (_marked(box, number, there), _marked(box, number, missing)) == (1, 1)
    assert "sla_breached" in box.tickets[number]["tags"]


def test_after_a_409_a_plan_whose_notes_are_all_there_sends_nothing_more(monkeypatch):
    box = ZendeskSandbox.for_tests(30, anchor=ANCHOR)
    number = live(box)[0]
    marker = f"[sla-bridge:zd:{number}:first_response:1]"
    plan = WritebackPlan(pulled(box, number), notes=[Note(marker, f"First reply target missed. {marker}")])
    box.noted(number, marker, at=ANCHOR)
    before = len(box.requests)
    assert connector_for(box, monkeypatch).write_one(plan).outcomes() == {f"note:{marker}": "sent"}
    assert [method for method, *_ in box.requests[before:]].count("PUT") == 1  # the one that met the 409


# -- who was an agent when ---------------------------------------------------------------------


def test_a_reply_by_an_agent_later_downgraded_stays_an_agents_reply(monkeypatch):
    box = ZendeskSandbox.for_tests(60, anchor=ANCHOR)
    agent = AGENT_IDS[2]
    number = next(n for n in live(box) if any(c["author_id"] == agent and c["public"] for c in box.comments[n]))
    reply = next(c for c in box.comments[number] if c["author_id"] == agent and c["public"])
    first = Store.memory()
    connector = connector_for(box, monkeypatch, clock=ANCHOR - timedelta(minutes=20))
    pull(connector, first)
    first.save_agent_spans("zd", [(s.user, s.since, s.until) for s in connector.roster.spans()])  # as the pipeline does after a pull

    box.downgrade(agent)  # an admin makes them an end user; the agent list leaves them out
    box.customer_replies(number, at=ANCHOR - timedelta(minutes=4), author=agent)  # they write again, as an end user now
    again = Store.memory()  # the ticket's events read again from the start, with the roster the store kept
    roster = AgentRoster(Span(user, since, until) for user, since, until in first.agent_spans("zd"))
    pull(connector_for(box, monkeypatch, clock=ANCHOR - timedelta(minutes=10), roster=roster), again)
    kinds = {e.event_id: e.kind for e in again.events(f"zd:{number}")}
    assert kinds[f"c{reply['id']}"] == "agent_reply"  # written while they were an agent
    latest = box.comments[number][-1]
    assert latest["author_id"] == agent and kinds[f"c{latest['id']}"] == "customer_reply"  # written after the downgrade
    assert str(agent) not in roster.agents()


def test_a_downgraded_agent_leaves_the_agent_list():
    box = ZendeskSandbox.for_tests(5, anchor=ANCHOR)
    box.downgrade(AGENT_IDS[1])
    with httpx.Client(base_url=URL, transport=box.transport(), headers={"Authorization": "Bearer sandbox-oauth-token"}) as client:
        agents = client.get("/api/v2/users.json", params={"role[]": ["agent", "admin"]}).json()["users"]
        everyone = client.get("/api/v2/users.json").json()["users"]
    assert AGENT_IDS[1] not in {u["id"] for u in agents} and len(agents) == len(AGENT_IDS) - 1
    assert {u["id"]: u["role"] for u in everyone}[AGENT_IDS[1]] == "end-user"


# -- what the pipeline needs to know of Zendesk --------------------------------------------------


def test_the_exports_are_complete_only_up_to_a_minute_ago():
    assert ZendeskConnector.export_lag == timedelta(seconds=60)


def test_field_value_is_the_custom_field_as_pulled(monkeypatch):
    box = ZendeskSandbox.for_tests(10, anchor=ANCHOR)
    box.tickets[3]["custom_fields"][1]["value"] = "at_risk"
    store = Store.memory()
    connector = connector_for(box, monkeypatch)
    pull(connector, store)
    ticket = store.ticket("zd:3")
    assert connector.field_value(ticket, STATUS) == (True, "at_risk")
    assert connector.field_value(ticket, f"custom_field:{SERVICE_FIELD}") == (True, box.tickets[3]["custom_fields"][0]["value"])
    assert connector.field_value(ticket, "custom_field:999") == (False, None)  # not on the ticket at all
    assert connector.field_value(ticket, "priority") == (False, None)


def test_deleted_tickets_are_exported_as_deleted_and_never_writable(monkeypatch):
    box = ZendeskSandbox.for_tests(300, anchor=ANCHOR)
    gone = [n for n, t in box.tickets.items() if t["status"] == "deleted"]
    assert gone  # the story deletes about 2 in 100
    store = Store.memory()
    connector = connector_for(box, monkeypatch)
    pull(connector, store)
    for number in gone:
        ticket = store.ticket(f"zd:{number}")
        assert (ticket.status, ticket.status_raw) == ("deleted", "deleted")
        assert not connector.writable(ticket)
    assert store.events(f"zd:{gone[0]}")[-1].to_value == "deleted"  # the history says when


# -- a drop-down status field: Zendesk drops what it has no option for, silently ----------------


def test_a_drop_down_drops_a_value_without_an_option_silently_in_one_update_and_in_bulk(monkeypatch):
    """As Zendesk does (973 of 973 in the issue): success answers, and nothing kept."""
    now = [ANCHOR]
    box = ZendeskSandbox(60, seed=11, anchor=ANCHOR, clock=lambda: now[0], export_limit_per_minute=10_000)
    box.status_drop_down(["green", "amber", "red"])
    connector = connector_for(box, monkeypatch)
    one, *many = live(box)[:4]
    single = connector.write_one(WritebackPlan(pulled(box, one), set_fields={STATUS: "breached"}, add_tags=["sla_breached"]))
    bulk = list(connector.write([WritebackPlan(pulled(box, n), set_fields={STATUS: "on_track"}) for n in many]))
    assert single.outcomes() == {f"field:{STATUS}": "sent", "tags": "sent"}
    assert [r.outcomes() for r in bulk] == [{f"field:{STATUS}": "sent"}] * 3
    assert "sla_breached" in box.tickets[one]["tags"]  # the rest of the update landed
    assert [box.tickets[n]["custom_fields"][1]["value"] for n in (one, *many)] == [None] * 4
    now[0] += timedelta(minutes=2)  # past the export's one-minute exclusion
    store = Store.memory()
    pull(connector, store)
    assert store.ticket(f"zd:{one}").tags == box.tickets[one]["tags"]  # pulled after the write
    assert connector.field_value(store.ticket(f"zd:{one}"), STATUS) == (True, None)  # what the core compares with what it sent


def test_a_drop_down_keeps_the_values_it_has_options_for(monkeypatch):
    box = ZendeskSandbox.for_tests(20, anchor=ANCHOR)
    box.status_drop_down(["breached", "at_risk", "on_track", "met"])
    number = live(box)[0]
    connector_for(box, monkeypatch).write_one(WritebackPlan(pulled(box, number), set_fields={STATUS: "met"}))
    assert box.tickets[number]["custom_fields"][1]["value"] == "met"


@pytest.mark.parametrize(("options", "problem"), [
    (None, None),  # a text field takes any value
    (["breached", "at_risk", "on_track", "met", "other"], None),
    (["green", "breached", "met"], "has no option with the value at_risk, on_track; Zendesk drops a value"),
])
def test_check_reads_the_status_fields_definition(monkeypatch, options, problem):
    box = ZendeskSandbox.for_tests(5, anchor=ANCHOR)
    if options is not None:
        box.status_drop_down(options)
    check = connector_for(box, monkeypatch).check_credentials()
    if problem is None:
        assert check.problems == ()
    else:
        [line] = check.problems
        assert line.startswith(f"sources.zd.writeback.status_field: drop-down {SLA_STATUS_FIELD} ('SLA status') ") and problem in line
    assert box.count("/api/v2/ticket_fields/", "GET") == 1  # one request: the field's definition


def test_check_says_when_the_status_field_is_missing_or_of_the_wrong_kind(monkeypatch):
    box = ZendeskSandbox.for_tests(5, anchor=ANCHOR)
    [missing] = connector_for(box, monkeypatch, status_field="custom_field:999").check_credentials().problems
    assert missing.startswith("sources.zd.writeback.status_field: Zendesk has no ticket field 999")
    box.ticket_fields[SLA_STATUS_FIELD]["type"] = "checkbox"
    [wrong] = connector_for(box, monkeypatch).check_credentials().problems
    assert "is a checkbox field" in wrong and "must be a text field or a drop-down" in wrong
    assert connector_for(box, monkeypatch, status_field=None).check_credentials().problems == ()  # nothing written: nothing checked


# -- permissions -------------------------------------------------------------------------------


def test_an_agent_is_told_the_exports_need_an_admin_and_the_sandbox_refuses_them(monkeypatch):
    box = ZendeskSandbox(5, anchor=ANCHOR, clock=lambda: ANCHOR, role="agent")
    connector = connector_for(box, monkeypatch, status_field=None)
    [problem] = connector.check_credentials().problems
    assert problem.startswith("sources.zd.auth: SLA Bot <sla-bot@example.com> is a Zendesk agent, not an admin")
    assert "incremental_exports" in problem
    with httpx.Client(base_url=URL, transport=box.transport(), headers={"Authorization": "Bearer sandbox-oauth-token"}) as client:
        refused = [client.get(path, params={"start_time": 0}) for path in
                   ("/api/v2/incremental/tickets/cursor.json", "/api/v2/incremental/ticket_events.json")]
        fields = client.get("/api/v2/ticket_fields.json")
    assert [r.status_code for r in refused] == [403, 403] and fields.status_code == 200
    assert refused[0].json()["error"]["title"] == "Forbidden"
    assert ZendeskSandbox(5, anchor=ANCHOR, clock=lambda: ANCHOR).roles[BOT_ID] == "admin"
    assert connector_for(ZendeskSandbox.for_tests(5, anchor=ANCHOR), monkeypatch, status_field=None).check_credentials().problems == ()


# -- system fields -----------------------------------------------------------------------------


def test_system_fields_are_listed_by_their_names_though_zendesk_says_removable(monkeypatch):
    box = ZendeskSandbox.for_tests(5, anchor=ANCHOR)
    assert {f["type"]: f["removable"] for f in box.ticket_fields.values()}["tickettype"] is True  # as real accounts show
    fields = {f.id: f for f in connector_for(box, monkeypatch).list_fields()}
    assert {"subject", "description", "status", "type", "priority", "group", "assignee"} <= set(fields)
    assert fields["type"].options == ["problem", "incident", "question", "task"] and fields["priority"].title == "Priority"
    assert {i for i in fields if i.startswith("custom_field:")} == {f"custom_field:{SERVICE_FIELD}", STATUS}


def test_a_system_field_mapped_by_its_listed_name_gives_the_tickets_value(monkeypatch):
    """Mapping `type` (and `assignee`) by the name `fields` lists fills them; `type` as a custom field id gave every ticket none."""
    box = ZendeskSandbox.for_tests(10, anchor=ANCHOR)
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    config = load_config(data={"sources": {"zd": {"system": "zendesk", "url": URL, "start": "2026-01-01",
                                                  "auth": {"email": "sla-bot@example.com", "token_env": "ZD_TOKEN"},
                                                  "fields": {"type": "type", "group": "assignee"}}}}, environ=False)
    client = build_client(URL, http=config.http, transport=box.transport(),
                          auth=ZendeskConnector.auth(config.sources["zd"], config.source_secret("zd")))
    connector = ZendeskConnector("zd", config.sources["zd"], SourceClient("zd", client, RetryPolicy(sleep=lambda s: None)))
    store = Store.memory()
    pull(connector, store)
    ticket = store.ticket("zd:2")
    assert (ticket.type, ticket.group) == (box.tickets[2]["type"], str(box.tickets[2]["assignee_id"]))


def _source(fields: dict[str, str]) -> dict[str, Any]:
    return {"sources": {"zd": {"system": "zendesk", "url": URL, "start": "2026-01-01", "fields": fields,
                               "auth": {"email": "sla-bot@example.com", "token_env": "ZD_TOKEN"}}}}


@pytest.mark.parametrize(("role", "name", "meant"), [
    ("customer", "organisation", "organization"),  # British spelling
    ("type", "tickettype", "type"),  # the TYPE column `sla-bridge fields` prints
    ("customer", "organization_id", "organization"),  # the ticket's attribute
    ("group", "groups", "group"),
    ("group", "Group", "group"),
])
def test_a_field_name_zendesk_tickets_lack_is_refused_with_a_suggestion(monkeypatch, role, name, meant):
    """These passed `check` and gave every ticket an empty value, silently."""
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    with pytest.raises(ConfigError) as caught:
        load_config(data=_source({role: name}), environ=False)
    assert f"sources.zd.fields.{role}: {name!r} is not a field Zendesk tickets have (did you mean \"{meant}\"?)" in str(caught.value)
    assert "custom_field:ID" in str(caught.value)


def test_a_field_name_like_none_is_refused_with_the_names_there_are(monkeypatch):
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    with pytest.raises(ConfigError) as caught:
        load_config(data=_source({"service": "colour"}), environ=False)
    message = str(caught.value)
    assert "sources.zd.fields.service: 'colour' is not a field Zendesk tickets have. Use one of organization, group, type" in message
    assert "did you mean" not in message


@pytest.mark.parametrize("name", BUILT_IN_FIELDS)
def test_every_built_in_field_name_the_config_takes_reads_a_value_from_a_ticket(monkeypatch, name):
    """The accepted names are the ones that resolve: a ticket as Zendesk exports it, with the
    attributes an account with brands, forms and custom statuses has, gives each a value."""
    box = ZendeskSandbox.for_tests(5, anchor=ANCHOR)
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    config = load_config(data=_source({"type": name}), environ=False)
    client = build_client(URL, http=config.http, transport=box.transport(),
                          auth=ZendeskConnector.auth(config.sources["zd"], config.source_secret("zd")))
    connector = ZendeskConnector("zd", config.sources["zd"], SourceClient("zd", client, RetryPolicy(sleep=lambda s: None)))
    raw = dict(box.tickets[2], brand_id=360000001, ticket_form_id=360000002, custom_status_id=360000003)
    [ticket] = connector.records.ticket(raw, {"organizations": {raw["organization_id"]: "Acme"}, "groups": {raw["group_id"]: "Tier 1"}})
    assert ticket.type


def test_every_system_field_sla_bridge_fields_lists_is_a_name_the_config_takes(monkeypatch):
    listed = {f.id for f in connector_for(ZendeskSandbox.for_tests(5, anchor=ANCHOR), monkeypatch).list_fields()}
    assert {i for i in listed if not i.startswith("custom_field:")} <= set(BUILT_IN_FIELDS)
    assert set(SYSTEM_FIELDS.values()) == set(BUILT_IN_FIELDS)


# -- vendor-echoed text ------------------------------------------------------------------------


def test_vendor_text_in_an_error_is_masked_and_cannot_drive_the_terminal(monkeypatch):
    box = ZendeskSandbox.for_tests(20, anchor=ANCHOR)
    connector = connector_for(box, monkeypatch)
    number = live(box)[0]

    def hostile(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"error": "RecordInvalid", "description": "bad", "details": {"base": [
            {"description": f"Field {SLA_STATUS_FIELD}: \x1b[2J\x1b]0;owned\x07 sandbox-token\nSource zd: credentials OK",
             "ticket_field_id": SLA_STATUS_FIELD}]}})

    connector.http.client._transport = httpx.MockTransport(hostile)
    with pytest.raises(Exception) as raised:
        connector.write_one(WritebackPlan(pulled(box, number), set_fields={STATUS: "breached"}))
    message = str(raised.value)
    assert "check sources.zd.writeback.status_field" in message
    assert "sandbox-token" not in message and "\x1b" not in message and "\n" not in message and "\x07" not in message
    assert "\\x1b[2J" in message  # visible, harmless


# -- the known limit: more than a page of events in one second ---------------------------------


def test_more_than_a_page_of_events_in_one_second_stops_the_history_with_why(monkeypatch):
    """The time-based export cannot page past such a second (it answers the same page for ever):
    the sandbox pins as Zendesk does, and the pull stops saying so instead of looping."""
    box = ZendeskSandbox.for_tests(200, anchor=ANCHOR)
    burst = ANCHOR - timedelta(minutes=3)
    targets = live(box)
    for index in range(1001):  # a bulk change: 1,001 updates in one second
        box.agent_edits(targets[index % len(targets)], at=burst)
    store = Store.memory()
    with pytest.raises(PaginationError, match="share one second"):
        pull(connector_for(box, monkeypatch), store)
    assert store.count("tickets") == 200 and store.cursor("zd", "ticket_events") == str(int(burst.timestamp()))
