"""Service credits: what missed targets cost, per customer and period, capped.

Three kinds, each a percentage of the period's fee (``monthly_fee`` x months in the period):

- ``per_breach``: for each breached clock, by the size of the overrun in business time. A tier's
  ``over`` is a share of the target (``"50%"``) or a duration (``"4h"``); a tier is reached when
  the overrun is at least that; the highest percentage among reached tiers applies.
- ``success_rate``: per metric, the share of decided clocks that were met in the period. The
  lowest ``below`` threshold the share is under applies (equal is not under).
- ``availability``: downtime is the union of the open time of the customer's outage tickets
  (those matching ``availability.match``) within the period; the uptime is compared the same way.

Every comparison is exact (fractions of decimal strings, never rounded floats): 4.32 minutes down
in a 30-day month is exactly 99.99 percent, which is not under a 99.99 threshold. The total per
customer, policy and period is capped at ``cap_percent``. Periods are calendar months, quarters
or years in the time zone of the policy's calendar. A clock counts in the period it was decided:
a breach when it breached, a met clock when it stopped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

from bridge.engine.calendar import merge_spans, to_epoch
from bridge.engine.durations import parse_duration
from bridge.engine.evaluator import TERMINAL_STATUSES, Clock, status_segments
from bridge.engine.policy import Policy, fits, match_sets
from bridge.engine.terms import AvailabilityConfig, BreachTier, SuccessTier
from bridge.model import Ticket, TicketEvent

__all__ = [
    "CreditLine",
    "Evaluated",
    "PeriodCredit",
    "availability_credit",
    "breach_credit_percent",
    "compute_credits",
    "downtime_seconds",
    "period_bounds",
    "period_of",
    "success_rate_credit",
]

_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def _exact(value: float | int | str) -> Fraction:
    """The decimal a config author wrote (99.99 is 9999/100, not the nearest binary float)."""
    return Fraction(str(value))


def _seconds(value: float | int) -> Fraction:
    """A duration in seconds at the resolution of time itself (a microsecond).

    ``4.32 * 60`` is ``259.20000000000005`` in binary floating point; taken literally it would put
    exactly 99.99 % uptime a hair under 99.99 %. Finer than a microsecond is float noise.
    """
    if isinstance(value, int):
        return Fraction(value)
    return Fraction(str(round(float(value), 6)))


def _tier_reached(over: str, overrun: int, target: int) -> bool:
    text = over.strip()
    if text.endswith("%"):
        return overrun * 100 >= _exact(text[:-1]) * target
    return overrun >= parse_duration(text, allow_zero=True)


def breach_credit_percent(tiers: Sequence[BreachTier | Mapping[str, Any]], clock: Clock) -> float:
    """Credit percent one breached clock earns; 0 for a clock that was not breached."""
    if not clock.breached:
        return 0.0
    reached = [
        float(tier.percent)
        for tier in (BreachTier(**t) if isinstance(t, Mapping) else t for t in tiers)
        if _tier_reached(tier.over, clock.overrun_seconds, clock.target_seconds)
    ]
    return max(reached, default=0.0)


def _under_tiers(value: Fraction, tiers: Iterable[SuccessTier | Mapping[str, Any]]) -> float:
    """The percent of the lowest threshold ``value`` is strictly under; 0 if under none."""
    parsed = [SuccessTier(**t) if isinstance(t, Mapping) else t for t in tiers]
    under = [tier for tier in parsed if value < _exact(tier.below)]
    if not under:
        return 0.0
    return float(min(under, key=lambda tier: _exact(tier.below)).percent)


def success_rate_credit(
    tiers: Sequence[SuccessTier | Mapping[str, Any]], met: int, decided: int
) -> tuple[float | None, float]:
    """(share met in percent, credit percent); (None, 0) when no clock was decided."""
    if decided == 0:
        return None, 0.0
    share = Fraction(met * 100, decided)
    return float(share), _under_tiers(share, tiers)


def availability_credit(
    terms: AvailabilityConfig | Mapping[str, Any], downtime_seconds: float, period_seconds: float
) -> tuple[float, float]:
    """(uptime percent, credit percent) for ``downtime_seconds`` down in ``period_seconds``."""
    if isinstance(terms, Mapping):
        terms = AvailabilityConfig(**terms)
    period = _seconds(period_seconds)
    if period <= 0:
        raise ValueError(f"period_seconds must be positive, got {period_seconds}")
    down = min(max(_seconds(downtime_seconds), Fraction(0)), period)
    uptime = (period - down) * 100 / period
    return float(uptime), _under_tiers(uptime, terms.tiers)


def downtime_seconds(spans: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime) -> int:
    """Seconds of the union of ``spans`` inside ``[start, end)``."""
    low, high = to_epoch(start), to_epoch(end)
    clipped = ((max(to_epoch(a), low), min(to_epoch(b), high)) for a, b in spans)
    return sum(b - a for a, b in merge_spans(clipped))


# -- periods ----------------------------------------------------------------------------------


def period_of(moment: datetime, zone: ZoneInfo, kind: str) -> str:
    """The period label of ``moment`` in ``zone``: ``2026-03``, ``2026-Q1`` or ``2026``."""
    local = moment.astimezone(zone)
    if kind == "month":
        return f"{local.year}-{local.month:02d}"
    if kind == "quarter":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    if kind == "year":
        return str(local.year)
    raise ValueError(f"unknown period {kind!r}: month, quarter or year")


def period_bounds(label: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC instants a period label starts and ends at, midnight to midnight in ``zone``."""
    if "-Q" in label:
        year, quarter = int(label[:4]), int(label[-1])
        first, months = (year, 3 * (quarter - 1) + 1), 3
    elif "-" in label:
        first, months = (int(label[:4]), int(label[5:7])), 1
    else:
        first, months = (int(label), 1), 12
    year, month = first
    end_year, end_month = year + (month - 1 + months) // 12, (month - 1 + months) % 12 + 1
    start = datetime(year, month, 1, tzinfo=zone).astimezone(timezone.utc)
    end = datetime(end_year, end_month, 1, tzinfo=zone).astimezone(timezone.utc)
    return start, end


# -- putting it together ----------------------------------------------------------------------


@dataclass(slots=True)
class Evaluated:
    """One ticket with the policy that applied and its clocks: the input of the credit run."""

    ticket: Ticket
    policy: Policy
    clocks: Sequence[Clock]
    events: Sequence[TicketEvent] = ()


@dataclass(slots=True)
class CreditLine:
    customer: str
    period: str
    kind: str  # breach, success_rate, availability
    policy: str
    percent: float
    reason: str
    ticket_id: str | None = None
    metric: str | None = None
    cycle: int | None = None


@dataclass(slots=True)
class PeriodCredit:
    """What one customer is owed under one policy for one period, after the cap."""

    customer: str
    policy: str
    contract: str
    period: str
    currency: str
    fee: float
    lines: list[CreditLine] = field(default_factory=list)
    percent_before_cap: float = 0.0
    percent: float = 0.0
    amount: float = 0.0
    success_rates: dict[str, float] = field(default_factory=dict)
    uptime_percent: float | None = None

    def add(self, kind: str, percent: float, reason: str, **ref: Any) -> None:
        """A line of this customer's credit for this period (``ref``: ticket_id, metric, cycle)."""
        self.lines.append(CreditLine(self.customer, self.period, kind, self.policy, percent, reason, **ref))


def compute_credits(evaluated: Iterable[Evaluated], now: datetime) -> list[PeriodCredit]:
    """Credits per (customer, policy, period), sorted by customer, period and policy."""
    groups: dict[tuple[str, str, str], PeriodCredit] = {}
    decided: dict[tuple[str, str, str], dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    outages: dict[tuple[str, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    policies: dict[str, Policy] = {}

    def group(customer: str, policy: Policy, period: str) -> PeriodCredit:
        key = (customer, policy.name, period)
        if key not in groups:
            terms = policy.credits
            assert terms is not None
            groups[key] = PeriodCredit(
                customer=customer,
                policy=policy.name,
                contract=policy.contract,
                period=period,
                currency=terms.currency,
                fee=terms.monthly_fee * _MONTHS[terms.period],
            )
        return groups[key]

    for item in evaluated:
        terms = item.policy.credits
        if terms is None:
            continue
        customer = item.ticket.customer or "(no customer)"
        zone = item.policy.calendar.zone
        policies[item.policy.name] = item.policy
        for clock in item.clocks:
            if clock.breached and clock.breached_at is not None:
                period = period_of(clock.breached_at, zone, terms.period)
                decided[(customer, item.policy.name, period)][clock.metric].append(False)
                percent = breach_credit_percent(terms.per_breach, clock)
                if percent:
                    group(customer, item.policy, period).add(
                        "breach", percent, f"{clock.metric} missed by {clock.overrun_seconds}s of business time",
                        ticket_id=clock.ticket_id, metric=clock.metric, cycle=clock.cycle,
                    )
            elif clock.state == "met" and clock.stopped_at is not None:
                period = period_of(clock.stopped_at, zone, terms.period)
                decided[(customer, item.policy.name, period)][clock.metric].append(True)
        availability = terms.availability
        if availability is not None and _fits(availability, item.ticket):
            segments = status_segments(item.ticket, item.events)
            horizon = max(now, item.ticket.created_at)
            for index, (start, status) in enumerate(segments):
                if status in TERMINAL_STATUSES:
                    continue
                end = segments[index + 1][0] if index + 1 < len(segments) else horizon
                outages[(customer, item.policy.name)].append((start, end))

    for (customer, policy_name, period), per_metric in decided.items():
        policy = policies[policy_name]
        assert policy.credits is not None
        for metric, outcomes in sorted(per_metric.items()):
            share, percent = success_rate_credit(policy.credits.success_rate, sum(outcomes), len(outcomes))
            if share is None:
                continue
            credit = group(customer, policy, period)
            credit.success_rates[metric] = share
            if percent:
                credit.add("success_rate", percent, f"{metric}: {sum(outcomes)} of {len(outcomes)} met ({share:.2f}%)", metric=metric)

    for (customer, policy_name), spans in outages.items():
        policy = policies[policy_name]
        assert policy.credits is not None and policy.credits.availability is not None
        zone = policy.calendar.zone
        labels = {label for a, b in spans for label in _periods_between(a, b, zone, policy.credits.period)}
        for label in sorted(labels):
            start, end = period_bounds(label, zone)
            down = downtime_seconds(spans, start, end)
            if down == 0:
                continue
            uptime, percent = availability_credit(
                policy.credits.availability, down, (end - start).total_seconds()
            )
            credit = group(customer, policy, label)
            credit.uptime_percent = uptime
            if percent:
                credit.add("availability", percent,
                           f"uptime {uptime:.4f}% ({down}s down) against {policy.credits.availability.commitment}%")

    for credit in groups.values():
        terms = policies[credit.policy].credits
        assert terms is not None
        total = sum((_exact(line.percent) for line in credit.lines), Fraction(0))
        capped = min(total, _exact(terms.cap_percent))
        credit.percent_before_cap = float(total)
        credit.percent = float(capped)
        credit.amount = round(float(_exact(credit.fee) * capped / 100), 2)
    return sorted(groups.values(), key=lambda c: (c.customer, c.period, c.policy))


def _fits(availability: AvailabilityConfig, ticket: Ticket) -> bool:
    return fits(match_sets(availability.match), ticket)


def _periods_between(start: datetime, end: datetime, zone: ZoneInfo, kind: str) -> list[str]:
    """Labels of every period that ``[start, end]`` touches."""
    labels = [period_of(start, zone, kind)]
    while True:
        _, period_end = period_bounds(labels[-1], zone)
        if period_end > end:
            return labels
        labels.append(period_of(period_end, zone, kind))
