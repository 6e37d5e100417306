"""The incremental rule for coarse filters: a watermark, read again with an overlap.

Where a helpdesk's "changed since" filter is coarse (JQL dates are minute-granular and read in
the API user's profile zone; ServiceNow's ``sys_updated_on`` has whole seconds; search indexes
are eventually consistent), a cursor saved as "the last instant seen" skips records: those
sharing that minute but not yet read, and those that became visible late. So the cursor is a
:class:`Watermark` (the greatest (instant, tiebreak key) of the records committed) and the next
walk asks again from ``lower_bound``: the watermark floored to the filter's granularity, minus
an overlap. Records read twice are upserted by key, which is harmless; none is skipped.

The whole rule, for connector authors, is in docs/connectors.md ("The incremental rule").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from bridge.model import as_utc, from_iso, to_iso

__all__ = ["Watermark"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True, order=True)
class Watermark:
    """The greatest (instant, key) committed; ordered, so ``max`` advances it."""

    at: datetime
    key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", as_utc(self.at))

    def encode(self) -> str:
        return json.dumps({"at": to_iso(self.at), "key": self.key}, sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> Watermark:
        """A saved cursor back; ``ValueError`` if it is not one (a cursor of another format)."""
        try:
            data = json.loads(text)
            return cls(from_iso(data["at"]), str(data.get("key") or ""))
        except (TypeError, ValueError, KeyError, AttributeError):
            raise ValueError(f"{text[:80]!r} is not a saved watermark") from None

    def lower_bound(self, *, overlap: timedelta, granularity: timedelta = timedelta(seconds=1)) -> datetime:
        """Where the next walk starts: floored to the filter's granularity, minus ``overlap``."""
        step = granularity // timedelta(microseconds=1)
        micros = (self.at - _EPOCH) // timedelta(microseconds=1)
        floored = _EPOCH + timedelta(microseconds=micros - micros % step) if step > 0 else self.at
        return floored - overlap

    def advanced(self, at: datetime, key: str) -> Watermark:
        return max(self, Watermark(at, key))
