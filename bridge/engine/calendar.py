"""Business calendars: weekly hours in an IANA time zone, holidays and per-date overrides.

Business time is real elapsed seconds inside working intervals. Each year's intervals are
materialised once, converted to UTC epoch seconds, merged, and given cumulative sums, so both
queries (:meth:`Calendar.business_seconds`, :meth:`Calendar.add_business_seconds`) are a few
binary searches, not day-by-day loops.

Conventions (see ../shared/reference/sla-semantics.md, section 5):

- An interval belongs to the local date it starts on; an end at or before its start runs into
  the next day (an overnight shift), ``24:00`` is the next midnight. A holiday removes every
  interval that starts on that date; an override replaces that date's hours (and wins over a
  holiday on the same date, being the more specific statement).
- A local time that does not exist (the spring-forward gap) moves forward by the gap; an
  ambiguous one (the autumn fold) is its first occurrence. So an overnight shift on the night
  clocks go forward is one hour shorter. Naive datetimes are refused.
- ``due_at = "close"`` gives the instant the budget runs out, which is the end of a working
  interval when it runs out exactly there; ``"next_open"`` moves that case to the start of the
  next working interval, as ``biz``, Zammad and Zendesk badges show it.
- ``granularity = "minute"`` drops the seconds of the start instant and of each pause's start
  and end, as Zammad does (its pauses are breaks written ``HH:MM``).

The parsers for the calendar keys of the config are in :mod:`bridge.engine.hours`.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from bridge.engine.hours import (
    BUILTIN_CALENDARS,
    WEEKDAYS,
    parse_holiday,
    parse_interval,
    parse_override_date,
    parse_timezone,
    public_holidays,
)
from bridge.engine.terms import CalendarConfig, brief_errors

__all__ = ["Calendar", "from_epoch", "merge_spans", "to_epoch"]

# -- the calendar -----------------------------------------------------------------------------

Interval = tuple[int, int]  # seconds after the local midnight of the date it belongs to
Pause = tuple[datetime, datetime]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_SECOND = timedelta(seconds=1)
_MAX_YEARS_AHEAD = 50  # a calendar with no hours in 50 years has none


def to_epoch(moment: datetime) -> int:
    """Whole seconds since the epoch (floored), exactly; naive datetimes are refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: pass a timezone-aware instant")
    return (moment - _EPOCH) // _SECOND


def from_epoch(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)


def merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted union of half-open ``[start, end)`` spans; empty spans are dropped."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


@dataclass
class _Timeline:
    """A calendar's working intervals for whole local years, as UTC epoch seconds."""

    first_year: int = 0
    last_year: int = -1
    cover_start: int = 0  # instants in [cover_start, cover_end) are answered exactly
    cover_end: int = 0
    starts: list[int] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)
    before: list[int] = field(default_factory=list)  # business seconds before interval i
    through: list[int] = field(default_factory=list)  # business seconds up to the end of interval i


@dataclass(eq=False)
class Calendar:
    """A business calendar. Build it with :meth:`from_config`; query it with UTC instants."""

    name: str
    zone: ZoneInfo
    weekly: tuple[tuple[Interval, ...], ...]  # Monday first
    holidays: frozenset[date] = frozenset()
    yearly_holidays: frozenset[tuple[int, int]] = frozenset()
    holiday_country: str | None = None
    holiday_subdivision: str | None = None
    overrides: Mapping[date, tuple[Interval, ...]] = field(default_factory=dict)
    due_at: str = "close"
    granularity: str = "second"
    fingerprint: str = ""
    _timeline: _Timeline = field(default_factory=_Timeline, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | CalendarConfig, *, name: str = "calendar") -> Calendar:
        """From a ``[calendars.NAME]`` table (a dict, or the validated config model)."""
        if isinstance(config, Mapping):
            try:
                config = CalendarConfig(**config)
            except ValidationError as error:
                raise ValueError(f"calendar {name!r}: {brief_errors(error)}") from None
        weekly = tuple(
            tuple(sorted(parse_interval(text) for text in config.hours.get(day, []))) for day in WEEKDAYS
        )
        fixed: set[date] = set()
        yearly: set[tuple[int, int]] = set()
        for text in config.holidays:
            parsed = parse_holiday(text)
            (fixed.add if isinstance(parsed, date) else yearly.add)(parsed)  # type: ignore[arg-type]
        overrides = {
            parse_override_date(day): tuple(sorted(parse_interval(text) for text in intervals))
            for day, intervals in config.overrides.items()
        }
        canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True)
        if config.holiday_country:
            from holidays.version import __version__ as holidays_version  # the package re-exports it without `as`, so mypy won't see it there

            canonical += f"|holidays=={holidays_version}"  # public holiday data changes between releases
        return cls(
            name=name,
            zone=parse_timezone(config.timezone),
            weekly=weekly,
            holidays=frozenset(fixed),
            yearly_holidays=frozenset(yearly),
            holiday_country=config.holiday_country,
            holiday_subdivision=config.holiday_subdivision,
            overrides=overrides,
            due_at=config.due_at,
            granularity=config.granularity,
            fingerprint=hashlib.sha256(canonical.encode()).hexdigest()[:16],
        )

    @classmethod
    def builtin(cls, name: str) -> Calendar:
        return cls.from_config(BUILTIN_CALENDARS[name], name=name)

    # -- the two queries --------------------------------------------------------------------

    def business_seconds(self, start: datetime, end: datetime, pauses: Sequence[Pause] = ()) -> int:
        """Business seconds in ``[start, end)`` outside ``pauses``; 0 when ``end <= start``."""
        if to_epoch(end) <= to_epoch(start):
            return 0
        return self._between(self._start_epoch(start), to_epoch(end), self._epoch_spans(pauses))

    def add_business_seconds(
        self, start: datetime, seconds: int, pauses: Sequence[Pause] = (), *, due_at: str | None = None
    ) -> datetime:
        """The instant ``seconds`` of business time after ``start``, skipping ``pauses`` (UTC).

        0 seconds gives the first working instant at or after ``start``. ``due_at`` overrides the
        calendar's boundary convention (the evaluator asks for ``"close"`` to date a breach).
        """
        if seconds < 0:
            raise ValueError(f"cannot add a negative business duration ({seconds}s)")
        return from_epoch(self._add(self._start_epoch(start), int(seconds), self._epoch_spans(pauses), due_at or self.due_at))

    def clock(self, start: datetime, end: datetime, pauses: Sequence[Pause], target: int, limit: int, dated: int
              ) -> tuple[int, int, datetime, datetime | None]:
        """A clock's figures in one pass over its pauses: business seconds counted in ``[start,
        end)``, business seconds the pauses took out, the instant ``target`` is reached (the
        calendar's convention), and, once ``limit`` seconds are counted (a breach), the instant
        ``dated`` seconds are reached (``"close"``), else None. The same as
        :meth:`business_seconds` and :meth:`add_business_seconds` would give."""
        if min(target, limit, dated) < 0:
            raise ValueError(f"cannot add a negative business duration ({min(target, limit, dated)}s)")
        a, b = self._start_epoch(start), to_epoch(end)
        spans = self._epoch_spans(pauses)
        counted = paused = 0
        if b > to_epoch(start):
            whole = self._between(a, b, ())
            counted = self._between(a, b, spans)
            paused = whole - counted
        due = from_epoch(self._add(a, target, spans, self.due_at))
        reached = from_epoch(self._add(a, dated, spans, "close")) if counted >= limit else None
        return counted, paused, due, reached

    def _between(self, a: int, b: int, spans: Sequence[tuple[int, int]]) -> int:
        if b <= a:
            return 0
        self._cover(a, b)
        total = self._elapsed_to(b) - self._elapsed_to(a)
        for pause_start, pause_end in spans:
            low, high = max(pause_start, a), min(pause_end, b)
            if high > low:
                total -= self._elapsed_to(high) - self._elapsed_to(low)
        return total

    def _add(self, cursor: int, remaining: int, spans: Sequence[tuple[int, int]], due_at: str) -> int:
        for pause_start, pause_end in spans:
            if pause_end <= cursor:
                continue
            if pause_start <= cursor:
                cursor = pause_end
                continue
            if remaining == 0:
                if self._first_working(cursor) < pause_start:
                    break
            else:
                self._cover(cursor, pause_start)
                available = self._elapsed_to(pause_start) - self._elapsed_to(cursor)
                if available >= remaining:
                    break
                remaining -= available
            cursor = pause_end
        return self._add_plain(cursor, remaining, due_at)

    # -- inside -----------------------------------------------------------------------------

    def _epoch_spans(self, pauses: Sequence[Pause]) -> list[tuple[int, int]]:
        return _epoch_spans(pauses, self.granularity == "minute") if pauses else []

    def _start_epoch(self, start: datetime) -> int:
        epoch = to_epoch(start)
        return epoch - epoch % 60 if self.granularity == "minute" else epoch

    def _elapsed_to(self, t: int) -> int:
        """Business seconds from the timeline's beginning to ``t`` (which it must cover)."""
        line = self._timeline
        i = bisect.bisect_right(line.starts, t) - 1
        if i < 0:
            return 0
        return line.before[i] + min(t, line.ends[i]) - line.starts[i]

    def _first_working(self, t: int) -> int:
        self._cover(t, t)
        while True:
            line = self._timeline
            i = bisect.bisect_right(line.starts, t) - 1
            if i >= 0 and t < line.ends[i]:
                return t
            if i + 1 < len(line.starts):
                return line.starts[i + 1]
            self._extend()

    def _add_plain(self, a: int, seconds: int, due_at: str) -> int:
        if seconds == 0:
            return self._first_working(a)
        self._cover(a, a)
        while True:
            line = self._timeline
            target = self._elapsed_to(a) + seconds
            if line.through and target <= line.through[-1]:
                i = bisect.bisect_left(line.through, target)
                t = line.starts[i] + (target - line.before[i])
                if due_at == "next_open" and t == line.ends[i]:
                    if i + 1 >= len(line.starts):
                        self._extend()
                        continue
                    t = line.starts[i + 1]
                return t
            self._extend()

    def _cover(self, a: int, b: int) -> None:
        line = self._timeline
        built = line.last_year >= line.first_year
        if built and line.cover_start <= a and b < line.cover_end:
            return
        first = self._local_year(a)
        last = self._local_year(b)
        if built:
            first, last = min(first, line.first_year), max(last, line.last_year)
        self._build(first, last)

    def _extend(self) -> None:
        line = self._timeline
        span = line.last_year - line.first_year + 1
        if span > _MAX_YEARS_AHEAD + 1:
            raise ValueError(f"calendar {self.name!r} has no working hours in {_MAX_YEARS_AHEAD} years")
        self._build(line.first_year, line.last_year + max(1, span))

    def _local_year(self, t: int) -> int:
        return from_epoch(t).astimezone(self.zone).year

    def _build(self, first_year: int, last_year: int) -> None:
        """Materialise the working intervals of local years ``first_year..last_year``."""
        closed = set(self.holidays)
        for year in range(first_year - 1, last_year + 1):
            for month, day_of_month in self.yearly_holidays:
                with contextlib.suppress(ValueError):  # 02-29 outside leap years
                    closed.add(date(year, month, day_of_month))
        if self.holiday_country:
            closed.update(public_holidays(self.holiday_country, self.holiday_subdivision, range(first_year - 1, last_year + 1)))
        spans: list[tuple[int, int]] = []
        day = date(first_year - 1, 12, 31)  # its overnight shift runs into the first year
        last_day = date(last_year, 12, 31)
        one_day = timedelta(days=1)
        while day <= last_day:
            intervals = self.overrides.get(day)
            if intervals is None:
                intervals = () if day in closed else self.weekly[day.weekday()]
            if intervals:
                midnight = datetime.combine(day, time())
                for start, end in intervals:
                    spans.append(
                        (
                            self._wall_to_epoch(midnight + timedelta(seconds=start)),
                            self._wall_to_epoch(midnight + timedelta(seconds=end)),
                        )
                    )
            day += one_day
        merged = merge_spans(spans)
        starts = [s for s, _ in merged]
        ends = [e for _, e in merged]
        before: list[int] = []
        through: list[int] = []
        total = 0
        for s, e in merged:
            before.append(total)
            total += e - s
            through.append(total)
        self._timeline = _Timeline(
            first_year=first_year,
            last_year=last_year,
            cover_start=self._wall_to_epoch(datetime(first_year, 1, 1)),
            cover_end=self._wall_to_epoch(datetime(last_year + 1, 1, 1)),
            starts=starts,
            ends=ends,
            before=before,
            through=through,
        )

    def _wall_to_epoch(self, wall: datetime) -> int:
        """A local wall-clock time to epoch seconds: a gap time moves forward by the gap (fold=0
        takes the offset from before the transition), an ambiguous time is its first occurrence."""
        offset = wall.replace(tzinfo=self.zone).utcoffset()
        assert offset is not None
        return (wall - offset - _EPOCH_NAIVE) // _SECOND


def _epoch_spans(pauses: Sequence[Pause], minute: bool = False) -> list[tuple[int, int]]:
    spans = ((to_epoch(start), to_epoch(end)) for start, end in pauses)
    if minute:  # whole minutes, as Zammad breaks its pauses ("%H:%M" of each end)
        spans = ((a - a % 60, b - b % 60) for a, b in spans)
    return merge_spans(spans)
