"""Write-back planning: the SLA view each ticket should show, minus what was already pushed.

Pure: tickets, clocks and the journal of past pushes in; :class:`WritebackPlan` s out. The view
of a ticket is its status field (``breached``, ``at_risk``, ``on_track`` or ``met``), two
managed tags (``<prefix>at_risk``, ``<prefix>breached``) and one internal note per breached clock
(ticket, metric, cycle), which carries a stable marker so it is posted once, ever. What a source
gets is what its ``writeback`` settings ask for, which the config loader has already fitted to
what the helpdesk can write; which tickets accept a write at all is the connector's call
(:meth:`~bridge.framework.contract.Connector.writable`). Only the difference from the journal is
planned, so a run with nothing new sends nothing.

Tags are compared with what sla-bridge itself last pushed, not with the ticket: an agent who
removes ``sla_at_risk`` by hand is not overruled until the SLA view itself changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.engine.durations import format_duration
from bridge.engine.evaluator import Clock
from bridge.framework.source import WritebackConfig
from bridge.model import TAGS_ITEM, Note, Ticket, WritebackPlan, field_item, note_item

__all__ = [
    "MARKER_PREFIX",
    "Pushed",
    "intents",
    "marker_clock",
    "note_marker",
    "note_text",
    "plan_ticket",
    "pushed_from_journal",
    "status_value",
]

MARKER_PREFIX = "sla-bridge"


@dataclass(frozen=True, slots=True)
class Pushed:
    """What the journal says was last pushed for one ticket (confirmed items only)."""

    fields: Mapping[str, Any] = field(default_factory=dict)  # field id -> value; absent: unknown, so (re)sent
    tags: frozenset[str] = frozenset()  # managed tags confirmed on the ticket
    maybe_tags: frozenset[str] = frozenset()  # ... plus those an unconfirmed push may have added
    notes: frozenset[str] = frozenset()  # markers


def note_marker(clock: Clock) -> str:
    return f"[{MARKER_PREFIX}:{clock.ticket_id}:{clock.metric}:{clock.cycle}]"


def marker_clock(marker: str) -> tuple[str, str, int]:
    """``[sla-bridge:zd:12:resolution:1]`` -> (``zd:12``, ``resolution``, 1)."""
    ticket_id, metric, cycle = marker.strip("[]").removeprefix(f"{MARKER_PREFIX}:").rsplit(":", 2)
    return ticket_id, metric, int(cycle)


def status_value(clocks: Sequence[Clock]) -> str:
    if any(c.breached for c in clocks):
        return "breached"
    if any(c.at_risk for c in clocks):
        return "at_risk"
    if any(c.stopped_at is None for c in clocks):
        return "on_track"
    return "met"


def note_text(clock: Clock, *, contract: str, credit: Mapping[str, Any] | None) -> str:
    """What an agent reads: which target, by how much, under which contract, and what it costs."""
    metric = clock.metric.replace("_", " ")
    lines = [
        f"SLA breach: {metric} target of {format_duration(clock.target_seconds)} (business time) "
        f"missed by {format_duration(clock.overrun_seconds)}.",
        f"Policy: {clock.policy}" + (f" ({contract})" if contract else "") + ".",
    ]
    if clock.breached_at is not None:
        lines.append(f"Breached at {clock.breached_at.strftime('%Y-%m-%d %H:%M UTC')}.")
    if credit and credit.get("percent"):
        lines.append(
            f"Service credit earned: {credit['percent']:g}% of the monthly fee = {credit['amount']:,.2f} {credit['currency']}."
        )
    lines.append(f"Ref: {note_marker(clock)}")
    return "\n".join(lines)


def plan_ticket(
    ticket: Ticket,
    clocks: Sequence[Clock],
    settings: WritebackConfig,
    pushed: Pushed,
    *,
    contract: str = "",
    credits: Mapping[tuple[str, int], Mapping[str, Any]] | None = None,
) -> WritebackPlan | None:
    """The plan for one writable ticket, or None when it already shows its SLA view."""
    plan = WritebackPlan(ticket=ticket)
    if settings.status_field and clocks:
        value = status_value(clocks)
        if pushed.fields.get(settings.status_field) != value:
            plan.set_fields[settings.status_field] = value
    if settings.tags:
        wanted = set()
        if any(c.at_risk for c in clocks):
            wanted.add(f"{settings.tag_prefix}at_risk")
        if any(c.breached for c in clocks):
            wanted.add(f"{settings.tag_prefix}breached")
        plan.add_tags = sorted(wanted - pushed.tags)
        plan.remove_tags = sorted((pushed.maybe_tags | pushed.tags) - wanted)
    if settings.notes:
        for clock in clocks:
            marker = note_marker(clock)
            if clock.breached and marker not in pushed.notes:
                credit = (credits or {}).get((clock.metric, clock.cycle))
                plan.notes.append(Note(marker=marker, body=note_text(clock, contract=contract, credit=credit)))
    return None if plan.is_empty() else plan


def pushed_from_journal(rows: Iterable[Mapping[str, Any]]) -> Pushed:
    """The journal's view of a ticket. An unconfirmed intent may or may not have landed: its field
    counts as unknown (sent again) and its tags as maybe present (removed if unwanted)."""
    fields: dict[str, Any] = {}
    tags: set[str] = set()
    maybe: set[str] = set()
    notes = set()
    for row in rows:
        item = row["item"]
        done = row["state"] in ("sent", "refused")
        if item.startswith("field:"):
            if done and row["value"] is not None:
                fields[item.removeprefix("field:")] = json.loads(row["value"])
        elif item == TAGS_ITEM:
            confirmed = set(json.loads(row["value"])) if row["value"] is not None else set()
            tags = confirmed
            maybe = confirmed | (set(json.loads(row["pending"])) if row.get("pending") else set())
        elif item.startswith("note:") and done:
            notes.add(item.removeprefix("note:"))
    return Pushed(fields=fields, tags=frozenset(tags), maybe_tags=frozenset(maybe | tags), notes=frozenset(notes))


def intents(plan: WritebackPlan, pushed: Pushed) -> list[tuple[str, str, str]]:
    """(ticket id, item, value to journal) for every item of ``plan``, in :meth:`~WritebackPlan.items` order."""
    entries = [(plan.ticket_id, field_item(field_id), json.dumps(value)) for field_id, value in plan.set_fields.items()]
    if plan.add_tags or plan.remove_tags:
        # the managed tags on the ticket once this push lands: confirmed ones, plus added, minus removed
        after = (set(pushed.tags) | set(plan.add_tags)) - set(plan.remove_tags)
        entries.append((plan.ticket_id, TAGS_ITEM, json.dumps(sorted(after))))
    entries += [(plan.ticket_id, note_item(note.marker), note.marker) for note in plan.notes]
    return entries
