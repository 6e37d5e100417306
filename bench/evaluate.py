"""Tickets evaluated per second: 100,000 synthetic tickets with histories, three policies.

    pip install -e . && python bench/evaluate.py [--n 100000] [--seed 7] [--agreements]

The tickets are seeded and realistic in shape: replies, waits for the customer, reopenings,
three customers on three calendars (business hours with public holidays, extended hours with an
overnight shift, 24x7). Generation is not timed; policy selection plus evaluation is, then the
credit run over the result.

``--agreements`` adds issue 12's richer contracts: a third of the tickets handed from first line
to the 2nd line, one in ten waiting on a third party, an OLA per line and an underpinning
contract beside each customer's SLA (whose clocks then split their time between the teams), and
Globex's resolution reset on reassignment. The tickets are otherwise the same.
"""

from __future__ import annotations

import sys

# bench/calendar.py would shadow the standard library's calendar module: drop this folder.
if sys.path and sys.path[0].rstrip("/").endswith("bench"):
    sys.path.pop(0)

import argparse
import random
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

from bridge.engine.calendar import Calendar
from bridge.engine.credits import Evaluated, compute_credits
from bridge.engine.evaluator import evaluate_ticket
from bridge.engine.policy import Policy
from bridge.model import Ticket, TicketEvent

UTC = timezone.utc
QUARTER_START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 4, 1, tzinfo=UTC)
WEEK = ("mon", "tue", "wed", "thu", "fri")
CREDITS = {
    "currency": "EUR",
    "monthly_fee": 10_000,
    "cap_percent": 15,
    "per_breach": [{"over": "0%", "percent": 0.5}, {"over": "50%", "percent": 1}, {"over": "8h", "percent": 2}],
    "success_rate": [{"below": 95, "percent": 3}, {"below": 90, "percent": 6}],
}


def policies(agreements: bool = False) -> list[Policy]:
    calendars = {
        "berlin": Calendar.from_config(
            {"timezone": "Europe/Berlin", "hours": {d: ["08:00-18:00"] for d in WEEK}, "holiday_country": "DE"}, name="berlin"
        ),
        "new-york": Calendar.from_config(
            {"timezone": "America/New_York", "hours": {**{d: ["07:00-23:00"] for d in WEEK}, "sat": ["22:00-06:00"]},
             "holiday_country": "US"},
            name="new-york",
        ),
        "24x7": Calendar.builtin("24x7"),
    }
    targets = {
        "first_response": {"p1": "30m", "p2": "2h", "p3": "4h", "p4": "8h"},
        "next_response": {"p1": "1h", "p2": "4h", "p3": "8h", "p4": "16h"},
        "resolution": {"p1": "4h", "p2": "16h", "p3": "40h", "p4": "80h"},
    }
    extra: dict[str, object] = {"reset_on": ["group"]} if agreements else {}
    ordered = [
        Policy.from_config({"name": "acme", "calendar": "berlin", "match": {"customer": "ACME"}, "targets": targets, "credits": CREDITS}, calendars),
        Policy.from_config({"name": "globex", "calendar": "new-york", "match": {"customer": "Globex"}, "targets": targets,
                            "on_reopen": "new_cycle", "pause_when": ["waiting_customer", "on_hold"], "credits": CREDITS, **extra},
                           calendars),
        Policy.from_config({"name": "initech", "calendar": "24x7", "targets": targets, "credits": CREDITS}, calendars),
    ]
    if agreements:
        ordered += [
            Policy.from_config({"name": "first-line", "kind": "ola", "team": "Support", "calendar": "berlin",
                                "targets": {"first_response": {"p1": "15m", "p2": "1h", "p3": "2h", "p4": "4h"}}}, calendars),
            Policy.from_config({"name": "second-line", "kind": "ola", "team": "2nd line", "calendar": "berlin",
                                "targets": {"resolution": {"p1": "4h", "p2": "8h", "p3": "16h", "p4": "24h"}}}, calendars),
            Policy.from_config({"name": "telco", "kind": "uc", "third_party": "Telco",
                                "targets": {"resolution": {"p1": "4h", "p2": "8h", "p3": "24h", "p4": "48h"}}}, calendars),
        ]
    return ordered


def synthetic(n: int, seed: int, agreements: bool = False) -> list[tuple[Ticket, list[TicketEvent]]]:
    rng = random.Random(seed)
    customers = ("ACME", "Globex", "Initech")
    tickets = [_synthetic_ticket(rng, number, customers) for number in range(n)]
    return [_with_agreements(random.Random(seed * 1_000_003 + i), *t) for i, t in enumerate(tickets)] if agreements else tickets


def _with_agreements(rng: random.Random, ticket: Ticket, events: list[TicketEvent]) -> tuple[Ticket, list[TicketEvent]]:
    """The same ticket with first line, a handoff after the first answer (one in three) and a
    wait on a third party (one in ten), drawn from its own generator."""
    ticket.group = "Support"
    events = list(events)
    replies = [e for e in events if e.kind == "agent_reply"]
    if replies and rng.random() < 1 / 3:
        at = replies[0].at + timedelta(minutes=rng.randrange(5, 90))
        events.append(TicketEvent(ticket.id, "g", "group", at, "Support", "2nd line"))
        if at <= ticket.updated_at:
            ticket.group = "2nd line"
    statuses = [e for e in events if e.kind == "status" and e.to_value == "open"]
    if statuses and rng.random() < 0.1:
        start = statuses[0].at + timedelta(minutes=rng.randrange(10, 60))
        events.append(TicketEvent(ticket.id, "w1", "status", start, "open", "waiting_third_party"))
        events.append(TicketEvent(ticket.id, "w2", "status", start + timedelta(minutes=rng.randrange(30, 600)),
                                  "waiting_third_party", "open"))
    return ticket, events


def _synthetic_ticket(rng: random.Random, number: int, customers: tuple[str, ...]) -> tuple[Ticket, list[TicketEvent]]:
    # A function of its own, so the helpers below close over this ticket's variables, not a loop's.
    created = QUARTER_START + timedelta(seconds=rng.randrange(85 * 86400))
    ticket_id = f"zd:{number}"
    events: list[TicketEvent] = []
    at = created
    status = "new"

    def step(minutes: float) -> datetime:
        nonlocal at
        at = at + timedelta(seconds=int(minutes * 60))
        return at

    def move(to: str) -> None:
        nonlocal status
        events.append(TicketEvent(ticket_id, str(len(events)), "status", at, status, to))
        status = to

    def reply(kind: str) -> None:
        events.append(TicketEvent(ticket_id, str(len(events)), kind, at))

    step(rng.uniform(0, 30))
    move("open")
    for _ in range(rng.choice((1, 1, 2, 3))):
        step(rng.expovariate(1 / 180))
        reply("agent_reply")
        if rng.random() < 0.4:
            move("waiting_customer")
            step(rng.expovariate(1 / 600))
            reply("customer_reply")
            move("open")
        else:
            step(rng.expovariate(1 / 240))
            reply("customer_reply")
    resolved_at = None
    if rng.random() < 0.85:
        step(rng.expovariate(1 / 900))
        move("resolved")
        resolved_at = at
        if rng.random() < 0.1:
            step(rng.expovariate(1 / 1440))
            reply("customer_reply")
            move("open")
            step(rng.expovariate(1 / 300))
            reply("agent_reply")
            move("resolved")
            resolved_at = at
    ticket = Ticket(
        source="zd", system="zendesk", external_id=str(number), key=f"#{number}", title="synthetic",
        status=status, status_raw=status, created_at=created, updated_at=at, resolved_at=resolved_at,
        priority=rng.choice(("p1", "p2", "p2", "p3", "p3", "p3", "p4")), customer=rng.choice(customers),
    )
    return ticket, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--agreements", action="store_true", help="OLAs, a UC, handoffs and resets (issue 12)")
    args = parser.parse_args()
    ordered = policies(args.agreements)
    began = time.perf_counter()
    tickets = synthetic(args.n, args.seed, args.agreements)
    generated = time.perf_counter() - began
    events = sum(len(e) for _, e in tickets)
    print(f"{args.n:,} tickets, {events:,} events (generated in {generated:.1f}s, not timed below)")

    began = time.perf_counter()
    evaluated = []
    states: Counter[str] = Counter()
    for ticket, history in tickets:
        judged = evaluate_ticket(ticket, history, ordered, NOW)
        assert judged
        for policy, clocks in judged:
            evaluated.append(Evaluated(ticket, policy, clocks, history))
            states.update(c.state for c in clocks)
    elapsed = time.perf_counter() - began
    clock_count = sum(states.values())
    print(f"evaluate: {args.n / elapsed:,.0f} tickets/s, {clock_count / elapsed:,.0f} clocks/s ({elapsed:.1f}s, {clock_count:,} clocks)")
    print("  states: " + ", ".join(f"{state} {count:,}" for state, count in states.most_common()))

    began = time.perf_counter()
    credits = compute_credits(evaluated, NOW)
    elapsed = time.perf_counter() - began
    owed = sum(c.amount for c in credits)
    print(f"credits:  {args.n / elapsed:,.0f} tickets/s ({elapsed:.2f}s): {len(credits)} customer-periods, EUR {owed:,.2f} owed")


if __name__ == "__main__":
    main()
