"""Service credits: sliding scales, success rates, availability, periods and caps, compared exactly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bridge.engine.calendar import Calendar
from bridge.engine.credits import (
    Evaluated,
    availability_credit,
    breach_credit_percent,
    compute_credits,
    downtime_seconds,
    period_bounds,
    period_of,
    success_rate_credit,
)
from bridge.engine.evaluator import Clock, evaluate
from bridge.engine.policy import Policy
from bridge.model import Ticket, TicketEvent

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
H, M = 3600, 60
PER_BREACH = [{"over": "0%", "percent": 1}, {"over": "50%", "percent": 2.5}, {"over": "4h", "percent": 5}]
AVAILABILITY = {"commitment": 99.99, "tiers": [{"below": 99.99, "percent": 10}, {"below": 99.0, "percent": 30}]}


def clock(target: int, elapsed: int, state: str = "breached") -> Clock:
    t = datetime(2026, 3, 2, tzinfo=UTC)
    return Clock("zd:1", "resolution", 1, "gold", "v", state, target, elapsed, 0, t, None, t, t, False)


@pytest.mark.parametrize(
    ("target", "elapsed", "percent"),
    [
        (2 * H, 2 * H, 0),  # met: no credit
        (2 * H, 2 * H + 1, 1),  # any overrun reaches "0%"
        (2 * H, 3 * H - 1, 1),  # 49.99% over
        (2 * H, 3 * H, 2.5),  # exactly 50% over reaches "50%"
        (2 * H, 6 * H, 5),  # 4h over reaches "4h" (and 200%, but 5 is the highest)
        (10 * H, 14 * H, 5),  # 40% over, but 4h absolute
    ],
)
def test_per_breach_sliding_scale(target, elapsed, percent):
    state = "breached" if elapsed > target else "met"
    assert breach_credit_percent(PER_BREACH, clock(target, elapsed, state)) == percent


def test_breach_on_equal_still_reaches_the_zero_tier():
    assert breach_credit_percent(PER_BREACH, clock(2 * H, 2 * H, "breached")) == 1


@pytest.mark.parametrize(
    ("met", "decided", "percent"),
    [(95, 100, 0), (949, 1000, 5), (90, 100, 5), (899, 1000, 10), (1, 3, 10)],
)
def test_success_rate_lowest_threshold_under_applies_and_equal_is_not_under(met, decided, percent):
    tiers = [{"below": 95, "percent": 5}, {"below": 90, "percent": 10}]
    share, credit = success_rate_credit(tiers, met, decided)
    assert credit == percent and share == pytest.approx(met * 100 / decided)


def test_success_rate_with_nothing_decided_earns_nothing():
    assert success_rate_credit([{"below": 95, "percent": 5}], 0, 0) == (None, 0.0)


def test_availability_exactly_at_a_threshold_is_not_under_it():
    # 4.32 minutes down in a 30-day month is exactly 99.99 %
    uptime, credit = availability_credit(AVAILABILITY, 4.32 * 60, 30 * 24 * 3600)
    assert (uptime, credit) == (99.99, 0.0)


@pytest.mark.parametrize(
    ("down", "credit"),
    [(0, 0), (259, 0), (260, 10), (25920, 10), (25921, 30), (30 * 86400, 30)],
)
def test_availability_tiers(down, credit):
    # 99.0 % of 30 days leaves 25,920 s of allowed downtime
    assert availability_credit(AVAILABILITY, down, 30 * 86400)[1] == credit


def test_downtime_is_the_union_of_overlapping_outages_within_the_period():
    day = datetime(2026, 3, 10, tzinfo=UTC)
    spans = [(day, day + timedelta(hours=2)), (day + timedelta(hours=1), day + timedelta(hours=3)), (day - timedelta(days=20), day - timedelta(days=19))]
    assert downtime_seconds(spans, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)) == 3 * H


def test_periods_are_in_the_customers_time_zone():
    # 23:30 UTC on 31 March is already April in Berlin
    late = datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    assert period_of(late, BERLIN, "month") == "2026-04"
    assert period_of(late, ZoneInfo("America/New_York"), "month") == "2026-03"
    assert period_of(late, BERLIN, "quarter") == "2026-Q2"
    assert period_of(late, BERLIN, "year") == "2026"
    assert period_bounds("2026-03", BERLIN) == (datetime(2026, 2, 28, 23, tzinfo=UTC), datetime(2026, 3, 31, 22, tzinfo=UTC))
    assert period_bounds("2026-Q4", BERLIN) == (datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 12, 31, 23, tzinfo=UTC))


# -- a month of tickets for one customer ---------------------------------------------------------


def gold(**credits) -> Policy:
    terms = {"currency": "EUR", "monthly_fee": 10_000, "cap_percent": 8, "per_breach": PER_BREACH,
             "success_rate": [{"below": 95, "percent": 5}], **credits}
    return Policy.from_config(
        {"name": "gold", "contract": "ACME MSA", "targets": {"resolution": {"p1": "4h"}}, "credits": terms},
        {"24x7": Calendar.builtin("24x7")},
    )


def resolved_ticket(number: int, created: datetime, hours: float, **fields) -> tuple[Ticket, list[TicketEvent]]:
    t = Ticket(source="zd", system="zendesk", external_id=str(number), key=f"#{number}", title="t", status="resolved",
               status_raw="solved", created_at=created, updated_at=created, priority="p1", customer="ACME", **fields)
    events = [TicketEvent(t.id, "1", "status", created, "new", "open"),
              TicketEvent(t.id, "2", "status", created + timedelta(hours=hours), "open", "resolved")]
    return t, events


def run(policy: Policy, tickets: list[tuple[Ticket, list[TicketEvent]]], now: datetime):
    evaluated = [Evaluated(t, policy, evaluate(t, events, policy, now), events) for t, events in tickets]
    return compute_credits(evaluated, now)


def test_a_month_of_breaches_is_credited_and_capped():
    start = datetime(2026, 3, 2, tzinfo=UTC)
    tickets = [resolved_ticket(n, start + timedelta(days=n), 3) for n in range(17)]  # 17 met
    tickets.append(resolved_ticket(17, start + timedelta(days=17), 5))  # 1h over: 1 %
    tickets.append(resolved_ticket(18, start + timedelta(days=18), 7))  # 3h over = 75 %: 2.5 %
    tickets.append(resolved_ticket(19, start + timedelta(days=19), 9))  # 5h over: 5 %
    [march] = run(gold(), tickets, datetime(2026, 4, 2, tzinfo=UTC))
    kinds = sorted((line.kind, line.percent) for line in march.lines)
    # 17 of 20 met = 85 %: under 95 -> 5 %; total 13.5 %, capped at 8 %
    assert kinds == [("breach", 1.0), ("breach", 2.5), ("breach", 5.0), ("success_rate", 5.0)]
    assert (march.period, march.percent_before_cap, march.percent, march.amount) == ("2026-03", 13.5, 8.0, 800.0)
    assert march.success_rates == {"resolution": 85.0}


def test_quarterly_period_credits_three_months_of_fee():
    created = datetime(2026, 2, 2, tzinfo=UTC)
    [quarter] = run(gold(period="quarter", cap_percent=100), [resolved_ticket(1, created, 5)], datetime(2026, 4, 2, tzinfo=UTC))
    # one breach (1 %), and 0 of 1 met (5 %): 6 % of 30,000
    assert (quarter.period, quarter.fee, quarter.percent, quarter.amount) == ("2026-Q1", 30_000, 6.0, 1800.0)


def test_outage_tickets_make_availability_credits():
    policy = gold(availability={**AVAILABILITY, "match": {"type": ["outage"]}}, success_rate=[], per_breach=[])
    day = datetime(2026, 3, 10, tzinfo=UTC)
    outage_a = resolved_ticket(1, day, 2, type="outage")
    outage_b = resolved_ticket(2, day + timedelta(hours=1), 2, type="outage")  # overlaps: 3h down in all
    question = resolved_ticket(3, day, 100, type="question")  # not an outage
    [march] = run(policy, [outage_a, outage_b, question], datetime(2026, 4, 2, tzinfo=UTC))
    # 3h down of 31 x 24 = 744h (the 24x7 calendar is in UTC) = 99.5968 %: under 99.99
    assert march.uptime_percent == pytest.approx(100 * (1 - 3 / 744))
    assert [(line.kind, line.percent) for line in march.lines] == [("availability", 10.0)]
