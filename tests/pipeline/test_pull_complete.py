"""How far a source's data is complete, and why no breach is declared past it (issue 9).

Zendesk's incremental exports leave out the last minute. A reply made inside that minute is not
in this run's pull; judging the clock as of now would declare a breach the data cannot support,
post the note, and never take it back. The pull keeps, per stream and per source, the point the
data is complete to, and the evaluation judges as of it.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
import respx

from bridge.config import load_config
from bridge.edges.http import RetryPolicy, SourceClient
from bridge.edges.store import Store
from bridge.errors import PaginationError
from bridge.framework.paginators import CursorPaginator, Request
from bridge.framework.streams import FromToken, Stream, Walk, read_stream
from bridge.model import from_iso
from bridge.pipeline.demo import source_table
from bridge.pipeline.report import RunReport
from bridge.pipeline.run import PHASES, run_pipeline
from connectors.zendesk.sandbox import AGENT_IDS, ZendeskSandbox

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
POLICY = """
[[policies]]
name = "standard"
targets.first_response = { p1 = "1h", p2 = "1h", p3 = "1h", p4 = "1h" }
targets.next_response = { p1 = "1h", p2 = "1h", p3 = "1h", p4 = "1h" }
"""


class World:
    def __init__(self, folder: Path, tickets: int = 200, *, max_pages: int = 10_000) -> None:
        self.clock = ANCHOR
        self.box = ZendeskSandbox(tickets, seed=11, anchor=ANCHOR, clock=lambda: self.clock, export_limit_per_minute=100_000,
                                  account_limit_per_minute=100_000)
        self.config_path = folder / "sla-bridge.toml"
        source = self.box.source_config("https://sandbox.zendesk.com", "ZD_TOKEN")
        source["writeback"] = {"enabled": True}  # notes and tags: what these tests watch
        self.config_path.write_text(f'[store]\npath = "store.db"\n[http]\nmax_attempts = 2\nmax_pages = {max_pages}\n' + POLICY
                                    + source_table("zd", source))
        self.store_path = folder / "store.db"

    def sync(self, at: datetime) -> RunReport:
        """One run at ``at``, by the sandbox's clock and by --now."""
        self.clock = at
        return run_pipeline(load_config(self.config_path), "sync", PHASES, store_path=self.store_path, now=at,
                            transports={"zd": self.box.transport()})

    def mark(self, name: str) -> datetime | None:
        with Store.open(self.store_path) as store:
            text = store.mark(name)
        return from_iso(text) if text else None

    def clock_state(self, ticket: int, metric: str) -> str:
        with sqlite3.connect(self.store_path) as db:
            return str(db.execute("select state from sla_clocks where ticket_id = ? and metric = ? order by cycle desc",
                                  [f"zd:{ticket}", metric]).fetchone()[0])

    def notes(self, ticket: int, metric: str) -> list[str]:
        return [body for body in self.box.internal_notes(ticket) if f"[sla-bridge:zd:{ticket}:{metric}:" in body]


@pytest.fixture
def world(tmp_path, monkeypatch) -> World:
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    monkeypatch.setattr("bridge.edges.http.time.sleep", lambda seconds: None)
    return World(tmp_path)


def answered_ticket(world: World) -> int:
    """A ticket an agent has answered and that can still be written to."""
    with sqlite3.connect(world.store_path) as db:
        met = {row[0] for row in db.execute("select ticket_id from sla_clocks where metric = 'first_response' and state = 'met'")}
    return next(number for number, t in sorted(world.box.tickets.items())
                if f"zd:{number}" in met and t["status"] in ("open", "pending", "solved"))


def test_a_reply_inside_the_minute_the_export_leaves_out_never_gets_a_breach_note(world):
    assert world.sync(ANCHOR).exit_code == 0
    number = answered_ticket(world)
    notes_before = world.notes(number, "next_response")
    asked = ANCHOR + timedelta(minutes=2)
    due = asked + timedelta(hours=1)
    world.clock = asked
    world.box.customer_replies(number, at=asked)  # the next response is due an hour later
    world.box.customer_replies(number, at=due - timedelta(seconds=30), author=AGENT_IDS[1])  # answered in time

    # Ten seconds past the due instant the export does not show the answer yet (its last minute).
    report = world.sync(due + timedelta(seconds=10))
    assert report.exit_code == 0
    assert world.notes(number, "next_response") == notes_before
    assert world.clock_state(number, "next_response") == "running"
    complete = world.mark("complete_to:zd")
    assert complete is not None and due - timedelta(seconds=52) <= complete <= due - timedelta(seconds=50)
    assert world.mark("evaluated_at:zd") == complete

    # Once the export shows it: met, and no note was ever posted.
    assert world.sync(due + timedelta(minutes=5)).exit_code == 0
    assert world.clock_state(number, "next_response") == "met"
    assert world.notes(number, "next_response") == notes_before


def test_each_stream_keeps_its_point_and_the_source_is_held_to_the_earliest(world):
    first = ANCHOR
    assert world.sync(first).exit_code == 0
    for stream in ("tickets", "ticket_events"):
        point = world.mark(f"complete_to:zd:{stream}")
        assert point is not None and first - timedelta(seconds=62) <= point <= first - timedelta(seconds=60)
    # An hour later the ticket-event export fails: the tickets are complete to a minute ago, the
    # events only to where they were, and so is the source.
    world.box.inject("500", times=10, path="/incremental/ticket_events")
    second = ANCHOR + timedelta(hours=1)
    events_before = world.mark("complete_to:zd:ticket_events")
    assert world.sync(second).exit_code == 3
    tickets_point = world.mark("complete_to:zd:tickets")
    assert tickets_point is not None and tickets_point >= second - timedelta(seconds=62)
    assert world.mark("complete_to:zd:ticket_events") == events_before
    assert world.mark("complete_to:zd") == events_before == world.mark("evaluated_at:zd")


def test_until_every_stream_has_reached_its_end_nothing_is_judged_breached(tmp_path, monkeypatch):
    """A first pull stopped by the page bound has tickets without their history: every first
    response would look missed. The data is complete only to the start of the history."""
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    world = World(tmp_path, tickets=1200, max_pages=1)
    report = world.sync(ANCHOR)
    assert report.exit_code == 3 and report.sources["zd"].tickets_pulled == 1000
    assert world.mark("complete_to:zd") == world.mark("history_from:zd")
    with sqlite3.connect(world.store_path) as db:
        states = {row[0] for row in db.execute("select state from sla_clocks")}
    assert "breached" not in states and states


# -- the clock a page was asked for at --------------------------------------------------------

BASE = "https://help.example"


def stream() -> Stream:
    return Stream("items", Request("/api/items"), paginator=lambda: CursorPaginator(token="next", param="cursor", end="done"),
                  resume=FromToken(lambda horizon: {"since": int(horizon.timestamp())}), records="items",
                  normalise=lambda record, context: [])


def client(machine: datetime) -> SourceClient:
    policy = RetryPolicy(max_attempts=1, sleep=lambda s: None, clock=lambda: machine)
    return SourceClient("help", httpx.Client(base_url=BASE), policy)


@respx.mock
def test_a_page_is_asked_for_at_the_source_clock_when_it_sends_one():
    helpdesk = datetime(2026, 11, 1, 12, 0, 30, tzinfo=timezone.utc)
    respx.get(f"{BASE}/api/items").mock(return_value=httpx.Response(
        200, json={"items": [], "done": True, "next": "x"}, headers={"Date": "Sun, 01 Nov 2026 12:00:30 GMT"}))
    walk = Walk()
    list(read_stream(stream(), client(ANCHOR + timedelta(hours=3)), cursor=None, horizon=ANCHOR - timedelta(days=1), now=ANCHOR,
                     walk=walk))
    assert walk.asked_at is not None and helpdesk - timedelta(seconds=2) <= walk.asked_at <= helpdesk


@respx.mock
def test_without_a_date_header_a_page_is_asked_for_at_this_machines_clock():
    respx.get(f"{BASE}/api/items").mock(return_value=httpx.Response(200, json={"items": [], "done": True, "next": "x"}))
    walk = Walk()
    machine = ANCHOR + timedelta(minutes=7)
    list(read_stream(stream(), client(machine), cursor=None, horizon=ANCHOR - timedelta(days=1), now=ANCHOR, walk=walk))
    assert walk == Walk(asked_at=machine)


# -- a body that is not a page: not an end either ---------------------------------------------


@respx.mock
def test_a_body_that_is_not_an_object_stops_the_source():
    """A JSON array where the page's object should be had no records and no continuation: it
    ended the walk as if the export were done (exit 0, and complete to now)."""
    respx.get(f"{BASE}/api/items").mock(return_value=httpx.Response(200, json=[{"id": 1}]))
    with pytest.raises(PaginationError, match=r"stream 'items': the answer to /api/items\?since=\d+ is a JSON array, not an object"):
        list(read_stream(stream(), client(ANCHOR), cursor=None, horizon=ANCHOR - timedelta(days=1), now=ANCHOR))
