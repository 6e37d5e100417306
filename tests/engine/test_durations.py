from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.engine.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("2h30m", 9000), ("45s", 45), ("1h 15m 30s", 4530), ("90m", 5400), ("0s", 0)],
)
def test_contract_durations(text, seconds):
    assert parse_duration(text, allow_zero=True) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1d", "a day is ambiguous"),
        ("1w", "a week is ambiguous"),
        ("1.5h", "is not a duration"),
        ("h", "is not a duration"),
        ("2h2h", "the unit 'h' appears twice"),
        ("3 fortnights", "unknown unit 'fortnights'"),
        ("0m", "is zero"),
        ("", "empty duration"),
    ],
)
def test_refused_durations_say_why(text, message):
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10_000 * 3600))
def test_format_then_parse_is_the_identity(seconds):
    assert parse_duration(format_duration(seconds), allow_zero=True) == seconds


def test_format_reads_like_a_contract():
    assert [format_duration(s) for s in (0, 59, 60, 3600, 9000, 90061, -1800)] == [
        "0s", "59s", "1m", "1h", "2h30m", "25h1m1s", "-30m",
    ]
