"""Compare bridge.engine.calendar.business_seconds with businesstimedelta on the same calendars.

    pip install -e '.[bench]' && python bench/calendar.py [--n 100000] [--seed 1]

For each calendar it times both libraries on the same seeded random intervals (whole seconds,
2025-2027, up to 30 days long), prints both rates and their ratio, and counts the intervals on
which they disagree, sorted into kinds with an explanation of each.
"""

from __future__ import annotations

import sys

# This file is named calendar.py, as the issue asks; run as a script, its folder comes first on
# sys.path and would shadow the standard library's calendar module (which `holidays` imports).
if sys.path and sys.path[0].rstrip("/").endswith("bench"):
    sys.path.pop(0)

import argparse
import random
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from datetime import time as clock
from zoneinfo import ZoneInfo

import holidays
import pytz
from businesstimedelta import HolidayRule, Rules, WorkDayRule

from bridge.engine.calendar import Calendar

UTC = timezone.utc
RANGE_START = datetime(2025, 1, 1, tzinfo=UTC)
RANGE_SECONDS = 3 * 365 * 86400
MAX_LENGTH = 30 * 86400

KINDS = {
    "previous-night shift": (
        "the start lies in the early-morning part of a shift that began the evening before; "
        "businesstimedelta's WorkDayRule.next() only looks at the current date's shift, so it skips "
        "the rest of that shift (sla-semantics.md section 5.3, case derived-01)"
    ),
    "this evening's shift": (
        "the start lies inside an overnight shift that began the same evening; WorkDayRule.next() "
        "compares the time with max(start, end), takes 23:00 as past a 22:00-06:00 shift and skips "
        "the rest of the shift under way"
    ),
    "DST holiday length": (
        "a holiday on a day with a DST change: HolidayRule adds 24 hours to a localized midnight, so "
        "the holiday is an hour too long or too short"
    ),
    "other": "not explained by the kinds above; examples are printed",
}


# name -> (time zone, shift start, shift end, public holidays of), Monday to Friday
CALENDARS = {
    "berlin-9-17-DE": ("Europe/Berlin", clock(9), clock(17), "DE"),
    "new-york-nights-US": ("America/New_York", clock(22), clock(6), "US"),
}


def build(name: str) -> tuple[Calendar, Rules, ZoneInfo, tuple[clock, clock] | None, object]:
    """The same calendar for both libraries, with the public holidays classify() needs."""
    if name not in CALENDARS:
        raise SystemExit(f"unknown calendar {name}; known: {', '.join(CALENDARS)}")
    zone, start, end, country = CALENDARS[name]
    interval = f"{start:%H:%M}-{end:%H:%M}"
    ours = Calendar.from_config(
        {"timezone": zone, "hours": {d: [interval] for d in ("mon", "tue", "wed", "thu", "fri")}, "holiday_country": country},
        name=name,
    )
    public = holidays.country_holidays(country, years=range(2024, 2029))
    theirs = Rules(
        [
            WorkDayRule(start_time=start, end_time=end, working_days=[0, 1, 2, 3, 4], tz=pytz.timezone(zone)),
            HolidayRule(public, tz=pytz.timezone(zone)),
        ]
    )
    overnight = (start, end) if end < start else None
    return ours, theirs, ZoneInfo(zone), overnight, public


def intervals(n: int, seed: int) -> list[tuple[datetime, datetime]]:
    rng = random.Random(seed)
    result = []
    for _ in range(n):
        start = RANGE_START + timedelta(seconds=rng.randrange(RANGE_SECONDS))
        result.append((start, start + timedelta(seconds=rng.randrange(1, MAX_LENGTH))))
    return result


def classify(start: datetime, end: datetime, zone: ZoneInfo, overnight: tuple[clock, clock] | None, public) -> str:
    local = start.astimezone(zone)
    if overnight is not None and local.time() < overnight[1]:
        yesterday = (local - timedelta(days=1)).date()
        if yesterday.weekday() < 5 and yesterday not in public:
            return "previous-night shift"
    if overnight is not None and local.time() >= overnight[0] and local.date().weekday() < 5 and local.date() not in public:
        return "this evening's shift"
    day = start.astimezone(zone).date()
    while day <= end.astimezone(zone).date():
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=zone)
        if day in public and noon.utcoffset() != (noon + timedelta(days=1)).utcoffset():
            return "DST holiday length"
        day += timedelta(days=1)
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="random intervals per calendar")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--calendars", default="berlin-9-17-DE,new-york-nights-US")
    args = parser.parse_args()
    sample = intervals(args.n, args.seed)
    print(f"{args.n:,} random intervals (seed {args.seed}), whole seconds in 2025-2027, up to 30 days long\n")
    for name in args.calendars.split(","):
        ours, theirs, zone, overnight, public = build(name)

        began = time.perf_counter()
        ours.business_seconds(sample[0][0], sample[0][1])
        cold = time.perf_counter() - began
        began = time.perf_counter()
        our_results = [ours.business_seconds(a, b) for a, b in sample]
        our_seconds = time.perf_counter() - began

        began = time.perf_counter()
        their_results = []
        for a, b in sample:
            delta = theirs.difference(a, b).timedelta
            their_results.append(delta.days * 86400 + delta.seconds)
        their_seconds = time.perf_counter() - began

        kinds: Counter[str] = Counter()
        examples: dict[str, list[str]] = {}
        for (a, b), mine, other in zip(sample, our_results, their_results, strict=True):
            if mine != other:
                kind = classify(a, b, zone, overnight, public)
                kinds[kind] += 1
                if len(examples.setdefault(kind, [])) < 2:
                    examples[kind].append(
                        f"{a.astimezone(zone):%a %Y-%m-%d %H:%M:%S %Z} -> {b.astimezone(zone):%a %Y-%m-%d %H:%M:%S %Z}: "
                        f"sla-bridge {mine}s, businesstimedelta {other}s"
                    )
        our_rate, their_rate = args.n / our_seconds, args.n / their_seconds
        print(f"== {name}")
        print(f"  sla-bridge         {our_rate:>12,.0f} intervals/s  ({our_seconds:.2f}s; first query incl. building the years {cold * 1000:.1f} ms)")
        print(f"  businesstimedelta  {their_rate:>12,.0f} intervals/s  ({their_seconds:.2f}s)")
        print(f"  ratio              {our_rate / their_rate:>12,.1f} x faster")
        print(f"  disagreements      {sum(kinds.values()):>12,} of {args.n:,}")
        for kind, count in kinds.most_common():
            print(f"    {count:>8,}  {kind}: {KINDS[kind]}")
            for example in examples[kind]:
                print(f"              e.g. {example}")
        print()


if __name__ == "__main__":
    main()
