"""Properties of business-time arithmetic that must hold for any calendar, instant and pause.

Each property runs under several machine time zones (TZ): results must never depend on it.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.engine.calendar import Calendar

UTC = timezone.utc
WEEK = ("mon", "tue", "wed", "thu", "fri")

CALENDARS = {
    "berlin-office": Calendar.from_config(
        {
            "timezone": "Europe/Berlin",
            "hours": {d: ["09:00-12:30", "13:15-17:00"] for d in WEEK},
            "holiday_country": "DE",
            "holidays": ["12-24", "2026-06-15"],
            "overrides": {"2026-12-31": ["09:00-12:00"], "2026-11-02": []},
        },
        name="berlin-office",
    ),
    "new-york-nights": Calendar.from_config(
        {
            "timezone": "America/New_York",
            "hours": {"mon": ["08:00-20:00"], "wed": ["22:00-06:00"], "sat": ["01:30-02:30", "23:00-24:00"]},
            "holiday_country": "US",
        },
        name="new-york-nights",
    ),
    "sydney-next-open": Calendar.from_config(
        {"timezone": "Australia/Sydney", "hours": {d: ["07:00-19:00"] for d in WEEK}, "due_at": "next_open"},
        name="sydney-next-open",
    ),
    "kolkata-minutes": Calendar.from_config(
        {"timezone": "Asia/Kolkata", "hours": {d: ["10:00-18:30"] for d in WEEK}, "granularity": "minute"},
        name="kolkata-minutes",
    ),
    "24x7": Calendar.builtin("24x7"),
}

RANGE_START = datetime(2025, 10, 1, tzinfo=UTC)
instants = st.integers(min_value=0, max_value=2 * 365 * 86400).map(lambda s: RANGE_START + timedelta(seconds=s))
durations = st.integers(min_value=0, max_value=300 * 3600)
calendars = st.sampled_from(sorted(CALENDARS))
pause_lists = st.lists(
    st.tuples(instants, st.integers(min_value=1, max_value=5 * 86400)).map(lambda p: (p[0], p[0] + timedelta(seconds=p[1]))),
    max_size=4,
)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(params=["UTC", "America/Los_Angeles", "Asia/Kathmandu"], autouse=True)
def machine_tz(request, monkeypatch):
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def truncated(calendar: Calendar, moment: datetime) -> datetime:
    """The start as the calendar counts it (minute granularity drops the seconds)."""
    return moment.replace(second=0, microsecond=0) if calendar.granularity == "minute" else moment


def in_domain(calendar: Calendar, instants: list[datetime], pauses: list[tuple[datetime, datetime]]):
    """Minute mode works in whole minutes (as Zammad): give it minute-aligned inputs."""
    if calendar.granularity != "minute":
        return instants, pauses
    return [truncated(calendar, x) for x in instants], [(truncated(calendar, a), truncated(calendar, b)) for a, b in pauses]


@FAST
@given(calendars, instants, durations, pause_lists)
def test_adding_then_measuring_gives_back_the_budget(name, start, seconds, pauses):
    calendar = CALENDARS[name]
    if calendar.granularity == "minute":
        seconds -= seconds % 60  # minute mode counts whole minutes from the start's minute, as Zammad
    due = calendar.add_business_seconds(start, seconds, pauses)
    assert due >= truncated(calendar, start)
    assert calendar.business_seconds(start, due, pauses) == seconds


@FAST
@given(calendars, instants, instants, pause_lists)
def test_measuring_then_adding_lands_at_or_before_the_end_with_nothing_between(name, a, b, pauses):
    calendar = CALENDARS[name]
    (a, b), pauses = in_domain(calendar, [a, b], pauses)
    start, end = min(a, b), max(a, b)
    elapsed = calendar.business_seconds(start, end, pauses)
    back = calendar.add_business_seconds(start, elapsed, pauses, due_at="close")
    if elapsed:
        assert back <= end
        assert calendar.business_seconds(back, end, pauses) == 0


@FAST
@given(calendars, instants, instants, instants)
def test_elapsed_is_additive_over_split_intervals(name, a, b, c):
    calendar = CALENDARS[name]
    (a, b, c), _ = in_domain(calendar, [a, b, c], [])
    first, middle, last = sorted((a, b, c))
    assert calendar.business_seconds(first, last) == (
        calendar.business_seconds(first, middle) + calendar.business_seconds(middle, last)
    )


@FAST
@given(calendars, instants, instants, durations, pause_lists)
def test_pauses_never_add_time(name, a, b, seconds, pauses):
    calendar = CALENDARS[name]
    start, end = min(a, b), max(a, b)
    assert calendar.business_seconds(start, end, pauses) <= calendar.business_seconds(start, end)
    assert calendar.add_business_seconds(start, seconds, pauses) >= calendar.add_business_seconds(start, seconds)


@FAST
@given(calendars, instants, durations)
def test_due_instant_is_monotonic_in_the_budget(name, start, seconds):
    calendar = CALENDARS[name]
    assert calendar.add_business_seconds(start, seconds) <= calendar.add_business_seconds(start, seconds + 1)


def test_same_answers_whatever_the_machine_time_zone(machine_tz):
    # Instants chosen around DST changes in all four zones; computed afresh under each TZ.
    starts = [datetime(2026, m, d, h, tzinfo=UTC) for m, d, h in [(3, 7, 23), (3, 28, 20), (4, 4, 13), (10, 24, 22), (11, 1, 4)]]
    answers = []
    for name in sorted(CALENDARS):
        fresh = _rebuild(name)
        answers.extend((fresh.add_business_seconds(start, 30 * 3600), fresh.business_seconds(start, start + timedelta(days=9))) for start in starts)
    expected = _answers_under("UTC", starts)
    assert answers == expected


def _answers_under(tz: str, starts: list[datetime]) -> list[tuple[datetime, int]]:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = tz
    time.tzset()
    try:
        result = []
        for name in sorted(CALENDARS):
            fresh = _rebuild(name)  # a new, empty cache: built under this TZ
            result.extend((fresh.add_business_seconds(start, 30 * 3600), fresh.business_seconds(start, start + timedelta(days=9))) for start in starts)
        return result
    finally:
        if previous is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = previous
        time.tzset()


def _rebuild(name: str) -> Calendar:
    original = CALENDARS[name]
    return Calendar(
        name=original.name,
        zone=original.zone,
        weekly=original.weekly,
        holidays=original.holidays,
        yearly_holidays=original.yearly_holidays,
        holiday_country=original.holiday_country,
        holiday_subdivision=original.holiday_subdivision,
        overrides=original.overrides,
        due_at=original.due_at,
        granularity=original.granularity,
        fingerprint=original.fingerprint,
    )
