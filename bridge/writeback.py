"""Write-back planning: the SLA view each ticket should show, minus what was already pushed.

Pure: tickets, clocks and the journal of past pushes in; :class:`WritebackPlan` s out. The view
of a ticket (not deleted, not closed) is its status field (``breached``, ``at_risk``, ``on_track`` or ``met``), two managed
tags (``<prefix>at_risk``, ``<prefix>breached``) and one internal note per breached clock
(ticket, metric, cycle), which carries a stable marker so it is posted once, ever. Only the
difference from the journal is planned, so a run with nothing new sends nothing.

Tags are compared with what sla-bridge itself last pushed, not with the ticket: an agent who
removes ``sla_at_risk`` by hand is not overruled until the SLA view itself changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.config import WritebackConfig
from bridge.durations import format_duration
from bridge.evaluator import Clock
from bridge.model import Note, Ticket, WritebackPlan

__all__ = ["Pushed", "note_marker", "note_text", "plan_ticket", "status_value"]

MARKER_PREFIX = "sla-bridge"


@dataclass(frozen=True, slots=True)
class Pushed:
    """What the journal says was last pushed for one ticket (confirmed items only)."""

    field: Any = None  # None: unknown, so a wanted value is (re)sent
    tags: frozenset[str] = frozenset()  # managed tags confirmed on the ticket
    maybe_tags: frozenset[str] = frozenset()  # ... plus those an unconfirmed push may have added
    notes: frozenset[str] = frozenset()  # markers


def note_marker(clock: Clock) -> str:
    return f"[{MARKER_PREFIX}:{clock.ticket_id}:{clock.metric}:{clock.cycle}]"


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
    """The plan for one ticket, or None when the ticket already shows its SLA view."""
    if ticket.status in ("deleted", "closed"):
        return None  # gone, or finished and (in Zendesk) read-only: nothing to write to
    plan = WritebackPlan(ticket_id=ticket.id, external_id=ticket.external_id, expected_version=ticket.version,
                         base_tags=list(ticket.tags))
    if settings.status_field and clocks:
        value = status_value(clocks)
        if value != pushed.field:
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
