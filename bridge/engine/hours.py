"""The calendar keys as a config writes them: clock times, intervals, holidays, time zones.

Each parser raises ``ValueError`` with a message fit for an admin, so the config loader rejects a
bad calendar before anything runs; :mod:`bridge.engine.calendar` builds on the parsed values.
Working intervals that overlap (in one day, or an overnight shift running into the next day's
hours) are refused by :func:`check_no_overlap` rather than merged: two statements of the same
time are a typo or a misunderstanding, and the contract's hours are what the admin must see.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Sequence
from datetime import date
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

__all__ = [
    "BUILTIN_CALENDARS",
    "DAY_SECONDS",
    "WEEKDAYS",
    "check_no_overlap",
    "parse_clock",
    "parse_holiday",
    "parse_interval",
    "parse_override_date",
    "parse_timezone",
    "public_holidays",
]

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_SECONDS = 86_400

# A calendar every config has without declaring it: every second counts.
BUILTIN_CALENDARS: dict[str, dict[str, object]] = {
    "24x7": {"timezone": "UTC", "hours": {day: ["00:00-24:00"] for day in WEEKDAYS}},
}

_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_clock(text: str, *, allow_24: bool = False) -> int:
    """``"09:30"`` or ``"09:30:15"`` -> seconds after midnight; ``"24:00"`` only where allowed."""
    match = _CLOCK.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day: write HH:MM or HH:MM:SS, e.g. \"09:00\"")
    hours, minutes, seconds = int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)
    if hours == 24 and minutes == 0 and seconds == 0:
        if allow_24:
            return DAY_SECONDS
        raise ValueError(f"{text!r}: 24:00 can only end an interval")
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a time of day: hours run 00-23 (24:00 ends a day), minutes and seconds 00-59")
    return hours * 3600 + minutes * 60 + seconds


def parse_interval(text: object) -> tuple[int, int]:
    """``"09:00-17:30"`` -> (start, end) in seconds after the local midnight of its day.

    An end at or before its start is an overnight shift: it runs into the next day and belongs to
    the day it starts on, so the end comes back plus 24 hours. ``24:00`` is the next midnight.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an interval string such as \"09:00-17:00\", got {text!r}")
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f"{text!r} is not an interval: write \"HH:MM-HH:MM\", e.g. \"09:00-17:30\"")
    start = parse_clock(parts[0])
    end = parse_clock(parts[1], allow_24=True)
    if end <= start:
        end += DAY_SECONDS
    return start, end


def check_no_overlap(day: str, intervals: Sequence[str], *, spill: Sequence[str] = (), spill_from: str = "") -> None:
    """``ValueError`` naming the first two of ``intervals`` (texts, all of one day) that share time.

    ``spill`` are the previous day's intervals (``spill_from`` names that day): the part of an
    overnight shift past midnight must not overlap this day's hours either. Intervals that only
    touch (``"09:00-12:00"``, ``"12:00-17:00"``) do not overlap.
    """
    stretches = [(*parse_interval(text), text, day) for text in intervals]
    stretches += [(start - DAY_SECONDS, end - DAY_SECONDS, text, spill_from)
                  for start, end, text in ((*parse_interval(text), text) for text in spill) if end > DAY_SECONDS]
    stretches.sort()
    for before, after in itertools.pairwise(stretches):
        if after[0] >= before[1]:
            continue
        if before[2:] == after[2:]:
            raise ValueError(f"{day}: {after[2]!r} is given twice; give each working interval once")
        spilt = [item for item in (before, after) if item[3] != day]
        own = [item for item in (before, after) if item[3] == day]
        what = (f"{own[0][2]!r} overlaps the overnight shift {spilt[0][3]} {spilt[0][2]!r}" if spilt
                else f"{before[2]!r} and {after[2]!r} overlap")
        raise ValueError(f"{day}: {what}; give each stretch of working time once (overlapping hours "
                         "would be counted once, not as written)")


def parse_holiday(text: object) -> date | tuple[int, int]:
    """``"2026-12-24"`` -> that date; ``"12-25"`` -> (12, 25), every year."""
    if not isinstance(text, str):
        raise ValueError(f"expected a date string (\"YYYY-MM-DD\" once, \"MM-DD\" every year), got {text!r}")
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{text!r} is not a real date") from None
    if re.fullmatch(r"\d{2}-\d{2}", value):
        month, day = int(value[:2]), int(value[3:])
        try:
            date(2000, month, day)  # a leap year, so 02-29 is allowed
        except ValueError:
            raise ValueError(f"{text!r} is not a real day of the year") from None
        return month, day
    raise ValueError(f"{text!r} is not a holiday: write \"YYYY-MM-DD\" for one date or \"MM-DD\" for every year")


def parse_override_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a date: override keys are dates written \"YYYY-MM-DD\"") from None


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_timezone(name: object) -> ZoneInfo:
    """An IANA zone, or ``ValueError`` with the closest names."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"expected an IANA time zone name such as \"Europe/Berlin\", got {name!r}")
    try:
        if name in {"localtime", "local"} or name.startswith(("/", ".")):
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long to be a file name
        close = difflib.get_close_matches(name, sorted(_zone_names()), n=1, cutoff=0.6) if len(name) < 100 else []
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else "; use an IANA name such as \"Europe/Berlin\""
        shown = repr(name) if len(name) < 100 else repr(name[:60]) + "..."
        raise ValueError(f"unknown time zone {shown}{hint}") from None


def public_holidays(country: str, subdivision: str | None, years: range) -> dict[date, str]:
    """Public holidays from the ``holidays`` package, as data; ``ValueError`` names what is unknown."""
    import holidays  # imported here: it loads a large table of countries

    supported = holidays.list_supported_countries()
    if country not in supported:
        close = difflib.get_close_matches(country.upper(), sorted(supported), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(f"unknown holiday country {country!r}: use an ISO 3166-1 alpha-2 code such as \"DE\"{hint}")
    if subdivision is not None and subdivision not in supported[country]:
        options = ", ".join(supported[country]) or "none"
        raise ValueError(f"unknown holiday subdivision {subdivision!r} for {country}; known: {options}")
    table = holidays.country_holidays(country, subdiv=subdivision, years=years)
    return dict(sorted(table.items()))
