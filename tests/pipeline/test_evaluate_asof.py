"""Evaluate judges what the data supports: as of the point it is complete to, and no credit for a
clock that is no longer a breach (a late reply, a canceled or deleted ticket)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from bridge.edges.store import Store
from bridge.engine.calendar import Calendar
from bridge.engine.policy import Policy
from bridge.model import Page, Ticket, TicketEvent, to_iso
from bridge.pipeline.evaluate import evaluate_source
from bridge.pipeline.report import SourceStats

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
M = 60


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


POLICY = Policy.from_config({
    "name": "gold", "contract": "MSA",
    "targets": {"first_response": {"p1": "1h"}, "resolution": {"p1": "4h"}},
    "credits": {"currency": "EUR", "monthly_fee": 1000, "per_breach": [{"over": "0%", "percent": 2}]},
}, {"24x7": Calendar.builtin("24x7")})


def ticket(number: int, status: str = "open", updated: float = 0) -> Ticket:
    return Ticket(source="zd", system="zendesk", external_id=str(number), key=f"#{number}", title="VPN down", status=status,
                  status_raw=status, created_at=T0, updated_at=minutes(updated), priority="p1", customer="ACME")


def event(number: int, event_id: str, kind: str, at: float, to_value: str | None = None) -> TicketEvent:
    return TicketEvent(f"zd:{number}", event_id, kind, minutes(at), "open" if to_value else None, to_value)  # type: ignore[arg-type]


class World:
    def __init__(self) -> None:
        self.store = Store.memory()
        self.runs = 0

    def pulled(self, tickets: list[Ticket], events: list[TicketEvent]) -> None:
        self.runs += 1
        self.store.run_id = self.runs
        self.store.save_page("zd", Page(tickets=tickets, events=events, cursor=None))

    def evaluate(self, now: datetime) -> SourceStats:
        stats = SourceStats()
        evaluate_source(self.store, "zd", [POLICY], now=now, run_id=self.runs, stats=stats)
        return stats

    def clocks(self, number: int) -> dict[str, tuple[str, str | None]]:
        return {row["metric"]: (row["state"], row["evaluated_at"]) for row in self.store.clock_rows(f"zd:{number}")}

    def credits(self) -> list[str]:
        return [row[0] for row in self.store.db.execute("select id from credits order by id")]

    def status_rows(self) -> list[tuple[str, str, str]]:
        return [(row["ticket_id"], row["metric"], row["state"]) for row in self.store.worst_clocks()]


@pytest.fixture
def world() -> World:
    return World()


def test_no_breach_is_declared_past_the_point_the_data_is_complete_to(world):
    """The first reply came at 59 min, inside the minute the export leaves out: at 61 min the data
    is complete only to 60 min less a little, so the clock is at risk, not breached."""
    world.pulled([ticket(1)], [event(1, "s", "status", 0, "open")])
    world.store.set_mark("complete_to:zd", to_iso(minutes(59.5)))
    world.evaluate(minutes(61))
    assert world.clocks(1)["first_response"] == ("running", to_iso(minutes(59.5)))
    assert world.store.mark("evaluated_at:zd") == to_iso(minutes(59.5))
    assert next(row for row in world.store.worst_clocks() if row["metric"] == "first_response")["at_risk"] == 1
    assert world.credits() == []
    # The next run sees the reply: met, and no breach was ever recorded.
    world.pulled([ticket(1)], [event(1, "s", "status", 0, "open"), event(1, "r", "agent_reply", 59)])
    world.store.set_mark("complete_to:zd", to_iso(minutes(65)))
    world.evaluate(minutes(66))
    assert world.clocks(1)["first_response"] == ("met", to_iso(minutes(65)))
    assert world.store.mark("evaluated_at:zd") == to_iso(minutes(65))


def test_a_breach_before_the_complete_point_is_declared(world):
    world.pulled([ticket(1)], [event(1, "s", "status", 0, "open")])
    world.store.set_mark("complete_to:zd", to_iso(minutes(70)))
    world.evaluate(minutes(71))
    assert world.clocks(1)["first_response"][0] == "breached"
    assert world.credits() == ["breach:zd:1:first_response:1"]


def test_now_earlier_than_the_complete_point_is_used_as_it_is(world):
    world.pulled([ticket(1)], [event(1, "s", "status", 0, "open")])
    world.store.set_mark("complete_to:zd", to_iso(minutes(500)))
    world.evaluate(minutes(30))
    assert world.store.mark("evaluated_at:zd") == to_iso(minutes(30))


def test_without_a_complete_point_now_is_used(world):
    world.pulled([ticket(1)], [event(1, "s", "status", 0, "open")])
    world.evaluate(minutes(30))
    assert world.store.mark("evaluated_at:zd") == to_iso(minutes(30))


def test_a_breach_credit_goes_when_its_clock_is_no_longer_breached(world):
    # Pulled without its reply (history late): first response breached, a credit recorded.
    world.pulled([ticket(1)], [event(1, "s", "status", 0, "open")])
    world.evaluate(minutes(90))
    assert world.credits() == ["breach:zd:1:first_response:1"]
    # The reply arrives (it was at 40 min): met, and the credit is gone.
    world.pulled([ticket(1)], [event(1, "s", "status", 0, "open"), event(1, "r", "agent_reply", 40)])
    world.evaluate(minutes(95))
    assert world.clocks(1)["first_response"][0] == "met"
    assert world.credits() == []


def test_a_deleted_ticket_earns_no_credit_and_leaves_status(world):
    world.pulled([ticket(1), ticket(10)], [event(1, "s", "status", 0, "open"), event(10, "s", "status", 0, "open")])
    world.evaluate(minutes(300))
    assert world.credits() == ["breach:zd:10:first_response:1", "breach:zd:10:resolution:1",
                               "breach:zd:1:first_response:1", "breach:zd:1:resolution:1"]
    world.pulled([ticket(1, "deleted", updated=320)], [event(1, "d", "status", 320, "deleted")])
    world.evaluate(minutes(330))
    assert world.clocks(1) == {"first_response": ("canceled", to_iso(minutes(330))),
                               "resolution": ("canceled", to_iso(minutes(330)))}
    # Ticket 10 (an id that begins like ticket 1's) keeps its credits.
    assert world.credits() == ["breach:zd:10:first_response:1", "breach:zd:10:resolution:1"]
    assert {ticket_id for ticket_id, _, _ in world.status_rows()} == {"zd:10"}


def test_a_canceled_ticket_earns_no_credit(world):
    world.pulled([ticket(2, "canceled", updated=200)],
                 [event(2, "s", "status", 0, "open"), event(2, "c", "status", 200, "canceled")])
    world.evaluate(minutes(300))
    assert {state for state, _ in world.clocks(2).values()} == {"canceled"}
    assert world.credits() == [] and world.status_rows() == []
