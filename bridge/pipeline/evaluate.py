"""Evaluate: the clocks of the tickets that changed, of clocks still running, or of all of them.

Only tickets pulled (or given history) since the source's last evaluation, plus tickets with a
clock still running (their state moves with ``now``), plus everything when the policies or
calendars changed. Clocks are replaced per ticket; the mark moves only after all are stored, so
a killed evaluation is simply done again. Tickets created before the source's history horizon
are stored but not judged: their clocks would be guesses.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from bridge.edges.store import Store, clock_row
from bridge.engine.credits import breach_credit_percent
from bridge.engine.evaluator import Clock, evaluate_ticket
from bridge.engine.policy import Policy
from bridge.model import from_iso, to_iso
from bridge.pipeline.faults import crash_point
from bridge.pipeline.report import SourceStats

__all__ = ["evaluate_source"]


def evaluate_source(store: Store, source: str, policies: Sequence[Policy], *, now: datetime, run_id: int,
                    stats: SourceStats) -> None:
    fingerprint = ",".join(sorted(p.version for p in policies))
    started = to_iso(now)
    mark = store.mark(f"evaluated_run:{source}")
    since = None if mark is None or store.mark(f"policies:{source}") != fingerprint else int(mark)
    horizon_text = store.mark(f"history_from:{source}")
    horizon = from_iso(horizon_text) if horizon_text else None
    for chunk in store.ticket_id_chunks(source, pulled_after_run=since):
        with store.atomic():
            for ticket, events in store.load(chunk):
                clocks: list[Clock]
                policy: Policy | None
                if horizon is not None and ticket.created_at < horizon:
                    policy, clocks = None, []
                else:
                    policy, clocks = evaluate_ticket(ticket, events, policies, now)
                stats.clocks_changed += store.replace_clocks(ticket.id, [clock_row(c, started) for c in clocks])
                if policy is not None and policy.credits is not None:
                    _record_breach_credits(store, ticket.customer, policy, clocks, now)
                stats.tickets_evaluated += 1
    crash_point("evaluate:done")
    with store.atomic():
        store.set_mark(f"evaluated_run:{source}", str(run_id))
        store.set_mark(f"policies:{source}", fingerprint)


def _record_breach_credits(store: Store, customer: str | None, policy: Policy, clocks: list[Clock], now: datetime) -> None:
    terms = policy.credits
    assert terms is not None
    for clock in clocks:
        if not clock.breached:
            continue
        percent = breach_credit_percent(terms.per_breach, clock)
        store.record_breach_credit({
            "id": f"breach:{clock.ticket_id}:{clock.metric}:{clock.cycle}", "customer": customer, "period": None,
            "kind": "breach", "ticket_id": clock.ticket_id, "metric": clock.metric, "cycle": clock.cycle,
            "policy": policy.name, "percent": percent, "amount": round(terms.monthly_fee * percent / 100, 2),
            "currency": terms.currency, "reason": f"missed by {clock.overrun_seconds}s", "computed_at": to_iso(now),
        })
