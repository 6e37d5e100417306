"""The terms of an agreement as a config writes them: calendars, policies, targets and credits.

These are the schema of what the engine consumes, validated strictly (unknown keys are errors,
durations carry units, a time zone must exist, a number is a number and finite, not text that
looks like one, and every value is within the bounds the engine can compute with). They live with the engine rather than with the
config file so the engine builds calendars and policies from them without importing the config
loader; :mod:`bridge.config` composes them into the whole file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge.engine import hours
from bridge.engine.durations import format_duration, parse_duration
from bridge.model import CANONICAL_STATUSES, PRIORITIES

__all__ = [
    "KINDS",
    "KIND_METRICS",
    "LONGEST_TARGET",
    "MAX_MONTHLY_FEE",
    "METRICS",
    "NAME_PATTERN",
    "PRESETS",
    "RESET_FIELDS",
    "TARGET_YEARS",
    "AvailabilityConfig",
    "BreachTier",
    "CalendarConfig",
    "CreditsConfig",
    "Duration",
    "MatchConfig",
    "Name",
    "Number",
    "PolicyConfig",
    "Section",
    "SuccessTier",
    "brief_errors",
    "duration_within",
]

METRICS = ("first_response", "next_response", "resolution", "periodic_update", "pausable_update", "requester_wait",
           "agent_work")
KINDS = ("sla", "ola", "uc")
# What each kind of agreement may measure: an OLA the team's answer and its holding time while
# the ticket is assigned to it, an underpinning contract the third party's turnaround.
KIND_METRICS = {"sla": METRICS, "ola": ("first_response", "resolution"), "uc": ("resolution",)}
RESET_FIELDS = ("group", "priority")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"

# A target must be reached within this many years of its calendar's working time. The calendar
# materialises its intervals year by year and gives up past 50 years without reaching a due
# instant (bridge.engine.calendar); ten leaves a wide margin for holidays and for tickets that
# began long ago. On the round-the-clock calendar that is LONGEST_TARGET; the config loader holds
# each policy's targets to its own calendar's hours.
TARGET_YEARS = 10
LONGEST_TARGET = TARGET_YEARS * 8760 * 3600  # 87600h
MAX_MONTHLY_FEE = 10**12  # far above any fee, and far below where float sums lose whole units


def _check(parser: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Run ``parser`` for its validation only and keep the value as written."""

    def validate(value: Any) -> Any:
        parser(value)
        return value

    return validate


def _date_text(parser: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Accept a TOML/Python date as well as its ``YYYY-MM-DD`` text; keep the text."""

    def validate(value: Any) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            value = value.isoformat()
        parser(value)
        return value

    return validate


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _bounded_seconds(value: Any, at_most: int, at_least: int = 1, why: str = "") -> int:
    seconds = parse_duration(value, allow_zero=at_least == 0)
    if seconds > at_most:
        raise ValueError(f"{value!r} is longer than {format_duration(at_most)}, the longest allowed here{why}")
    if seconds < at_least:
        raise ValueError(f"{value!r} is shorter than {format_duration(at_least)}, the shortest allowed here{why}")
    return seconds


def duration_within(at_most: int, *, at_least: int = 1, why: str = "") -> BeforeValidator:
    """A duration string bounded to ``at_least..at_most`` seconds; ``why`` follows a bound's message."""
    return BeforeValidator(lambda value: _bounded_seconds(value, at_most, at_least, why))


_TARGET_WHY = f" (a target must be reached within {TARGET_YEARS} years of business time)"
Duration = Annotated[int, duration_within(LONGEST_TARGET, why=_TARGET_WHY)]
# A number as TOML writes one: not text that looks like one ("0.5"), not true/false, and finite
# (inf and nan would reach a credit note as "= inf GBP").
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Interval = Annotated[str, BeforeValidator(_check(hours.parse_interval))]
Holiday = Annotated[str, BeforeValidator(_date_text(hours.parse_holiday))]
OverrideDate = Annotated[str, BeforeValidator(_date_text(hours.parse_override_date))]
TimeZoneName = Annotated[str, BeforeValidator(_check(hours.parse_timezone))]
CanonicalStatus = Literal[CANONICAL_STATUSES]  # type: ignore[valid-type]
Priority = Literal[PRIORITIES]  # type: ignore[valid-type]
Metric = Literal[METRICS]  # type: ignore[valid-type]
Kind = Literal[KINDS]  # type: ignore[valid-type]
ResetField = Literal[RESET_FIELDS]  # type: ignore[valid-type]
Weekday = Literal[hours.WEEKDAYS]  # type: ignore[valid-type]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
AnyOf = Annotated[list[str], BeforeValidator(_as_list)]


class Section(BaseModel):
    """A table of the config: unknown keys are errors, values are frozen once read."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CalendarConfig(Section):
    """``[calendars.NAME]``: working hours in a time zone, holidays and overrides."""

    timezone: TimeZoneName
    hours: dict[Weekday, list[Interval]] = {}
    holidays: list[Holiday] = []
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    overrides: dict[OverrideDate, list[Interval]] = {}
    due_at: Literal["close", "next_open"] = "close"
    granularity: Literal["second", "minute"] = "second"

    @field_validator("hours")
    @classmethod
    def _hours_do_not_overlap(cls, week: dict[str, list[str]]) -> dict[str, list[str]]:
        for index, day in enumerate(hours.WEEKDAYS):
            before = hours.WEEKDAYS[index - 1]  # Monday's is Sunday's: the week repeats
            hours.check_no_overlap(day, week.get(day, []), spill=week.get(before, []), spill_from=before)
        return week

    @field_validator("overrides")
    @classmethod
    def _overrides_do_not_overlap(cls, overrides: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        """An override's intervals, and where an overnight shift runs into or out of it."""
        week: dict[str, list[str]] = info.data.get("hours") or {}
        closed = {str(text) for text in info.data.get("holidays") or []}
        by_date = {hours.parse_override_date(text): intervals for text, intervals in overrides.items()}

        def day_hours(day: date) -> list[str]:
            if day in by_date:
                return by_date[day]
            if day.isoformat() in closed or day.isoformat()[5:] in closed:
                return []
            return week.get(hours.WEEKDAYS[day.weekday()], [])

        one = timedelta(days=1)
        for day, intervals in sorted(by_date.items()):
            if day > date.min:
                before = day - one
                hours.check_no_overlap(day.isoformat(), intervals, spill=day_hours(before), spill_from=before.isoformat())
            else:
                hours.check_no_overlap(day.isoformat(), intervals)
            after = day + one if day < date.max else None
            if after is not None and after not in by_date:
                hours.check_no_overlap(after.isoformat(), day_hours(after), spill=intervals, spill_from=day.isoformat())
        return overrides

    @model_validator(mode="after")
    def _known_holiday_country(self) -> CalendarConfig:
        if self.holiday_subdivision is not None and self.holiday_country is None:
            raise ValueError("holiday_subdivision needs holiday_country as well")
        if self.holiday_country is not None:
            year = date.today().year
            hours.public_holidays(self.holiday_country, self.holiday_subdivision, range(year, year + 1))
        return self


class MatchConfig(Section):
    """Which tickets a policy applies to; each key is any-of, all keys must fit."""

    source: AnyOf | None = None
    customer: AnyOf | None = None
    priority: Annotated[list[Priority], BeforeValidator(_as_list)] | None = None
    type: AnyOf | None = None
    service: AnyOf | None = None
    group: AnyOf | None = None


_SHARE = re.compile(r"[0-9]{1,6}(?:\.[0-9]{1,6})?")


def _over(value: Any) -> Any:
    """A per-breach tier threshold: a share of the target (``"50%"``) or a duration (``"4h"``)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        if not _SHARE.fullmatch(value.strip()[:-1].strip()):
            raise ValueError(f"{value!r} is not a percentage of the target: write e.g. \"50%\" or \"12.5%\"")
        return value
    _bounded_seconds(value, LONGEST_TARGET, at_least=0)
    return value


Percent = Annotated[Number, Field(ge=0, le=100)]


class BreachTier(Section):
    over: Annotated[str, BeforeValidator(_over)]
    percent: Percent


class SuccessTier(Section):
    below: Percent
    percent: Percent


class AvailabilityConfig(Section):
    match: MatchConfig = MatchConfig(type=["outage"])
    commitment: Percent
    tiers: list[SuccessTier] = []


class CreditsConfig(Section):
    """``[policies.credits]``: what a missed target costs the provider."""

    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    monthly_fee: Annotated[Number, Field(ge=0, le=MAX_MONTHLY_FEE)]
    cap_percent: Percent = 100
    period: Literal["month", "quarter", "year"] = "month"
    per_breach: list[BreachTier] = []
    success_rate: list[SuccessTier] = []
    availability: AvailabilityConfig | None = None


class PolicyConfig(Section):
    """One ``[[policies]]`` entry; the first policy whose ``match`` fits a ticket applies."""

    name: Name
    # sla: the customer's agreement (one per ticket, carries credits); ola: an internal team's,
    # running while the ticket is assigned to ``team``; uc: an underpinning contract with
    # ``third_party``, running while the ticket waits on a third party.
    kind: Kind = "sla"
    team: Annotated[str, Field(min_length=1)] | None = None
    third_party: Annotated[str, Field(min_length=1)] | None = None
    # The vendor whose defaults this policy starts from (resolved with extends when the file is read).
    preset: Literal["zendesk", "jsm", "servicenow", "zammad"] | None = None
    # The policy this one was written as a difference to: its keys are taken, this one's win
    # (tables merged key by key, lists replaced). Resolved when the file is read.
    extends: str | None = None
    contract: str = ""
    calendar: str = "24x7"
    # The dates the terms are in force (effective_to exclusive), in the calendar's time zone: a
    # ticket is judged by the terms in force when it was created.
    effective_from: date | None = None
    effective_to: date | None = None
    match: MatchConfig = MatchConfig()
    pause_when: list[CanonicalStatus] = ["waiting_customer"]
    # Per metric, the statuses that pause it instead of pause_when (Zendesk pauses agent work
    # time on pending and on-hold but never a reply time: first_response = []).
    pause_by_metric: dict[Metric, list[CanonicalStatus]] = {}
    warn_at: Annotated[Number, Field(gt=0, lt=1)] = 0.75
    breach_on_equal: StrictBool = False
    on_reopen: Literal["continue", "new_cycle"] = "continue"
    # Resolving without a public reply: "stop" ends first response there (JSM's and ServiceNow's
    # usual stop condition); "pause" holds it while resolved and lets a reopen run it on to the
    # first reply (Zendesk, Zammad).
    first_response_on_resolve: Literal["stop", "pause"] = "stop"
    # ServiceNow's reset conditions: when one of these changes, the running first response and
    # resolution complete there (judged as they stand) and new cycles start at the change.
    reset_on: list[ResetField] = []
    # What a reset does to the running cycle: "complete" judges it as it stands at the change (a
    # breach before the reset stays a breach: the default, fair to the customer); "cancel" voids it,
    # as ServiceNow's reset action does by default.
    reset_action: Literal["complete", "cancel"] = "complete"
    # ServiceNow judges the elapsed share of the target rounded to two decimals: 99.995 % shows as
    # 100.00 % and breaches (with breach_on_equal). Off: the comparison is exact.
    round_percent: StrictBool = False
    targets: dict[Metric, dict[Priority, Duration]] = Field(min_length=1)
    credits: CreditsConfig | None = None

    @model_validator(mode="after")
    def _kind_has_its_scope(self) -> PolicyConfig:
        scope = {"ola": "team", "uc": "third_party"}
        for kind, key in scope.items():
            if self.kind == kind and getattr(self, key) is None:
                raise ValueError(f"a {kind} policy needs {key} (the {'assignment group' if kind == 'ola' else 'third party'} it binds)")
            if self.kind != kind and getattr(self, key) is not None:
                raise ValueError(f"{key} is for a {kind} policy (kind = \"{kind}\"); this one is kind = \"{self.kind}\"")
        allowed = KIND_METRICS[self.kind]
        for metric in self.targets:
            if metric not in allowed:
                raise ValueError(f"targets.{metric}: a {self.kind} policy measures only {', '.join(allowed)}")
        if self.kind != "sla" and self.credits is not None:
            raise ValueError(f"credits: only a customer's sla carries service credits, not a {self.kind}")
        if self.kind != "sla" and self.reset_on:
            raise ValueError(f"reset_on: an {self.kind}'s cycles already end when its scope ends; reset_on is for an sla")
        return self

    @model_validator(mode="after")
    def _dates_in_order(self) -> PolicyConfig:
        if self.effective_from and self.effective_to and self.effective_to <= self.effective_from:
            raise ValueError(f"effective_to ({self.effective_to}) must come after effective_from ({self.effective_from})")
        return self

    @field_validator("targets")
    @classmethod
    def _targets_not_empty(cls, targets: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for metric, per_priority in targets.items():
            if not per_priority:
                raise ValueError(f"{metric} has no target: give at least one priority, e.g. p1 = \"4h\"")
        return targets


# What each vendor's engine does where the settings differ, as a policy's starting point
# (``preset = "jsm"``); the policy's own keys, and those it extends, win. The sources are in
# docs/sla-engine.md ("The rules, vendor by vendor"). A calendar's granularity is the calendar's
# (Zammad counts whole minutes: give its calendar granularity = "minute").
PRESETS: dict[str, dict[str, Any]] = {
    # Reply times and total resolution never pause; requester wait pauses on pending, agent work
    # on pending and on-hold (their own defaults); solved without a reply holds first reply.
    "zendesk": {
        "on_reopen": "continue",
        "first_response_on_resolve": "pause",
        "pause_when": ["waiting_customer"],
        "pause_by_metric": {"first_response": [], "next_response": [], "resolution": []},
        "breach_on_equal": False,
    },
    # Each start after a stop is a new cycle; "Waiting for customer" pauses; resolving stops
    # time to first response.
    "jsm": {
        "on_reopen": "new_cycle",
        "first_response_on_resolve": "stop",
        "pause_when": ["waiting_customer"],
        "breach_on_equal": False,
    },
    # Breached at 100 % of the duration, the percentage rounded; On Hold (any reason) pauses; a
    # reopened incident attaches a new SLA.
    "servicenow": {
        "on_reopen": "new_cycle",
        "first_response_on_resolve": "stop",
        "pause_when": ["waiting_customer", "on_hold", "waiting_third_party"],
        "breach_on_equal": True,
        "round_percent": True,
        "reset_action": "cancel",
    },
    # Pending states and closed ignore escalation; first response runs on after a reopen.
    "zammad": {
        "on_reopen": "continue",
        "first_response_on_resolve": "pause",
        "pause_when": ["waiting_customer", "on_hold"],
        "breach_on_equal": False,
    },
}


def brief_errors(error: ValidationError) -> str:
    """Pydantic's errors as ``key: message; key: message`` (the config loader says more)."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = str(item["ctx"]["error"]) if item["type"] == "value_error" and "ctx" in item else item["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
