"""The terms of an agreement as a config writes them: calendars, policies, targets and credits.

These are the schema of what the engine consumes, validated strictly (unknown keys are errors,
durations carry units, a time zone must exist). They live with the engine rather than with the
config file so the engine builds calendars and policies from them without importing the config
loader; :mod:`bridge.config` composes them into the whole file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from bridge.engine import hours
from bridge.engine.durations import parse_duration
from bridge.model import CANONICAL_STATUSES, PRIORITIES

__all__ = [
    "METRICS",
    "NAME_PATTERN",
    "AvailabilityConfig",
    "BreachTier",
    "CalendarConfig",
    "CreditsConfig",
    "Duration",
    "MatchConfig",
    "Name",
    "PolicyConfig",
    "Section",
    "SuccessTier",
    "brief_errors",
]

METRICS = ("first_response", "next_response", "resolution")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"


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


Duration = Annotated[int, BeforeValidator(parse_duration)]
Interval = Annotated[str, BeforeValidator(_check(hours.parse_interval))]
Holiday = Annotated[str, BeforeValidator(_date_text(hours.parse_holiday))]
OverrideDate = Annotated[str, BeforeValidator(_date_text(hours.parse_override_date))]
TimeZoneName = Annotated[str, BeforeValidator(_check(hours.parse_timezone))]
CanonicalStatus = Literal[CANONICAL_STATUSES]  # type: ignore[valid-type]
Priority = Literal[PRIORITIES]  # type: ignore[valid-type]
Metric = Literal[METRICS]  # type: ignore[valid-type]
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


def _over(value: Any) -> Any:
    """A per-breach tier threshold: a share of the target (``"50%"``) or a duration (``"4h"``)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        number = value.strip()[:-1]
        try:
            if float(number) < 0:
                raise ValueError
        except ValueError:
            raise ValueError(f"{value!r} is not a percentage of the target: write e.g. \"50%\"") from None
        return value
    parse_duration(value, allow_zero=True)
    return value


Percent = Annotated[float, Field(ge=0, le=100)]


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
    monthly_fee: float = Field(ge=0)
    cap_percent: Percent = 100
    period: Literal["month", "quarter", "year"] = "month"
    per_breach: list[BreachTier] = []
    success_rate: list[SuccessTier] = []
    availability: AvailabilityConfig | None = None


class PolicyConfig(Section):
    """One ``[[policies]]`` entry; the first policy whose ``match`` fits a ticket applies."""

    name: Name
    contract: str = ""
    calendar: str = "24x7"
    match: MatchConfig = MatchConfig()
    pause_when: list[CanonicalStatus] = ["waiting_customer"]
    warn_at: float = Field(0.75, gt=0, lt=1)
    breach_on_equal: bool = False
    on_reopen: Literal["continue", "new_cycle"] = "continue"
    targets: dict[Metric, dict[Priority, Duration]] = Field(min_length=1)
    credits: CreditsConfig | None = None

    @field_validator("targets")
    @classmethod
    def _targets_not_empty(cls, targets: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for metric, per_priority in targets.items():
            if not per_priority:
                raise ValueError(f"{metric} has no target: give at least one priority, e.g. p1 = \"4h\"")
        return targets


def brief_errors(error: ValidationError) -> str:
    """Pydantic's errors as ``key: message; key: message`` (the config loader says more)."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = str(item["ctx"]["error"]) if item["type"] == "value_error" and "ctx" in item else item["msg"]
        parts.append(f"{where}: {message}")
    return "; ".join(parts)
