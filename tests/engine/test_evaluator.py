"""The evaluator: where each clock stands, on the rules an SLA manager would check by hand."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from bridge.engine.calendar import Calendar
from bridge.engine.evaluator import evaluate, evaluate_ticket
from bridge.engine.policy import Policy
from bridge.model import Ticket, TicketEvent
from tests.conftest import ROOT

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
H, M = 3600, 60
CALENDARS = {
    "24x7": Calendar.builtin("24x7"),
    "office": Calendar.from_config({"timezone": "UTC", "hours": {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}),
}


def policy(**overrides) -> Policy:
    config = {
        "name": "gold",
        "contract": "ACME MSA s.9",
        "targets": {"first_response": {"p1": "1h"}, "next_response": {"p1": "30m"}, "resolution": {"p1": "4h"}},
        **overrides,
    }
    return Policy.from_config(config, CALENDARS)


def ticket(status: str = "open", priority: str | None = "p1", **fields) -> Ticket:
    return Ticket(
        source="zd", system="zendesk", external_id="1", key="#1", title="VPN down", status=status,
        status_raw=status, created_at=T0, updated_at=T0, priority=priority, **fields,
    )


class History:
    """Builds a ticket's events in minutes after creation."""

    def __init__(self) -> None:
        self.events: list[TicketEvent] = []
        self.status = "new"

    def _add(self, kind: str, minutes: float, **values) -> History:
        self.events.append(TicketEvent("zd:1", str(len(self.events)), kind, T0 + timedelta(minutes=minutes), **values))
        return self

    def to(self, status: str, minutes: float) -> History:
        previous, self.status = self.status, status
        return self._add("status", minutes, from_value=previous, to_value=status)

    def agent(self, minutes: float) -> History:
        return self._add("agent_reply", minutes)

    def customer(self, minutes: float) -> History:
        return self._add("customer_reply", minutes)


def clocks(history: History, now_minutes: float, pol: Policy | None = None, **ticket_fields):
    result = evaluate(ticket(**ticket_fields), history.events, pol or policy(), T0 + timedelta(minutes=now_minutes))
    return {(c.metric, c.cycle): c for c in result}


def test_first_response_met_stops_at_the_first_agent_reply():
    c = clocks(History().to("open", 5).agent(40), now_minutes=300)[("first_response", 1)]
    assert (c.state, c.elapsed_seconds, c.stopped_at) == ("met", 40 * M, T0 + timedelta(minutes=40))
    assert c.due_at == T0 + timedelta(hours=1) and c.breached_at is None


def test_first_response_breached_records_when():
    c = clocks(History().to("open", 5).agent(75), now_minutes=300)[("first_response", 1)]
    assert (c.state, c.elapsed_seconds, c.overrun_seconds) == ("breached", 75 * M, 15 * M)
    assert c.breached_at == T0 + timedelta(hours=1)


def test_reply_exactly_on_target_is_met_unless_breach_on_equal():
    history = History().agent(60)
    assert clocks(history, 300)[("first_response", 1)].state == "met"
    assert clocks(history, 300, policy(breach_on_equal=True))[("first_response", 1)].state == "breached"


def test_an_agent_comment_at_creation_is_not_the_first_reply():
    c = clocks(History().agent(0).agent(20), 300)[("first_response", 1)]
    assert c.stopped_at == T0 + timedelta(minutes=20)


def test_running_clock_moves_with_now_and_warns_at_warn_at():
    history = History().to("open", 1)
    early = clocks(history, 44)[("first_response", 1)]
    warned = clocks(history, 45)[("first_response", 1)]  # 45 of 60 minutes: exactly 0.75
    late = clocks(history, 61)[("first_response", 1)]
    assert (early.state, early.at_risk) == ("running", False)
    assert (warned.state, warned.at_risk, warned.elapsed_seconds) == ("running", True, 45 * M)
    assert (late.state, late.at_risk, late.stopped_at) == ("breached", False, None)


def test_waiting_for_the_customer_pauses_every_clock():
    history = History().to("open", 0).agent(10).to("waiting_customer", 10).customer(190).to("open", 190)
    result = clocks(history, 250)
    resolution = result[("resolution", 1)]
    assert resolution.state == "running"
    assert (resolution.elapsed_seconds, resolution.paused_seconds) == (70 * M, 180 * M)
    assert resolution.due_at == T0 + timedelta(hours=4, minutes=180)  # moved out by the pause
    assert result[("next_response", 1)].started_at == T0 + timedelta(minutes=190)


def test_a_clock_that_starts_in_a_paused_status_starts_paused():
    history = History().to("waiting_customer", 0)
    c = clocks(history, 90)[("first_response", 1)]
    assert (c.state, c.elapsed_seconds, c.paused_seconds) == ("paused", 0, 90 * M)
    assert c.due_at == T0 + timedelta(minutes=90 + 60)  # as if the pause ended now


def test_pause_statuses_come_from_the_policy():
    history = History().to("on_hold", 0).to("open", 60)
    default = clocks(history, 120)[("resolution", 1)]
    on_hold_pauses = clocks(history, 120, policy(pause_when=["waiting_customer", "on_hold"]))[("resolution", 1)]
    assert (default.elapsed_seconds, on_hold_pauses.elapsed_seconds) == (120 * M, 60 * M)


def test_next_response_cycles_start_at_the_first_unanswered_customer_message():
    history = (
        History().to("open", 0).customer(2).agent(10)  # a message before any agent reply is first_response's
        .customer(20).customer(25).agent(45)  # cycle 1: from 20 (25 does not move it) to 45
        .customer(60).agent(70)  # cycle 2: met
        .customer(100)  # cycle 3: still waiting
    )
    result = clocks(history, 140)
    cycles = {cycle: c for (metric, cycle), c in result.items() if metric == "next_response"}
    assert sorted(cycles) == [1, 2, 3]
    assert (cycles[1].started_at, cycles[1].elapsed_seconds, cycles[1].state) == (T0 + timedelta(minutes=20), 25 * M, "met")
    assert (cycles[2].elapsed_seconds, cycles[2].state) == (10 * M, "met")
    assert (cycles[3].elapsed_seconds, cycles[3].state, cycles[3].stopped_at) == (40 * M, "breached", None)


def test_resolving_ends_a_waiting_next_response_and_unreplied_first_response():
    history = History().to("open", 0).to("resolved", 30)
    result = clocks(history, 500)
    assert result[("first_response", 1)].state == "met"
    assert result[("first_response", 1)].stopped_at == T0 + timedelta(minutes=30)
    assert result[("resolution", 1)].state == "met"


def test_reopen_continues_the_resolution_clock_by_default():
    history = History().to("open", 0).agent(5).to("resolved", 60).to("open", 600).to("resolved", 780)
    c = clocks(history, 1000)[("resolution", 1)]
    # 60 minutes, then 180 minutes after the reopen; the 9 hours spent resolved do not count
    assert (c.state, c.elapsed_seconds, c.stopped_at) == ("met", 240 * M, T0 + timedelta(minutes=780))
    assert c.breached_at is None


def test_reopen_can_start_a_new_cycle_as_jsm_does():
    history = History().to("open", 0).agent(5).to("resolved", 60).to("open", 600)
    result = clocks(history, 900, policy(on_reopen="new_cycle"))
    first, second = result[("resolution", 1)], result[("resolution", 2)]
    assert (first.state, first.elapsed_seconds) == ("met", 60 * M)
    assert (second.started_at, second.elapsed_seconds, second.state) == (T0 + timedelta(minutes=600), 300 * M, "breached")


def test_business_hours_calendar_counts_only_working_time():
    # created Monday 16:00 on a 9-17 calendar; resolved Tuesday 11:00: 1h + 2h = 3h
    start = T0.replace(hour=16)
    t = ticket(status="resolved")
    t.created_at = start
    events = [
        TicketEvent("zd:1", "a", "status", start, "new", "open"),
        TicketEvent("zd:1", "b", "status", start + timedelta(hours=19), "open", "resolved"),
    ]
    [resolution] = [c for c in evaluate(t, events, policy(calendar="office"), start + timedelta(days=2)) if c.metric == "resolution"]
    assert (resolution.elapsed_seconds, resolution.state) == (3 * H, "met")
    assert resolution.due_at == T0.replace(day=3, hour=12)  # 4h: 1h Monday + 3h Tuesday from 09:00


def test_no_clock_without_a_target_for_the_priority():
    assert clocks(History(), 10, priority="p4") == {}
    assert clocks(History(), 10, priority=None) == {}


def test_first_matching_policy_applies_and_lists_are_any_of():
    policies = [
        policy(name="acme", match={"customer": ["ACME Ltd", "ACME GmbH"], "priority": "p1"}),
        policy(name="catch-all"),
    ]
    [(acme, _)] = evaluate_ticket(ticket(customer="ACME GmbH"), [], policies, T0)
    [(other, _)] = evaluate_ticket(ticket(customer="Globex"), [], policies, T0)
    assert (acme.name, other.name) == ("acme", "catch-all")
    assert evaluate_ticket(ticket(customer="Globex"), [], policies[:1], T0) == []


def test_resolved_ticket_without_history_is_resolved_at_resolved_at():
    t = ticket(status="resolved", resolved_at=T0 + timedelta(hours=5))
    c = {x.metric: x for x in evaluate(t, [], policy(), T0 + timedelta(days=1))}["resolution"]
    assert (c.elapsed_seconds, c.state) == (5 * H, "breached")


def test_same_inputs_same_clocks_whatever_the_event_order():
    history = History().to("open", 0).agent(10).to("waiting_customer", 10).customer(50).to("open", 50).agent(70).to("resolved", 200)
    now = T0 + timedelta(hours=6)
    expected = evaluate(ticket(), history.events, policy(), now)
    shuffled = list(history.events)
    random.Random(7).shuffle(shuffled)
    assert evaluate(ticket(), shuffled, policy(), now) == expected
    assert evaluate(ticket(), history.events, policy(), now) == expected


def test_clocks_carry_the_policy_and_a_version_that_changes_with_it():
    base = clocks(History(), 10)[("first_response", 1)]
    changed = clocks(History(), 10, policy(warn_at=0.8))[("first_response", 1)]
    office = clocks(History(), 10, policy(calendar="office"))[("first_response", 1)]
    assert base.policy == "gold"
    assert len({base.policy_version, changed.policy_version, office.policy_version}) == 3
    assert clocks(History(), 10)[("first_response", 1)].policy_version == base.policy_version


def test_a_naive_now_is_refused():
    with pytest.raises(ValueError, match="naive datetime"):
        evaluate(ticket(), [], policy(), datetime(2026, 3, 2, 12))


@pytest.mark.parametrize(
    ("key", "allowed", "other"),
    [
        ("source", ["zd", "jira"], "servicenow"),
        ("customer", ["ACME", "ACME GmbH"], "Globex"),
        ("priority", ["p1", "p3"], "p2"),
        ("type", ["incident", "outage"], "question"),
        ("service", ["email", "vpn"], "printing"),
        ("group", ["2nd line", "3rd line"], None),
    ],
)
def test_every_match_key_selects(key, allowed, other):
    chosen = policy(match={key: allowed})
    hit = ticket(customer="ACME", type="incident", service="email", group="2nd line")
    miss = ticket(customer="ACME", type="incident", service="email", group="2nd line")
    setattr(miss, key, other)
    assert chosen.matches(hit) and not chosen.matches(miss)


def test_policies_built_from_the_example_config():

    from bridge.config import load_config
    from bridge.engine.policy import build_policies

    policies = build_policies(load_config(ROOT / "config.example.toml"))
    acme = ticket(customer="ACME Ltd")
    acme.source = "zendesk-prod"
    other = ticket(customer="Globex")
    now = T0 + timedelta(hours=2)
    [(chosen, acme_clocks)] = evaluate_ticket(acme, [], policies, now)
    [(fallback, other_clocks)] = evaluate_ticket(other, [], policies, now)
    assert (chosen.name, chosen.calendar.name, fallback.name) == ("acme-gold", "uk-office", "default")
    # Monday 09:00 UTC is 09:00 in London (GMT in March): two business hours have passed
    assert {c.metric: c.elapsed_seconds for c in acme_clocks} == {"first_response": 2 * H, "resolution": 2 * H}
    assert {c.metric: c.state for c in acme_clocks}["first_response"] == "breached"  # p1 target 30m
    assert {c.metric for c in other_clocks} == {"first_response", "resolution"}


# -- issue 9: as of now; canceled and deleted tickets ------------------------------------------


def test_what_happens_after_now_has_not_happened_yet():
    """Evaluated as of an instant (the point the source's data is complete to), a reply or a
    resolution that came later does not count yet: the clocks run, none breached or stopped."""
    history = History().to("open", 0).agent(50).to("resolved", 90)
    c = clocks(history, now_minutes=45)
    assert {key: (clock.state, clock.stopped_at, clock.elapsed_seconds) for key, clock in c.items()} == {
        ("first_response", 1): ("running", None, 45 * M),
        ("resolution", 1): ("running", None, 45 * M),
    }
    assert c[("first_response", 1)].at_risk  # 45 of 60 minutes: at risk, not breached


def test_a_later_status_change_leaves_the_earlier_status_in_place():
    # Moved to waiting at minute 50: as of minute 45 the ticket is still open, not paused from creation.
    c = clocks(History().to("open", 0).to("waiting_customer", 50), now_minutes=45)[("resolution", 1)]
    assert (c.state, c.elapsed_seconds, c.paused_seconds) == ("running", 45 * M, 0)


def test_a_deleted_ticket_stops_counting_and_is_neither_met_nor_breached():
    # Breached first response (no reply in 1 h), resolution running for 2 h, then deleted at 2 h.
    history = History().to("open", 0).to("deleted", 120)
    c = clocks(history, now_minutes=600)
    assert {key: (clock.state, clock.stopped_at, clock.breached_at, clock.at_risk) for key, clock in c.items()} == {
        ("first_response", 1): ("canceled", T0 + timedelta(minutes=120), None, False),
        ("resolution", 1): ("canceled", T0 + timedelta(minutes=120), None, False),
    }
    assert c[("resolution", 1)].elapsed_seconds == 120 * M  # counted until the deletion, not until now
    assert not any(clock.breached for clock in c.values())


def test_a_canceled_ticket_keeps_no_breach_decided_before_it_was_canceled():
    # The first response was missed (reply at 75 min), then the customer canceled the request.
    history = History().to("open", 0).agent(75).customer(80).to("canceled", 100)
    c = clocks(history, now_minutes=600)
    assert {clock.state for clock in c.values()} == {"canceled"}
    assert c[("first_response", 1)].stopped_at == T0 + timedelta(minutes=75)
    assert c[("next_response", 1)].stopped_at == T0 + timedelta(minutes=100)


def test_a_deleted_ticket_without_history_is_void_too():
    t = ticket(status="deleted", resolved_at=None)
    t.updated_at = T0 + timedelta(minutes=90)
    result = evaluate(t, [], policy(), T0 + timedelta(minutes=600))
    assert {(c.metric, c.state, c.stopped_at) for c in result} == {
        ("first_response", "canceled", T0 + timedelta(minutes=90)), ("resolution", "canceled", T0 + timedelta(minutes=90))}


def test_a_ticket_deleted_after_now_is_judged_as_it_stood():
    history = History().to("open", 0).to("deleted", 120)
    c = clocks(history, now_minutes=90)[("first_response", 1)]
    assert (c.state, c.stopped_at) == ("breached", None)


def test_a_ticket_restored_from_deleted_is_judged_as_usual():
    history = History().to("open", 0).to("deleted", 20).to("open", 30)
    c = clocks(history, now_minutes=120)
    # Like a resolve and a reopen: the first response ended at the deletion, the resolution goes on
    # without the ten minutes spent deleted.
    assert (c[("first_response", 1)].state, c[("first_response", 1)].stopped_at) == ("met", T0 + timedelta(minutes=20))
    assert (c[("resolution", 1)].state, c[("resolution", 1)].elapsed_seconds) == ("running", 110 * M)


def test_a_finished_clock_keeps_the_goal_it_had_when_the_priority_changes_later():
    """Answered in 3 h at p3 (4 h to answer), then raised to p1 (1 h): the met response stays met,
    as Jira Service Management scores a completed cycle; the running resolution takes p1's goal."""
    pol = policy(targets={"first_response": {"p1": "1h", "p3": "4h"}, "resolution": {"p1": "4h", "p3": "24h"}})
    history = History().to("open", 5).agent(180)._add("priority", 200, from_value="p3", to_value="p1")
    result = clocks(history, 300, pol, priority="p1")
    assert (result[("first_response", 1)].state, result[("first_response", 1)].target_seconds) == ("met", 4 * H)
    assert (result[("resolution", 1)].state, result[("resolution", 1)].target_seconds) == ("breached", 4 * H)


def test_a_clock_that_stopped_before_any_priority_change_keeps_the_priority_changed_from():
    pol = policy(targets={"first_response": {"p1": "1h", "p2": "2h"}})
    history = History().agent(90)._add("priority", 120, from_value="p2", to_value="p1")._add("priority", 150, from_value="p1", to_value="p1")
    assert clocks(history, 300, pol, priority="p1")[("first_response", 1)].state == "met"  # 90 min of p2's 2 h


def test_resolved_without_a_reply_stops_first_response_unless_the_policy_pauses_it():
    """Resolved at 30 min with no reply, reopened at 10 h, answered 20 min later."""
    history = History().to("open", 5).to("resolved", 30).to("open", 600).agent(620)
    stopped = clocks(history, 700)[("first_response", 1)]
    paused = clocks(history, 700, policy(first_response_on_resolve="pause"))[("first_response", 1)]
    assert (stopped.state, stopped.stopped_at, stopped.elapsed_seconds) == ("met", T0 + timedelta(minutes=30), 30 * M)
    # Zendesk/Zammad: runs on to the reply; the 9.5 h resolved do not count: 30 + 20 minutes
    assert (paused.state, paused.stopped_at, paused.elapsed_seconds) == ("met", T0 + timedelta(minutes=620), 50 * M)


def test_a_paused_first_response_of_a_ticket_still_resolved_stops_at_the_resolve():
    c = clocks(History().to("open", 5).to("resolved", 90), 700, policy(first_response_on_resolve="pause"))[("first_response", 1)]
    assert (c.state, c.stopped_at) == ("breached", T0 + timedelta(minutes=90))


def test_each_metric_may_pause_on_its_own_statuses():
    """Zendesk: waiting on the customer pauses resolution but never the reply time."""
    history = History().to("open", 5).to("waiting_customer", 10).to("open", 130).agent(140)
    pol = policy(targets={"first_response": {"p1": "1h"}, "resolution": {"p1": "4h"}},
                 pause_by_metric={"first_response": []})
    result = clocks(history, 200, pol)
    assert (result[("first_response", 1)].state, result[("first_response", 1)].paused_seconds) == ("breached", 0)
    assert result[("resolution", 1)].paused_seconds == 120 * M  # pause_when still pauses resolution
    same = clocks(history, 200)[("first_response", 1)]  # without it: paused too, met
    assert (same.state, same.elapsed_seconds) == ("met", 20 * M)
