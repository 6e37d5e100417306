"""Business calendars: the conventions of sla-semantics.md section 5, on the hard cases.

Expected instants are worked out by hand from the calendar, never taken from the code.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bridge.engine.calendar import Calendar

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = 3600
WEEKDAYS_9_17 = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}


def cal(**config) -> Calendar:
    return Calendar.from_config({"timezone": "UTC", **config})


def at(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)


# -- due_at conventions ------------------------------------------------------------------------


def test_budget_running_out_at_close_is_due_at_the_close():
    berlin = cal(timezone="Europe/Berlin", hours=WEEKDAYS_9_17)
    due = berlin.add_business_seconds(at(BERLIN, 2026, 3, 6, 9), 8 * H)  # Friday 09:00 + 8h
    assert due == at(BERLIN, 2026, 3, 6, 17)
    assert due.tzinfo is UTC


def test_next_open_moves_an_exact_close_to_the_next_opening():
    berlin = cal(timezone="Europe/Berlin", hours=WEEKDAYS_9_17, due_at="next_open")
    assert berlin.add_business_seconds(at(BERLIN, 2026, 3, 6, 9), 8 * H) == at(BERLIN, 2026, 3, 9, 9)
    # a budget that runs out inside an interval is the same under both conventions
    assert berlin.add_business_seconds(at(BERLIN, 2026, 3, 6, 9), 7 * H) == at(BERLIN, 2026, 3, 6, 16)


def test_biz_sunday_hour_example_both_conventions():
    # biz-06: 2h on a calendar open only Sunday 11-12, from Sunday 1 January (2023).
    sunday = {"hours": {"sun": ["11:00-12:00"]}}
    start = at(UTC, 2023, 1, 1)
    assert cal(**sunday).add_business_seconds(start, 2 * H) == at(UTC, 2023, 1, 8, 12)
    assert cal(**sunday, due_at="next_open").add_business_seconds(start, 2 * H) == at(UTC, 2023, 1, 15, 11)


def test_jsm_worked_example():
    # A 16h goal from Monday 11:00 on Mon 09-17, Tue 09-16, Wed off, Thu 08-17 is due Thursday 11:00.
    jsm = cal(hours={"mon": ["09:00-17:00"], "tue": ["09:00-16:00"], "thu": ["08:00-17:00"]})
    assert jsm.add_business_seconds(at(UTC, 2026, 3, 2, 11), 16 * H) == at(UTC, 2026, 3, 5, 11)


def test_zero_seconds_is_the_first_working_instant_at_or_after_start():
    office = cal(hours=WEEKDAYS_9_17)
    assert office.add_business_seconds(at(UTC, 2026, 3, 7, 12), 0) == at(UTC, 2026, 3, 9, 9)  # Saturday
    assert office.add_business_seconds(at(UTC, 2026, 3, 9, 10, 30), 0) == at(UTC, 2026, 3, 9, 10, 30)
    assert office.add_business_seconds(at(UTC, 2026, 3, 9, 17), 0) == at(UTC, 2026, 3, 10, 9)  # the close is outside


def test_business_seconds_across_a_weekend():
    office = cal(hours=WEEKDAYS_9_17)
    assert office.business_seconds(at(UTC, 2026, 3, 6, 15), at(UTC, 2026, 3, 9, 10)) == 3 * H
    assert office.business_seconds(at(UTC, 2026, 3, 9, 10), at(UTC, 2026, 3, 6, 15)) == 0
    assert office.business_seconds(at(UTC, 2026, 3, 7), at(UTC, 2026, 3, 8, 23)) == 0


def test_split_shifts_and_seconds_in_intervals():
    split = cal(hours={"mon": ["08:00-12:00", "13:00:30-17:00"]})
    assert split.business_seconds(at(UTC, 2026, 3, 2), at(UTC, 2026, 3, 3)) == 4 * H + 4 * H - 30
    assert split.add_business_seconds(at(UTC, 2026, 3, 2, 11), 3600 + 30) == at(UTC, 2026, 3, 2, 13, 1)


def test_24x7_is_built_in():
    always = Calendar.builtin("24x7")
    assert always.business_seconds(at(UTC, 2026, 12, 31, 23), at(UTC, 2027, 1, 1, 1)) == 2 * H
    assert always.add_business_seconds(at(UTC, 2026, 12, 31, 23), 2 * H) == at(UTC, 2027, 1, 1, 1)


def test_end_of_24_00_is_the_next_midnight():
    late = cal(hours={"mon": ["18:00-24:00"], "tue": ["00:00-02:00"]})
    assert late.business_seconds(at(UTC, 2026, 3, 2), at(UTC, 2026, 3, 4)) == 8 * H
    assert late.add_business_seconds(at(UTC, 2026, 3, 2, 18), 7 * H) == at(UTC, 2026, 3, 3, 1)


# -- overnight shifts --------------------------------------------------------------------------


def test_overnight_shift_belongs_to_the_day_it_starts_on():
    nights = cal(hours={"fri": ["22:00-06:00"]}, holidays=["2026-03-13"])
    # the Friday-night shift of 6 March runs into Saturday
    assert nights.business_seconds(at(UTC, 2026, 3, 7), at(UTC, 2026, 3, 8)) == 6 * H
    # a holiday on Friday 13 removes the whole shift, the part after midnight too
    assert nights.business_seconds(at(UTC, 2026, 3, 13), at(UTC, 2026, 3, 15)) == 0


def test_holiday_on_the_day_after_does_not_cut_an_overnight_shift():
    nights = cal(hours={"fri": ["22:00-06:00"]}, holidays=["2026-03-07"])
    assert nights.business_seconds(at(UTC, 2026, 3, 6), at(UTC, 2026, 3, 8)) == 8 * H


def test_start_inside_last_nights_shift_uses_the_rest_of_it():
    # derived-01: Mon-Fri 22:00-06:00; Tuesday 03:00 is inside Monday's shift.
    nights = cal(hours={day: ["22:00-06:00"] for day in ("mon", "tue", "wed", "thu", "fri")})
    assert nights.add_business_seconds(at(UTC, 2026, 3, 3, 3), 2 * H) == at(UTC, 2026, 3, 3, 5)
    assert nights.add_business_seconds(at(UTC, 2026, 3, 3, 3), 4 * H) == at(UTC, 2026, 3, 3, 23)


# -- DST ---------------------------------------------------------------------------------------


def test_berlin_overnight_shift_on_spring_forward_night_is_an_hour_shorter():
    nights = cal(timezone="Europe/Berlin", hours={"sat": ["22:00-06:00"]})
    # 28/29 March 2026: clocks jump from 02:00 to 03:00
    assert nights.business_seconds(at(UTC, 2026, 3, 28), at(UTC, 2026, 3, 30)) == 7 * H
    # 24/25 October 2026: clocks fall back from 03:00 to 02:00
    assert nights.business_seconds(at(UTC, 2026, 10, 24), at(UTC, 2026, 10, 26)) == 9 * H


def test_berlin_working_day_around_the_change_is_real_seconds():
    berlin = cal(timezone="Europe/Berlin", hours=WEEKDAYS_9_17)
    # Friday 27 March 16:00 CET + 2h = Monday 30 March 10:00 CEST = 08:00 UTC
    assert berlin.add_business_seconds(at(BERLIN, 2026, 3, 27, 16), 2 * H) == at(UTC, 2026, 3, 30, 8)


def test_new_york_whole_days_are_23_and_25_hours_on_the_change():
    sundays = cal(timezone="America/New_York", hours={"sun": ["00:00-24:00"]})
    assert sundays.business_seconds(at(UTC, 2026, 3, 7), at(UTC, 2026, 3, 10)) == 23 * H
    assert sundays.business_seconds(at(UTC, 2026, 10, 31), at(UTC, 2026, 11, 3)) == 25 * H


def test_a_local_time_that_does_not_exist_moves_forward_by_the_gap():
    # 8 March 2026 in New York: 02:00-03:00 does not exist, 02:30 becomes 03:30 EDT (07:30 UTC).
    early = cal(timezone="America/New_York", hours={"sun": ["02:30-04:00"]})
    assert early.business_seconds(at(UTC, 2026, 3, 8), at(UTC, 2026, 3, 9)) == 30 * 60
    assert early.add_business_seconds(at(UTC, 2026, 3, 8), 0) == at(UTC, 2026, 3, 8, 7, 30)


def test_an_interval_that_collapses_in_the_gap_is_dropped():
    # biz: Sun 02:30-03:15 in Los Angeles on 2006-04-02 is empty, not negative.
    gap = cal(timezone="America/Los_Angeles", hours={"sun": ["02:30-03:15"]})
    assert gap.business_seconds(at(UTC, 2006, 4, 2), at(UTC, 2006, 4, 3)) == 0
    assert gap.business_seconds(at(UTC, 2006, 4, 9), at(UTC, 2006, 4, 10)) == 45 * 60


def test_an_ambiguous_local_time_is_its_first_occurrence():
    # 1 November 2026 in New York: 01:30 happens twice; the first is EDT (05:30 UTC).
    fold = cal(timezone="America/New_York", hours={"sun": ["01:30-02:00"]})
    assert fold.add_business_seconds(at(UTC, 2026, 11, 1), 0) == at(UTC, 2026, 11, 1, 5, 30)
    assert fold.business_seconds(at(UTC, 2026, 11, 1), at(UTC, 2026, 11, 2)) == 90 * 60  # until 02:00 EST


# -- holidays and overrides --------------------------------------------------------------------


def test_dated_and_yearly_holidays_close_the_day():
    office = cal(hours=WEEKDAYS_9_17, holidays=["2026-03-10", "03-11"])
    assert office.business_seconds(at(UTC, 2026, 3, 9), at(UTC, 2026, 3, 13)) == 2 * 8 * H
    assert office.business_seconds(at(UTC, 2027, 3, 8), at(UTC, 2027, 3, 13)) == 4 * 8 * H  # 10 March open in 2027


def test_public_holidays_from_the_holidays_package():
    bavaria = cal(timezone="Europe/Berlin", hours=WEEKDAYS_9_17, holiday_country="DE", holiday_subdivision="BY")
    # Tuesday 6 January 2026 is Epiphany in Bavaria (not in Berlin)
    assert bavaria.business_seconds(at(BERLIN, 2026, 1, 6), at(BERLIN, 2026, 1, 7)) == 0
    berlin = cal(timezone="Europe/Berlin", hours=WEEKDAYS_9_17, holiday_country="DE", holiday_subdivision="BE")
    assert berlin.business_seconds(at(BERLIN, 2026, 1, 6), at(BERLIN, 2026, 1, 7)) == 8 * H
    # Thursday 24 Dec 16:00 + 2h: 1h that day, 25 and 26 are holidays, weekend, then Monday 10:00
    assert bavaria.add_business_seconds(at(BERLIN, 2026, 12, 24, 16), 2 * H) == at(BERLIN, 2026, 12, 28, 10)


def test_overrides_replace_a_days_hours_and_win_over_a_holiday():
    office = cal(
        hours=WEEKDAYS_9_17,
        holidays=["2026-12-24"],
        overrides={"2026-12-23": ["09:00-12:00"], "2026-12-22": [], "2026-12-24": ["10:00-11:00"], "2026-12-27": ["10:00-12:00"]},
    )
    day = lambda d: office.business_seconds(at(UTC, 2026, 12, d), at(UTC, 2026, 12, d + 1))
    assert [day(21), day(22), day(23), day(24), day(27)] == [8 * H, 0, 3 * H, 1 * H, 2 * H]


def test_minute_granularity_drops_the_seconds_of_the_start():
    # zammad-15: 13:26:36 plus business time counts from 13:26:00
    zammad = cal(timezone="Europe/Berlin", hours=WEEKDAYS_9_17, granularity="minute")
    start = at(BERLIN, 2026, 3, 2, 13, 26, 36)
    assert zammad.add_business_seconds(start, 20 * 60) == at(BERLIN, 2026, 3, 2, 13, 46)
    assert zammad.business_seconds(start, at(BERLIN, 2026, 3, 2, 13, 46)) == 20 * 60
    seconds = cal(timezone="Europe/Berlin", hours=WEEKDAYS_9_17)
    assert seconds.add_business_seconds(start, 20 * 60) == at(BERLIN, 2026, 3, 2, 13, 46, 36)


# -- pauses ------------------------------------------------------------------------------------


def test_pauses_take_time_out_and_move_the_due_instant():
    office = cal(hours=WEEKDAYS_9_17)
    pause = [(at(UTC, 2026, 3, 2, 10), at(UTC, 2026, 3, 2, 12))]
    assert office.business_seconds(at(UTC, 2026, 3, 2, 9), at(UTC, 2026, 3, 2, 17), pause) == 6 * H
    assert office.add_business_seconds(at(UTC, 2026, 3, 2, 9), 4 * H, pause) == at(UTC, 2026, 3, 2, 15)


def test_overlapping_pauses_are_not_counted_twice():
    office = cal(hours=WEEKDAYS_9_17)
    pauses = [(at(UTC, 2026, 3, 2, 10), at(UTC, 2026, 3, 2, 12)), (at(UTC, 2026, 3, 2, 11), at(UTC, 2026, 3, 2, 13))]
    assert office.business_seconds(at(UTC, 2026, 3, 2, 9), at(UTC, 2026, 3, 2, 17), pauses) == 5 * H


def test_multi_day_pause_across_dst():
    # derived-04: a pause from Friday 27 March 15:00 to Tuesday 31 March 11:00 Berlin time
    berlin = cal(timezone="Europe/Berlin", hours=WEEKDAYS_9_17)
    pause = [(at(BERLIN, 2026, 3, 27, 15), at(BERLIN, 2026, 3, 31, 11))]
    start = at(BERLIN, 2026, 3, 27, 9)
    assert berlin.business_seconds(start, at(BERLIN, 2026, 3, 31, 17), pause) == 6 * H + 6 * H
    assert berlin.add_business_seconds(start, 8 * H, pause) == at(BERLIN, 2026, 3, 31, 13)


def test_a_budget_ending_exactly_where_a_pause_starts():
    office = cal(hours=WEEKDAYS_9_17)
    pause = [(at(UTC, 2026, 3, 2, 11), at(UTC, 2026, 3, 2, 14))]
    assert office.add_business_seconds(at(UTC, 2026, 3, 2, 9), 2 * H, pause) == at(UTC, 2026, 3, 2, 11)
    assert office.add_business_seconds(at(UTC, 2026, 3, 2, 11), 0, pause) == at(UTC, 2026, 3, 2, 14)


# -- refusals ----------------------------------------------------------------------------------


def test_naive_datetimes_are_refused():
    office = cal(hours=WEEKDAYS_9_17)
    with pytest.raises(ValueError, match="naive datetime 2026-03-02T09:00:00"):
        office.business_seconds(datetime(2026, 3, 2, 9), at(UTC, 2026, 3, 3))
    with pytest.raises(ValueError, match="naive datetime"):
        office.add_business_seconds(datetime(2026, 3, 2, 9), 60)


def test_a_calendar_without_hours_says_so_instead_of_looping():
    with pytest.raises(ValueError, match="calendar 'calendar' has no working hours in 50 years"):
        cal().add_business_seconds(at(UTC, 2026, 1, 1), 60)


def test_bad_calendar_dict_is_a_clear_error():
    with pytest.raises(ValueError, match=r"calendar 'ops'.*timezone"):
        Calendar.from_config({"timezone": "Mars/Olympus"}, name="ops")


def test_long_budgets_reach_past_the_first_year():
    office = cal(hours={"mon": ["09:00-10:00"]})
    # 60 one-hour Mondays from Monday 5 Jan 2026: the 60th ends on Monday 22 Feb 2027 at 10:00
    assert office.add_business_seconds(at(UTC, 2026, 1, 5), 60 * H) == at(UTC, 2027, 2, 22, 10)
    assert office.business_seconds(at(UTC, 2026, 1, 5), at(UTC, 2027, 2, 22, 10)) == 60 * H
    assert office.add_business_seconds(at(UTC, 2026, 1, 5), 60 * H) - timedelta(weeks=59) == at(UTC, 2026, 1, 5, 10)


def test_dates_may_be_toml_or_python_dates(write_config):
    from datetime import date

    from bridge.config import load_config

    path = write_config('[calendars.office]\ntimezone = "UTC"\nholidays = [2026-03-10, "03-11"]\n'
                        'hours = { tue = ["09:00-17:00"] }\n')
    config = load_config(path).calendars["office"]
    office = Calendar.from_config(config)
    assert office.business_seconds(at(UTC, 2026, 3, 10), at(UTC, 2026, 3, 11)) == 0
    from_python = Calendar.from_config(
        {"timezone": "UTC", "hours": {"tue": ["09:00-17:00"]}, "overrides": {date(2026, 3, 10): ["10:00-11:00"]}}
    )
    assert from_python.business_seconds(at(UTC, 2026, 3, 10), at(UTC, 2026, 3, 11)) == H
