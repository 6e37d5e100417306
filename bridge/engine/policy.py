"""SLA policies: which tickets a contract covers, on which calendar, with which targets.

Policies are ordered; the first whose ``match`` fits a ticket applies, as in Zendesk. A policy is
built once per run from the config, with its calendar, and carries a version hash of itself and
that calendar, stored with every clock so a later edit never silently rewrites history.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from fractions import Fraction
from typing import Any, Protocol

from bridge.engine.calendar import Calendar
from bridge.engine.hours import BUILTIN_CALENDARS
from bridge.engine.terms import CalendarConfig, CreditsConfig, MatchConfig, PolicyConfig
from bridge.model import Ticket

__all__ = ["METRIC_PAUSES", "Agreements", "Policy", "build_calendars", "build_policies", "fits", "match_sets", "select_policy"]


class Agreements(Protocol):
    """Where the terms are: the config's ``calendars`` and ``policies`` (``bridge.config.Config``)."""

    @property
    def calendars(self) -> Mapping[str, CalendarConfig]: ...

    @property
    def policies(self) -> Sequence[PolicyConfig]: ...

_MATCH_KEYS = ("source", "customer", "priority", "type", "service", "group")


# The evaluator's rules, dated: part of every policy's version, so that when the rules change
# (a finished clock keeping its priority's goal, 2026-12-02) every stored verdict is judged again.
RULES = "rules:2026-12-02b"

# A metric's own pause statuses where the policy gives it none (Zendesk's definitions): a periodic
# update is owed whatever the status; the requester waits unless asked to answer; the agent
# works only while the ticket is new or open. Every other metric pauses on ``pause_when``.
METRIC_PAUSES: dict[str, frozenset[str]] = {
    "periodic_update": frozenset(),
    "pausable_update": frozenset({"waiting_customer"}),  # Pending only: on-hold keeps counting
    "requester_wait": frozenset({"waiting_customer"}),
    "agent_work": frozenset({"waiting_customer", "on_hold", "waiting_third_party"}),
}


@dataclass(frozen=True, eq=False)
class Policy:
    name: str
    contract: str
    calendar: Calendar
    match: Mapping[str, frozenset[str]]
    pause_when: frozenset[str]
    pause_by_metric: Mapping[str, frozenset[str]]
    warn_at: Fraction
    breach_on_equal: bool
    on_reopen: str
    first_response_on_resolve: str
    targets: Mapping[str, Mapping[str, int]]
    credits: CreditsConfig | None
    version: str
    extends: str | None = None
    effective_from: datetime | None = None  # the instants the terms are in force, [from, to)
    effective_to: datetime | None = None
    kind: str = "sla"
    team: str | None = None  # an ola's assignment group
    third_party: str | None = None  # a uc's vendor
    reset_on: frozenset[str] = frozenset()
    reset_action: str = "complete"
    round_percent: bool = False
    preset: str | None = None

    agreement: str = "sla"  # which agreement on a ticket these terms are a version of: sla, ola:TEAM, uc:VENDOR
    dated: bool = False  # in force only between dates

    def __post_init__(self) -> None:
        scope = {"ola": self.team, "uc": self.third_party}.get(self.kind)
        object.__setattr__(self, "agreement", f"{self.kind}:{scope}" if scope is not None else "sla")
        object.__setattr__(self, "dated", self.effective_from is not None or self.effective_to is not None)

    def in_force(self, moment: datetime) -> bool:
        """Whether these terms are in force at ``moment``."""
        return (self.effective_from is None or moment >= self.effective_from) and (
            self.effective_to is None or moment < self.effective_to)

    @classmethod
    def from_config(cls, config: PolicyConfig | Mapping[str, Any], calendars: Mapping[str, Calendar]) -> Policy:
        if isinstance(config, Mapping):
            config = PolicyConfig(**config)
        calendar = calendars.get(config.calendar)
        if calendar is None:
            if config.calendar not in BUILTIN_CALENDARS:
                raise ValueError(f"policy {config.name!r}: unknown calendar {config.calendar!r}")
            calendar = Calendar.builtin(config.calendar)
        canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True) + calendar.fingerprint + RULES
        return cls(
            name=config.name,
            contract=config.contract,
            calendar=calendar,
            match=match_sets(config.match),
            pause_when=frozenset(config.pause_when),
            pause_by_metric={metric: frozenset(statuses) for metric, statuses in config.pause_by_metric.items()},
            warn_at=Fraction(str(config.warn_at)),  # exact: 0.75 means three quarters, not 0.74999...
            breach_on_equal=config.breach_on_equal,
            on_reopen=config.on_reopen,
            first_response_on_resolve=config.first_response_on_resolve,
            targets={metric: dict(per) for metric, per in config.targets.items()},
            credits=config.credits,
            version=hashlib.sha256(canonical.encode()).hexdigest()[:12],
            extends=config.extends,
            effective_from=_midnight(config.effective_from, calendar),
            effective_to=_midnight(config.effective_to, calendar),
            kind=config.kind,
            team=config.team,
            third_party=config.third_party,
            reset_on=frozenset(config.reset_on),
            reset_action=config.reset_action,
            round_percent=config.round_percent,
            preset=config.preset,
        )

    def pauses_for(self, metric: str) -> frozenset[str]:
        """The statuses that pause ``metric``: its own list where the policy gives one, else the
        metric's own default (:data:`METRIC_PAUSES`), else ``pause_when``."""
        if metric in self.pause_by_metric:
            return self.pause_by_metric[metric]
        return METRIC_PAUSES.get(metric, self.pause_when)

    def matches(self, ticket: Ticket) -> bool:
        """Whether ``ticket`` fits ``match`` and was created while these terms were in force."""
        return self.in_force(ticket.created_at) and fits(self.match, ticket)

    def target(self, metric: str, priority: str | None) -> int | None:
        """Target seconds for ``metric`` at ``priority``; None where the policy sets none."""
        if priority is None:
            return None
        return self.targets.get(metric, {}).get(priority)


def _midnight(day: date | None, calendar: Calendar) -> datetime | None:
    """The start of ``day`` in the calendar's time zone (a contract's 1 January is local)."""
    return None if day is None else datetime.combine(day, time(0), tzinfo=calendar.zone)


def match_sets(match: MatchConfig) -> dict[str, frozenset[str]]:
    """A ``match`` table as key -> allowed values, leaving out the keys it does not set."""
    return {key: frozenset(values) for key in _MATCH_KEYS if (values := getattr(match, key)) is not None}


def fits(match: Mapping[str, frozenset[str]], ticket: Ticket) -> bool:
    """Every key of ``match`` allows the ticket's value (a ticket without the value never fits)."""
    return all(getattr(ticket, key) in allowed for key, allowed in match.items())


def build_calendars(config: Agreements) -> dict[str, Calendar]:
    calendars = {name: Calendar.from_config(cal, name=name) for name, cal in config.calendars.items()}
    for name, spec in BUILTIN_CALENDARS.items():
        calendars.setdefault(name, Calendar.from_config(spec, name=name))
    return calendars


def build_policies(config: Agreements) -> list[Policy]:
    """The configured policies, in order, each with its calendar (shared between policies)."""
    calendars = build_calendars(config)
    return [Policy.from_config(policy, calendars) for policy in config.policies]


def select_policy(policies: Sequence[Policy], ticket: Ticket) -> Policy | None:
    """The first sla policy whose ``match`` fits ``ticket`` and that was in force when it was
    created; None when none does."""
    for policy in policies:
        if policy.kind == "sla" and policy.matches(ticket):
            return policy
    return None
