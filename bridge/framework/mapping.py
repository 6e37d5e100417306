"""A helpdesk's own statuses and priorities onto the canonical ones, counting what is unmapped.

The connector gives its system's defaults (Zendesk: ``pending`` -> ``waiting_customer``); the
source's ``statuses``/``priorities`` tables add to or replace them. A value that neither maps is
kept raw (a status) or dropped (a priority), counted for the run's report, and never a crash; a
value that is not even text (a list, an object) is a malformed record, which the pull loop
quarantines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime

from bridge.edges.credentials import redact
from bridge.edges.logs import printable
from bridge.model import from_iso

__all__ = ["ValueMapper", "instant", "vendor_text"]


class ValueMapper:
    def __init__(self, *, statuses: Mapping[str, str], priorities: Mapping[str, str],
                 missing_status: str = "new") -> None:
        self.statuses = dict(statuses)
        self.priorities = dict(priorities)
        self.missing_status = missing_status
        self.unmapped: Counter[str] = Counter()

    def status(self, raw: object) -> str:
        if raw is None or raw == "":
            return self.missing_status
        text = _text(raw, "status")
        if text in self.statuses:
            return self.statuses[text]
        self.unmapped[f"status {text!r}"] += 1
        return text  # kept raw: reported, never a crash

    def priority(self, raw: object) -> str | None:
        if raw is None or raw == "":
            return None
        text = _text(raw, "priority")
        if text in self.priorities:
            return self.priorities[text]
        self.unmapped[f"priority {text!r}"] += 1
        return None


def _text(raw: object, what: str) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise ValueError(f"the {what} is {raw!r}, not a value")
    return str(raw)


def instant(text: object, what: str) -> datetime:
    """An ISO 8601 time with an offset from a raw record; ``ValueError`` naming ``what`` otherwise
    (the pull loop quarantines the record). Naive text is refused, never read as UTC."""
    if not isinstance(text, str):
        raise ValueError(f"{what} is {text!r}, not an ISO 8601 time")
    try:
        return from_iso(text)
    except ValueError as error:
        raise ValueError(f"{what} is unreadable ({error})") from None


def vendor_text(value: object, limit: int = 300) -> str:
    """Text a vendor sent (an error's description, a field's title), fit for a message: secrets
    masked before the cut, control characters made harmless, at most ``limit`` characters."""
    text = printable(redact(value if isinstance(value, str) else str(value)))
    return text[:limit] + ("..." if len(text) > limit else "")
