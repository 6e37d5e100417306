"""Durations as contracts write them: ``30m``, ``2h``, ``2h30m``, ``45s``, ``1h 15m 30s``.

Only hours, minutes and seconds are accepted. A "day" means 24 hours to ServiceNow, one working
day to a person reading a contract, and something else again to ``biz``; a target written in days
would silently mean whatever the code guessed, so ``d`` is refused with a message that asks for
hours instead.
"""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_PART = re.compile(r"([0-9]+)\s*([a-zA-Z]+)")  # ASCII digits only: "٣h" is not a duration
_MAX_DIGITS = 12  # no duration anyone means has more (and int() refuses a 5,000-digit text its own way)
_UNITS = {"h": 3600, "m": 60, "s": 1}
_AMBIGUOUS = {"d": "day", "day": "day", "days": "day", "w": "week", "wk": "week", "week": "week", "weeks": "week"}


def parse_duration(text: object, *, allow_zero: bool = False) -> int:
    """Seconds in a duration string; ``ValueError`` with a message fit for an admin otherwise."""
    if isinstance(text, bool) or not isinstance(text, str):
        if isinstance(text, int | float):
            example = int(text) if 0 < text < 10**6 else 30  # not int(inf), nor a 300-digit example
            raise ValueError(
                f"{text!r} has no unit: write it as a string with units, e.g. \"{example}s\", \"30m\" or \"2h30m\""
            )
        raise ValueError(f"expected a duration string such as \"30m\" or \"2h30m\", got {type(text).__name__}")
    compact = text.strip()
    if not compact:
        raise ValueError("empty duration: write e.g. \"30m\", \"4h\" or \"2h30m\"")
    position = 0
    total = 0
    seen: list[str] = []
    for match in _PART.finditer(compact):
        if compact[position : match.start()].strip():
            break
        if len(match.group(1).lstrip("0")) > _MAX_DIGITS:
            raise ValueError(f"{_shown(text)} is far too long to be a duration: write e.g. \"30m\", \"4h\" or \"2h30m\"")
        number, unit = int(match.group(1)), match.group(2).lower()
        if unit in _AMBIGUOUS:
            word = _AMBIGUOUS[unit]
            hint = f"{number * 24}h" if word == "day" else f"{number * 168}h"
            raise ValueError(
                f"{_shown(text)}: a {word} is ambiguous in an SLA (24 hours? one working day of the calendar?); "
                f"write the business time in hours, e.g. \"{hint}\" for {number} x 24 hours, "
                f"or \"{number * 8}h\" for {number} eight-hour working day{'s' if number != 1 else ''}"
            )
        if unit not in _UNITS:
            raise ValueError(f"{_shown(text)}: unknown unit {unit!r}; use h, m and s, e.g. \"2h30m\"")
        if unit in seen:
            raise ValueError(f"{_shown(text)}: the unit {unit!r} appears twice")
        seen.append(unit)
        total += number * _UNITS[unit]
        position = match.end()
    if position != len(compact) or not seen:
        raise ValueError(
            f"{_shown(text)} is not a duration: write whole numbers with units h, m, s, e.g. \"30m\", \"4h\", \"2h30m\""
        )
    if total == 0 and not allow_zero:
        raise ValueError(f"{_shown(text)} is zero: a duration here must be longer than zero")
    return total


def _shown(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37]) + "..."


def format_duration(seconds: float) -> str:
    """``9000`` -> ``"2h30m"``; negative values keep their sign; zero is ``"0s"``."""
    sign = "-" if seconds < 0 else ""
    remaining = round(abs(seconds))
    if remaining == 0:
        return "0s"
    hours, remaining = divmod(remaining, 3600)
    minutes, secs = divmod(remaining, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return sign + "".join(parts)
