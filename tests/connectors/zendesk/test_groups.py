"""Assignment-group history (the OLAs' clocks): group changes become ``group`` events named as
``Ticket.group`` names the group, from the history the connector already reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx

from bridge.config import load_config
from bridge.edges.store import Store
from bridge.framework.mapping import ValueMapper
from bridge.framework.roster import AgentRoster
from bridge.pipeline.connect import open_connector
from connectors.kit.story import tell
from connectors.zendesk.normalise import DEFAULT_FIELDS, DEFAULT_PRIORITIES, DEFAULT_STATUSES, History, ZendeskRecords
from connectors.zendesk.sandbox import ZendeskSandbox
from tests.conftest import Clock, pages

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
URL = "https://acme.zendesk.com"
SUPPORT, SECOND = 360011122, 360033344  # group ids in the reference's example ticket (zendesk-api.md section 2.7)


def records(**fields: str) -> ZendeskRecords:
    return ZendeskRecords("zd", URL, ValueMapper(statuses=DEFAULT_STATUSES, priorities=DEFAULT_PRIORITIES),
                          {**DEFAULT_FIELDS, **fields})


def update(number: int, *children: dict, updater: int = 377001122) -> dict:
    """One ticket update as the ticket-event export gives it."""
    return {"id": 9000 + number, "ticket_id": 48213, "timestamp": 1741002760 + number, "created_at": None,
            "updater_id": updater, "via": "Web form", "event_type": "Audit", "child_events": list(children)}


def test_a_group_change_is_a_group_event_named_as_the_tickets_group():
    # The Change event of the Ticket Audit events reference (field_name, value, previous_value; ids
    # as text): https://developer.zendesk.com/documentation/ticketing/reference-guides/ticket-audit-events-reference
    known = {"groups": {str(SUPPORT): "Support", str(SECOND): "2nd line"}}
    history = History(AgentRoster(), lambda kind, ref: known.get(kind, {}).get(ref))
    zd = records()
    raws = [
        update(1, {"id": 11, "event_type": "Create", "field_name": "group_id", "value": str(SUPPORT)}),  # creation: no event
        update(2, {"id": 21, "event_type": "Change", "field_name": "group_id", "value": str(SECOND), "previous_value": str(SUPPORT)}),
        update(3, {"id": 31, "event_type": "Change", "group_id": SUPPORT, "previous_value": SECOND}),  # the export's shape, ids as numbers
        update(4, {"id": 41, "event_type": "Change", "field_name": "group_id", "value": "555", "previous_value": str(SUPPORT)}),
        update(5, {"id": 51, "event_type": "Change", "field_name": "group_id", "value": None, "previous_value": "555"}),
    ]
    events = [event for raw in raws for event in zd.events(raw, history)]
    assert [(e.event_id, e.kind, e.from_value, e.to_value, e.author) for e in events] == [
        ("g21", "group", "Support", "2nd line", "377001122"),
        ("g31", "group", "2nd line", "Support", "377001122"),
        ("g41", "group", "Support", "555", "377001122"),  # a group no look-up knows keeps its id
        ("g51", "group", "555", None, "377001122"),  # no group any more
    ]
    assert events[0].at == datetime(2025, 3, 3, 11, 52, 42, tzinfo=timezone.utc)  # the update's timestamp, 1741002762

    # The same texts as the tickets carry: a sideloaded name, else the id.
    sideloads = {"groups": {SECOND: "2nd line"}, "organizations": {}}
    base = {"status": "open", "created_at": "2025-03-03T08:14:09Z"}
    [named] = zd.ticket({"id": 1, "group_id": SECOND, **base}, sideloads)
    [unknown] = zd.ticket({"id": 2, "group_id": 555, **base}, sideloads)
    assert (named.group, unknown.group) == (events[0].to_value, events[2].to_value) == ("2nd line", "555")


def test_a_custom_field_mapped_to_group_is_read_from_its_changes():
    """A team drop-down as the group: the audit names a custom field by its id, values are option tags."""
    zd = records(group="custom_field:360005550001")
    history = History(AgentRoster(), lambda kind, ref: None)
    raw = update(1, {"id": 11, "event_type": "Change", "field_name": "360005550001", "value": "tier_2", "previous_value": "tier_1"},
                 {"id": 12, "event_type": "Change", "field_name": "group_id", "value": str(SECOND), "previous_value": str(SUPPORT)})
    assert [(e.kind, e.from_value, e.to_value) for e in zd.events(raw, history)] == [("group", "tier_1", "tier_2")]
    [ticket] = zd.ticket({"id": 1, "status": "open", "created_at": "2025-03-03T08:14:09Z",
                          "custom_fields": [{"id": 360005550001, "value": "tier_2"}]}, {})
    assert ticket.group == "tier_2"


def test_the_sandbox_renders_the_storys_handoffs_as_group_changes_and_the_ticket_follows():
    sandbox = ZendeskSandbox.for_tests(300, anchor=ANCHOR)
    handed = [(story, step) for story in tell(300, seed=11, latest=ANCHOR - timedelta(minutes=5))
              for step in story.steps if step.group is not None]
    assert handed, "the story hands some tickets to the 2nd line"
    for story, step in handed:
        changes = [(e["timestamp"], e["updater_id"], c) for e in sandbox.events if e["ticket_id"] == story.number
                   for c in e["child_events"] if c.get("event_type") == "Change" and "group_id" in c]
        # First line (index 0, id 20001) to the 2nd line (index 1, id 20002), by the ticket's agent, ids as text.
        assert [(at, c["group_id"], c["previous_value"]) for at, _, c in changes] == [(int(step.at.timestamp()), "20002", "20001")]
        assert changes[0][1] == 1000 + story.agent
        assert sandbox.tickets[story.number]["group_id"] == 20002


def test_the_sandbox_lists_groups_in_cursor_pages_with_deleted_ones_marked():
    sandbox = ZendeskSandbox.for_tests(5, anchor=ANCHOR)
    sandbox.delete_group(20002)
    with sandbox.serve() as url:
        auth = ("sla-bot@example.com/token", "sandbox-token")
        first = httpx.get(f"{url}/api/v2/groups.json", params={"page[size]": 1}, auth=auth).json()
        second = httpx.get(f"{url}/api/v2/groups.json", params={"page[size]": 1, "page[after]": first["meta"]["after_cursor"]},
                           auth=auth).json()
        live = httpx.get(f"{url}/api/v2/groups.json", params={"exclude_deleted": "true"}, auth=auth).json()
    assert [(g["name"], g["deleted"]) for g in first["groups"]] == [("Support", False)] and first["meta"]["has_more"]
    assert [(g["name"], g["deleted"]) for g in second["groups"]] == [("2nd line", True)] and not second["meta"]["has_more"]
    assert [g["name"] for g in live["groups"]] == ["Support"]


def config_for(url: str, tmp_path):
    path = tmp_path / "sla-bridge.toml"
    path.write_text(f'[store]\npath = "store.db"\n[sources.zd]\nsystem = "zendesk"\nurl = "{url}"\nstart = "2026-06-01"\n'
                    'auth = { email = "sla-bot@example.com", token_env = "ZD_TOKEN" }\n')
    return load_config(path)


def pull(config, store: Store, now: datetime) -> None:
    connector = open_connector(config, "zd")
    for page in pages(connector, store.cursors("zd"), now=now):
        store.save_page("zd", page)
    connector.http.client.close()


def group_rows(store: Store, ticket_id: str) -> list[tuple[str | None, str | None]]:
    return [(row["from_value"], row["to_value"]) for row in store.db["ticket_events"].rows_where(
        "ticket_id = ? and kind = 'group'", [ticket_id], order_by="at")]


def test_handoffs_reach_the_store_named_as_the_tickets_group_at_one_look_up_at_most(tmp_path, monkeypatch):
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    clock = Clock(ANCHOR)
    sandbox = ZendeskSandbox(400, seed=3, anchor=ANCHOR, clock=clock, export_limit_per_minute=1000)
    handed = sorted({story.number for story in tell(400, seed=3, latest=ANCHOR - timedelta(minutes=5))
                     for step in story.steps if step.group is not None})
    with sandbox.serve() as url, Store.open(tmp_path / "store.db") as store:
        config = config_for(url, tmp_path)
        pull(config, store, clock.now)
        # Every group a handoff names is some pulled ticket's group: the sideloads name them, no look-up.
        assert sandbox.count("/groups") == 0
        first_run = len(sandbox.requests)
        assert handed and all(group_rows(store, f"zd:{n}") == [("Support", "2nd line")] for n in handed)
        assert {store.ticket(f"zd:{n}").group for n in handed} == {"2nd line"}

        # Later: one ticket goes back to first line (the only changed ticket, so nothing sideloads
        # "2nd line", which meanwhile was deleted), another to a group the account does not know.
        back, lost = handed[0], handed[1]
        clock.now += timedelta(minutes=5)
        sandbox.delete_group(20002)
        sandbox.hand_off(back, 20001)
        sandbox.hand_off(lost, 29999)
        clock.now += timedelta(minutes=2)
        pull(config, store, clock.now)
        assert [path for _, path, _ in sandbox.requests[first_run:]] == [
            "/api/v2/incremental/tickets/cursor", "/api/v2/users", "/api/v2/incremental/ticket_events", "/api/v2/groups"]
        assert group_rows(store, f"zd:{back}") == [("Support", "2nd line"), ("2nd line", "Support")]
        assert group_rows(store, f"zd:{lost}") == [("Support", "2nd line"), ("2nd line", "29999")]
        assert (store.ticket(f"zd:{back}").group, store.ticket(f"zd:{lost}").group) == ("Support", "29999")
