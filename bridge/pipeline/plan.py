"""Write-back planning: the SLA view each ticket should show, minus what is already there.

Pure: tickets, clocks, the journal of past pushes and the markers the ticket's own history
shows in; :class:`WritebackPlan` s out. The view of a ticket is its status field (``breached``,
``at_risk``, ``on_track`` or ``met``), two managed tags (``<prefix>at_risk``,
``<prefix>breached``) and one internal note per breached clock (ticket, agreement, metric,
cycle), which carries a stable marker so it is posted once, ever. What a source gets is what its
``writeback`` settings ask for, which the config loader has already fitted to what the helpdesk
can write; which tickets accept a write at all is the connector's call
(:meth:`~bridge.framework.contract.Connector.writable`). Only the difference is planned, so a
run with nothing new sends nothing.

**The field and the tags are the customer's.** They say where the ticket's ``sla`` clocks stand:
an internal team's OLA or a vendor's underpinning contract running late does not make a ticket
"breached" for the customer. Their breaches are noted all the same, each note naming its
agreement (and its marker carrying it: :func:`note_marker`), with no service credit.

**The ticket is the truth about its notes.** A note is on the ticket when the journal says it
was sent *or* the ticket's pulled history shows its marker (``store.notes_seen``): a store
restored from a backup, deleted, or a second store on the same config finds the notes the
first one posted, and posts none again.

**A refusal holds while its cause does.** A refused item is kept with a *cause* (the write-back
settings, and for a refusal the ticket's version as pulled) and a time to retry: it counts as
done only while the cause is unchanged and the retry time is ahead, so a fixed config, a
changed ticket or the back-off (:func:`refusal_backoff`) each bring it back into the plan.

Tags are compared with what sla-bridge itself last pushed, not with the ticket: an agent who
removes ``sla_at_risk`` by hand is not overruled until the SLA view itself changes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bridge.engine.durations import format_duration
from bridge.engine.evaluator import Clock
from bridge.framework.source import WritebackConfig
from bridge.model import MARKER_PREFIX, TAGS_ITEM, Note, Ticket, WritebackPlan, field_item, from_iso, note_item

__all__ = [
    "REFUSAL_BACKOFF",
    "REFUSAL_BACKOFF_MAX",
    "Pushed",
    "agreement_slug",
    "customer_clocks",
    "intents",
    "marker_clock",
    "note_marker",
    "note_text",
    "notes_due",
    "plan_ticket",
    "pushed_from_journal",
    "refusal_backoff",
    "refusal_cause",
    "refusal_key",
    "status_value",
]

# A refused item is tried again after this long, doubling with each refusal, at most the max.
REFUSAL_BACKOFF = timedelta(hours=1)
REFUSAL_BACKOFF_MAX = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Pushed:
    """What is already on one ticket, as far as sla-bridge knows (confirmed items only)."""

    fields: Mapping[str, Any] = field(default_factory=dict)  # field id -> value; absent: unknown, so (re)sent
    tags: frozenset[str] = frozenset()  # managed tags confirmed on the ticket
    maybe_tags: frozenset[str] = frozenset()  # ... plus those an unconfirmed push may have added
    tags_unknown: bool = False  # a refused tags push is retried: any managed tag may be there
    notes: frozenset[str] = frozenset()  # markers: journaled as sent, or seen in the ticket's history
    refusals: Mapping[str, int] = field(default_factory=dict)  # item -> times the source refused it so far


def agreement_slug(agreement: str) -> str:
    """``ola:2nd line`` -> ``ola-2nd-line``: the agreement as a marker can carry it (no spaces,
    brackets or colons: :func:`bridge.model.markers_in` must find it, :func:`marker_clock` split it)."""
    kind, _, scope = agreement.partition(":")
    words = re.sub(r"[\W_]+", "-", scope.casefold()).strip("-")
    return f"{kind}-{words}" if words else kind


def note_marker(clock: Clock) -> str:
    """``[sla-bridge:zd:12:resolution:1]`` for an sla clock (the form notes on tickets already
    carry); another agreement's puts its slug before the metric: ``[sla-bridge:zd:12:ola-2nd-line.resolution:1]``."""
    metric = clock.metric if clock.kind == "sla" else f"{agreement_slug(clock.agreement)}.{clock.metric}"
    return f"[{MARKER_PREFIX}:{clock.ticket_id}:{metric}:{clock.cycle}]"


def marker_clock(marker: str) -> tuple[str, str, int]:
    """``[sla-bridge:zd:12:resolution:1]`` -> (``zd:12``, ``resolution``, 1). Another agreement's
    metric comes with its slug: ``ola-2nd-line.resolution``."""
    ticket_id, metric, cycle = marker.strip("[]").removeprefix(f"{MARKER_PREFIX}:").rsplit(":", 2)
    return ticket_id, metric, int(cycle)


def customer_clocks(clocks: Iterable[Clock]) -> list[Clock]:
    """The ticket's sla clocks: what its status field and tags reflect."""
    return [clock for clock in clocks if clock.kind == "sla"]


def status_value(clocks: Sequence[Clock]) -> str:
    if any(c.breached for c in clocks):
        return "breached"
    if any(c.at_risk for c in clocks):
        return "at_risk"
    if any(c.stopped_at is None for c in clocks):
        return "on_track"
    return "met"


def _breach_title(clock: Clock) -> str:
    scope = clock.agreement.partition(":")[2]
    if clock.kind == "ola":
        return f"OLA breach (team {scope})"
    if clock.kind == "uc":
        return f"Underpinning contract breach ({scope})"
    return "SLA breach"


def note_text(clock: Clock, *, contract: str, credit: Mapping[str, Any] | None) -> str:
    """What an agent reads: which agreement and target, by how much, under which contract, and
    what it costs (only the customer's sla carries credits)."""
    metric = clock.metric.replace("_", " ")
    lines = [
        f"{_breach_title(clock)}: {metric} target of {format_duration(clock.target_seconds)} (business time) "
        f"missed by {format_duration(clock.overrun_seconds)}.",
        f"Policy: {clock.policy}" + (f" ({contract})" if contract else "") + ".",
    ]
    if clock.breached_at is not None:
        lines.append(f"Breached at {clock.breached_at.strftime('%Y-%m-%d %H:%M UTC')}.")
    if credit and credit.get("percent") and clock.kind == "sla":
        lines.append(
            f"Service credit earned: {credit['percent']:g}% of the monthly fee = {credit['amount']:,.2f} {credit['currency']}."
        )
    lines.append(f"Ref: {note_marker(clock)}")
    return "\n".join(lines)


def notes_due(clocks: Sequence[Clock], pushed: Pushed) -> list[Clock]:
    """The breached clocks whose note is not on the ticket yet."""
    return [clock for clock in clocks if clock.breached and note_marker(clock) not in pushed.notes]


def plan_ticket(
    ticket: Ticket,
    clocks: Sequence[Clock],
    settings: WritebackConfig,
    pushed: Pushed,
    *,
    contract: str = "",
    credits: Mapping[tuple[str, int], Mapping[str, Any]] | None = None,
    hold_notes: bool = False,
    contracts: Mapping[str, str] | None = None,
) -> WritebackPlan | None:
    """The plan for one writable ticket, or None when it already shows its SLA view.

    ``credits`` are the sla clocks' by (metric, cycle); ``contracts`` the contract each policy
    cites, by policy name (``contract`` where it names none). ``hold_notes``: plan no note (the
    ticket's history is not known to be fresh, so a note may be on it already); fields and tags
    are idempotent and planned as ever.
    """
    plan = WritebackPlan(ticket=ticket)
    customer = customer_clocks(clocks)
    live = [c for c in customer if c.state != "canceled"]  # a canceled or deleted ticket's clocks say nothing of the SLA
    if settings.status_field and live:
        value = status_value(live)
        if pushed.fields.get(settings.status_field) != value:
            plan.set_fields[settings.status_field] = value
    if settings.tags:
        managed = {f"{settings.tag_prefix}at_risk", f"{settings.tag_prefix}breached"}
        wanted = set()
        if any(c.at_risk for c in customer):
            wanted.add(f"{settings.tag_prefix}at_risk")
        if any(c.breached for c in customer):
            wanted.add(f"{settings.tag_prefix}breached")
        plan.add_tags = sorted(wanted - pushed.tags)
        maybe = pushed.maybe_tags | pushed.tags | (managed if pushed.tags_unknown else set())
        plan.remove_tags = sorted(maybe - wanted)
    if settings.notes and not hold_notes:
        for clock in notes_due(clocks, pushed):
            credit = (credits or {}).get((clock.metric, clock.cycle)) if clock.kind == "sla" else None
            cited = (contracts or {}).get(clock.policy, contract)
            plan.notes.append(Note(marker=note_marker(clock), body=note_text(clock, contract=cited, credit=credit)))
    return None if plan.is_empty() else plan


def refusal_cause(settings: WritebackConfig, ticket: Ticket | None = None) -> str:
    """What a refusal depended on: the write-back settings (one request carries every item, so a
    wrong ``status_field`` refuses the note too) and, when given, the ticket's version as pulled."""
    cause = json.dumps({"status_field": settings.status_field, "tags": bool(settings.tags), "tag_prefix": settings.tag_prefix,
                        "notes": bool(settings.notes)}, sort_keys=True, separators=(",", ":"))
    if ticket is not None:
        cause += "@" + (ticket.version or ticket.updated_at.isoformat())
    return cause


def refusal_backoff(refusals: int) -> timedelta:
    """How long to wait before retrying an item refused ``refusals`` times before this one."""
    return min(REFUSAL_BACKOFF * (1 << min(max(refusals, 0), 16)), REFUSAL_BACKOFF_MAX)


def refusal_key(item: str) -> str:
    """How refusals are counted in a run's report: a field by its id, ``tags``, every note as ``note``."""
    return "note" if item.startswith("note:") else item


def _refusal_holds(row: Mapping[str, Any], causes: Collection[str], at: datetime | None) -> bool:
    if at is None or not row.get("cause") or row["cause"] not in causes or not row.get("retry_at"):
        return False
    try:
        return from_iso(row["retry_at"]) > at
    except ValueError:
        return False


def pushed_from_journal(
    rows: Iterable[Mapping[str, Any]],
    *,
    seen: Collection[str] = (),
    causes: Collection[str] = (),
    at: datetime | None = None,
) -> Pushed:
    """What is on a ticket: the journal's view, plus the markers its history shows (``seen``).

    An unconfirmed intent may or may not have landed: its field counts as unknown (sent again)
    and its tags as maybe present (removed if unwanted). A refused item counts as done only while
    the refusal's cause is one of ``causes`` and its retry time is after ``at``; otherwise it is
    planned again.
    """
    fields: dict[str, Any] = {}
    tags: set[str] = set()
    maybe: set[str] = set()
    tags_unknown = False
    notes = set(seen)
    refusals: dict[str, int] = {}
    for row in rows:
        item, state = row["item"], row["state"]
        if row.get("refusals"):
            refusals[item] = int(row["refusals"])
        done = state == "sent" or (state == "refused" and _refusal_holds(row, causes, at))
        if item.startswith("field:"):
            if done and row["value"] is not None:
                fields[item.removeprefix("field:")] = json.loads(row["value"])
        elif item == TAGS_ITEM:
            # A refusal keeps what was asked in `value`: while it holds, that stands for the ticket.
            confirmed = set(json.loads(row["value"])) if row["value"] is not None else set()
            if (state == "refused" and not done) or (state == "intent" and row.get("refusals")):
                # Retried after a refusal: `value` is what was asked, not what is on the ticket.
                tags, maybe, tags_unknown = set(), confirmed, True
            else:
                tags = confirmed
                maybe = confirmed | (set(json.loads(row["pending"])) if row.get("pending") else set())
        elif item.startswith("note:") and done:
            notes.add(item.removeprefix("note:"))
    return Pushed(fields=fields, tags=frozenset(tags), maybe_tags=frozenset(maybe | tags), tags_unknown=tags_unknown,
                  notes=frozenset(notes), refusals=refusals)


def intents(plan: WritebackPlan, pushed: Pushed) -> list[tuple[str, str, str]]:
    """(ticket id, item, value to journal) for every item of ``plan``, in :meth:`~WritebackPlan.items` order."""
    entries = [(plan.ticket_id, field_item(field_id), json.dumps(value)) for field_id, value in plan.set_fields.items()]
    if plan.add_tags or plan.remove_tags:
        # the managed tags on the ticket once this push lands: confirmed ones, plus added, minus removed
        after = (set(pushed.tags) | set(plan.add_tags)) - set(plan.remove_tags)
        entries.append((plan.ticket_id, TAGS_ITEM, json.dumps(sorted(after))))
    entries += [(plan.ticket_id, note_item(note.marker), note.marker) for note in plan.notes]
    return entries
