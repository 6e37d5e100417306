"""Evaluate: the clocks of the tickets that changed, of clocks still running, or of all of them.

Only tickets pulled (or given history) since the source's last evaluation, plus tickets with a
clock still running (their state moves with ``now``), plus everything when the policies or
calendars changed. Clocks are replaced per ticket; the mark moves only after all are stored, so
a killed evaluation is simply done again. Tickets created before the source's history horizon
are stored but not judged: their clocks would be guesses.

A source is judged as of the point its data is complete to (the mark ``complete_to:<source>``
the pull keeps), when that is before ``now``: no breach is declared on a due instant the data
cannot yet speak for; the clock stays running (or at risk) until the data catches up. The instant
used is saved as the mark ``evaluated_at:<source>`` and is each clock's ``evaluated_at``. A breach
credit is kept only while its clock is breached: one that stops being a breach (a late reply, a
canceled or deleted ticket, a policy without credits) is removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bridge.edges.store import Store, clock_row
from bridge.engine.credits import breach_credit_percent
from bridge.engine.evaluator import Clock, evaluate_ticket
from bridge.engine.policy import Policy
from bridge.engine.terms import CreditsConfig
from bridge.model import from_iso, to_iso
from bridge.pipeline.faults import crash_point
from bridge.pipeline.report import SourceStats

__all__ = ["evaluate_source", "evaluation_instant"]


def evaluation_instant(store: Store, source: str, now: datetime) -> datetime:
    """``now``, or the point ``source``'s data is complete to when that is earlier."""
    complete = store.mark(f"complete_to:{source}")
    return min(now, from_iso(complete)) if complete else now


def evaluate_source(store: Store, source: str, policies: Sequence[Policy], *, now: datetime, run_id: int,
                    stats: SourceStats) -> None:
    fingerprint = ",".join(sorted(p.version for p in policies))
    as_of = evaluation_instant(store, source, now)
    evaluated_at = to_iso(as_of)
    mark = store.mark(f"evaluated_run:{source}")
    since = None if mark is None or store.mark(f"policies:{source}") != fingerprint else int(mark)
    horizon_text = store.mark(f"history_from:{source}")
    horizon = from_iso(horizon_text) if horizon_text else None
    for chunk in store.ticket_id_chunks(source, pulled_after_run=since):
        with store.atomic():
            for ticket, events in store.load(chunk):
                judged: list[tuple[Policy, list[Clock]]] = []
                if horizon is None or ticket.created_at >= horizon:
                    judged = evaluate_ticket(ticket, events, policies, as_of)
                clocks = [clock for _, terms in judged for clock in terms]
                stats.clocks_changed += store.replace_clocks(ticket.id, [clock_row(c, evaluated_at) for c in clocks])
                _record_breach_credits(store, ticket.id, ticket.customer, judged, as_of)
                stats.tickets_evaluated += 1
    crash_point("evaluate:done")
    with store.atomic():
        store.set_mark(f"evaluated_run:{source}", str(run_id))
        store.set_mark(f"policies:{source}", fingerprint)
        store.set_mark(f"evaluated_at:{source}", evaluated_at)


def _record_breach_credits(store: Store, ticket_id: str, customer: str | None,
                           judged: Sequence[tuple[Policy, list[Clock]]], now: datetime) -> None:
    """The ticket's breach credits: one per breached sla clock under terms with credits, none for
    a clock no longer breached."""
    kept: list[str] = []
    for policy, clocks in judged:
        terms = policy.credits
        if terms is None or policy.kind != "sla":
            continue
        _credit_breaches(store, customer, policy, terms, clocks, kept, now)
    store.forget_breach_credits(ticket_id, kept)


def _credit_breaches(store: Store, customer: str | None, policy: Policy, terms: CreditsConfig, clocks: list[Clock],
                     kept: list[str], now: datetime) -> None:
    for clock in clocks:
        if not clock.breached:
            continue
        percent = breach_credit_percent(terms.per_breach, clock)
        credit_id = f"breach:{clock.ticket_id}:{clock.metric}:{clock.cycle}"
        kept.append(credit_id)
        store.record_breach_credit({
            "id": credit_id, "customer": customer, "period": None,
            "kind": "breach", "ticket_id": clock.ticket_id, "metric": clock.metric, "cycle": clock.cycle,
            "policy": policy.name, "percent": percent, "amount": round(terms.monthly_fee * percent / 100, 2),
            "currency": terms.currency, "reason": f"missed by {clock.overrun_seconds}s", "computed_at": to_iso(now),
        })
