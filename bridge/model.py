"""The normalised model every connector maps its helpdesk onto, and the evaluator reads.

Plain dataclasses (the evaluator walks millions of them); pydantic stays at the edges. Every
instant is timezone-aware UTC: :func:`as_utc` refuses naive datetimes rather than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

__all__ = [
    "CANONICAL_STATUSES",
    "EVENT_KINDS",
    "MARKER_PREFIX",
    "PRIORITIES",
    "TAGS_ITEM",
    "EventKind",
    "Note",
    "Page",
    "QuarantinedRecord",
    "Ticket",
    "TicketEvent",
    "WritebackPlan",
    "as_utc",
    "field_item",
    "from_iso",
    "markers_in",
    "note_item",
    "to_iso",
]

CANONICAL_STATUSES = (
    "new",
    "open",
    "waiting_customer",
    "waiting_third_party",
    "on_hold",
    "resolved",
    "closed",
    "canceled",
    "deleted",
)
PRIORITIES = ("p1", "p2", "p3", "p4", "p5")
EVENT_KINDS = ("status", "priority", "group", "agent_reply", "customer_reply", "note")

# "group": the ticket moved between assignment groups (``from_value``/``to_value`` are the groups'
# names as the ticket's ``group`` carries them, None for no group). OLAs run on these.
# "note": an internal note carrying an sla-bridge marker (``to_value``), seen in the ticket's
# history. It moves no clock; it is the ticket's own record of which breach notes it holds.
EventKind = Literal["status", "priority", "group", "agent_reply", "customer_reply", "note"]

MARKER_PREFIX = "sla-bridge"
_MARKER = re.compile(r"\[" + MARKER_PREFIX + r":[^\[\]\s]+:\d+\]")


def markers_in(text: str | None) -> list[str]:
    """The sla-bridge note markers (``[sla-bridge:zd:12:resolution:1]``) in a comment's text."""
    return list(dict.fromkeys(_MARKER.findall(text or "")))


def as_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is a bug upstream, so it is refused."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: every instant must carry a time zone")
    return moment.astimezone(timezone.utc)


def to_iso(moment: datetime) -> str:
    """Fixed-width ISO-8601 UTC with milliseconds, so text order is time order in SQL."""
    moment = as_utc(moment)
    # strftime's %Y drops the leading zeros of years below 1000 on glibc ("1-01-01"), which
    # fromisoformat cannot read back: the year is formatted by hand.
    return f"{moment.year:04d}-" + moment.strftime("%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_iso(text: str) -> datetime:
    """Parse an ISO-8601 instant with an offset (``Z`` accepted); naive text is refused."""
    return as_utc(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass(slots=True)
class Ticket:
    """One ticket in the shape every helpdesk maps onto (see DESIGN.md, "The normalised model")."""

    source: str
    system: str
    external_id: str
    key: str
    title: str
    status: str
    status_raw: str
    created_at: datetime
    updated_at: datetime
    url: str = ""
    priority: str | None = None
    priority_raw: str | None = None
    customer: str | None = None
    requester: str | None = None
    assignee: str | None = None
    group: str | None = None
    service: str | None = None
    type: str | None = None
    resolved_at: datetime | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)  # tags (Zendesk) or labels (Jira), as pulled
    version: str | None = None  # the remote stamp that optimistic-concurrency writes send back

    @property
    def id(self) -> str:
        return f"{self.source}:{self.external_id}"


@dataclass(slots=True)
class TicketEvent:
    """One thing in a ticket's history that moves a clock.

    ``event_id`` is stable across pulls (the vendor's audit or comment id), so re-reading an
    overlapping page upserts instead of duplicating. ``status`` and ``priority`` events carry
    canonical ``from_value``/``to_value`` (raw values when unmapped), ``group`` events the group
    names; replies carry neither.
    """

    ticket_id: str
    event_id: str
    kind: EventKind
    at: datetime
    from_value: str | None = None
    to_value: str | None = None
    author: str | None = None


@dataclass(slots=True)
class QuarantinedRecord:
    """A raw record that could not be normalised, kept with the reason so nothing is lost."""

    source: str
    record_id: str
    reason: str
    raw: Any


@dataclass(slots=True)
class Page:
    """One page of a pull: what to store, and the cursor that resumes after it.

    The store commits the records and ``cursor`` in one transaction, so a crash repeats a page
    at worst and never skips one. ``cursor=None`` leaves the saved cursor as it is.
    """

    tickets: list[Ticket]
    events: list[TicketEvent]
    cursor: str | None
    quarantined: list[QuarantinedRecord] = field(default_factory=list)
    stream: str = "tickets"
    done: bool = False  # the source says there is nothing after this page for now


@dataclass(slots=True)
class Note:
    """An internal note; ``marker`` is stable per (ticket, metric, cycle) so it is posted once."""

    marker: str
    body: str


@dataclass(slots=True)
class WritebackPlan:
    """What to change on one source ticket: only the difference from what was last pushed.

    ``ticket`` is the ticket as pulled: its version stamp and tags are there for connectors whose
    writes are conditional on them. Each change is an *item* (:meth:`items`) that the journal
    keeps and the connector reports on: ``field:<field id>`` per field, ``tags``, and
    ``note:<marker>`` per note.
    """

    ticket: Ticket
    set_fields: dict[str, Any] = field(default_factory=dict)
    add_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def ticket_id(self) -> str:
        return self.ticket.id

    @property
    def external_id(self) -> str:
        return self.ticket.external_id

    def items(self) -> list[str]:
        names = [field_item(field_id) for field_id in self.set_fields]
        if self.add_tags or self.remove_tags:
            names.append(TAGS_ITEM)
        names += [note_item(note.marker) for note in self.notes]
        return names

    def is_empty(self) -> bool:
        return not (self.set_fields or self.add_tags or self.remove_tags or self.notes)


TAGS_ITEM = "tags"


def field_item(field_id: str) -> str:
    return f"field:{field_id}"


def note_item(marker: str) -> str:
    return f"note:{marker}"
