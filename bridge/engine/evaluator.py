"""From a ticket and its history, where each SLA clock stands at ``now``.

Pure and deterministic: the same ticket, events, policies and ``now`` give the same clocks.

Metrics (each clock is one metric x cycle):

- ``first_response``: from creation until the first public agent reply after creation (an agent's
  comment at the creation instant opened the ticket; it is not a reply, as in Zendesk), or until
  the ticket is first resolved without one.
- ``next_response``: each customer message that follows an agent reply, while the ticket is not
  resolved, starts a cycle that runs until the next agent reply (or until the ticket is
  resolved). Further customer messages before that reply do not move it (as Zammad).
- ``resolution``: from creation until resolved. On reopen, ``on_reopen = "continue"`` resumes the
  same clock (the time spent resolved does not count); ``"new_cycle"`` starts a fresh cycle at the
  reopen, as JSM does.

Every clock is paused while the ticket is in one of the policy's ``pause_when`` statuses; a clock
that starts in such a status starts paused. A running clock's ``due_at`` assumes no further
pauses (the goal moves out if one comes, as in ServiceNow). Breached means elapsed > target
(``breach_on_equal`` makes equality a breach); the comparison is exact, never rounded.
``paused_seconds`` is business time the pauses took out of the clock.

The clocks are where they stand *as of* ``now``: an event after ``now`` has not happened yet (the
pipeline evaluates as of the instant the source's data is complete to, and what it pulled past
that instant is not yet the whole story).

A ticket that is ``canceled`` or ``deleted`` (as of ``now``) is void: every clock stopped when it
entered that status, or before, and is ``canceled``, neither met nor breached: it counts in no
success rate and earns no credit. A ticket reopened from such a status is judged as usual, the
time spent canceled counting like time spent resolved.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from bridge.engine.calendar import to_epoch
from bridge.engine.policy import Policy, select_policy
from bridge.engine.terms import METRICS
from bridge.model import Ticket, TicketEvent

__all__ = ["METRICS", "TERMINAL_STATUSES", "VOID_STATUSES", "Clock", "evaluate", "evaluate_ticket", "status_segments"]

TERMINAL_STATUSES = frozenset({"resolved", "closed", "canceled", "deleted"})
VOID_STATUSES = frozenset({"canceled", "deleted"})  # a ticket in one of these is out of the SLA's count

Span = tuple[datetime, datetime]


@dataclass(slots=True)
class Clock:
    ticket_id: str
    metric: str
    cycle: int
    policy: str
    policy_version: str
    state: str  # running, paused, met, breached, canceled
    target_seconds: int
    elapsed_seconds: int
    paused_seconds: int
    started_at: datetime
    stopped_at: datetime | None
    due_at: datetime
    breached_at: datetime | None
    at_risk: bool

    @property
    def breached(self) -> bool:
        return self.state == "breached"

    @property
    def overrun_seconds(self) -> int:
        """Business seconds past the target (0 when within it)."""
        return max(0, self.elapsed_seconds - self.target_seconds)


def status_segments(ticket: Ticket, events: Iterable[TicketEvent]) -> list[tuple[datetime, str]]:
    """The ticket's status over time: (from instant, status), starting at creation."""
    created = ticket.created_at
    changes = sorted((e for e in events if e.kind == "status" and e.to_value), key=lambda e: e.at)
    if not changes:
        if ticket.status in TERMINAL_STATUSES:
            # History is missing but the ticket is done: resolved at resolved_at, not at creation.
            done_at = ticket.resolved_at or ticket.updated_at
            return [(created, "open"), (max(done_at, created), ticket.status)]
        return [(created, ticket.status)]
    segments = [(created, changes[0].from_value or "new")]
    for change in changes:
        at, status = max(change.at, created), change.to_value or ""
        if status == segments[-1][1]:
            continue
        if at == segments[-1][0]:
            segments[-1] = (at, status)
        else:
            segments.append((at, status))
    return segments


def _spans_in(segments: Sequence[tuple[datetime, str]], statuses: frozenset[str], until: datetime) -> list[Span]:
    """Spans during which the status is one of ``statuses`` (the last one ends at ``until``)."""
    spans: list[Span] = []
    for index, (start, status) in enumerate(segments):
        if status not in statuses:
            continue
        end = segments[index + 1][0] if index + 1 < len(segments) else max(until, start)
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def evaluate_ticket(
    ticket: Ticket, events: Sequence[TicketEvent], policies: Sequence[Policy], now: datetime
) -> tuple[Policy | None, list[Clock]]:
    """The policy that applies to ``ticket`` and its clocks (none when no policy matches)."""
    policy = select_policy(policies, ticket)
    return policy, (evaluate(ticket, events, policy, now) if policy else [])


def evaluate(ticket: Ticket, events: Sequence[TicketEvent], policy: Policy, now: datetime) -> list[Clock]:
    """Every clock of ``ticket`` under ``policy`` at ``now``, in metric then cycle order."""
    to_epoch(now)  # refuses a naive ``now``
    horizon = max(now, ticket.created_at)
    # As of now: what came later has not happened yet. The statuses are cut from the whole history,
    # so the status a later change left from still holds until then.
    segments = [segment for segment in status_segments(ticket, events) if segment[0] <= horizon]
    events = [e for e in events if e.at <= horizon]
    done = _spans_in(segments, TERMINAL_STATUSES, horizon)
    agent_replies = sorted(e.at for e in events if e.kind == "agent_reply")
    still_done = bool(done) and _status_at(segments, horizon) in TERMINAL_STATUSES
    status_now = _status_at(segments, horizon)
    pause_spans = {statuses: _spans_in(segments, statuses, horizon)
                   for statuses in {policy.pauses_for(metric) for metric in ("first_response", "next_response", "resolution")}}
    # Resolved spans as (resolved at, reopened at | None while still resolved).
    runs = [(enter, None if still_done and i == len(done) - 1 else leave) for i, (enter, leave) in enumerate(done)]
    clocks: list[Clock] = []

    priorities = sorted(((e.at, e) for e in events if e.kind == "priority"), key=lambda change: change[0])

    def add(metric: str, cycle: int, start: datetime, stop: datetime | None, extra: Sequence[Span] = ()) -> None:
        # A finished clock keeps the goal it had when it stopped (Jira Service Management: a
        # completed cycle is not re-scored); only a running clock takes today's priority's.
        target = policy.target(metric, _priority_at(priorities, stop, ticket.priority) if stop is not None else ticket.priority)
        if target is None:
            return
        statuses = policy.pauses_for(metric)
        running_paused = stop is None and status_now in statuses
        clocks.append(_clock(policy, ticket.id, metric, cycle, target, start, stop, now, [*pause_spans[statuses], *extra],
                             running_paused))

    created = ticket.created_at
    first_reply = next((at for at in agent_replies if at > created), None)
    first_done = runs[0][0] if runs else None
    if policy.first_response_on_resolve == "pause":
        # Resolved without a reply: held while resolved; a reopen runs it on to the first reply.
        resolved_gaps = [(resolved_at, reopened_at) for resolved_at, reopened_at in runs if reopened_at is not None]
        add("first_response", 1, created, first_reply or (runs[-1][0] if still_done else None), resolved_gaps)
    else:
        add("first_response", 1, created, min(filter(None, (first_reply, first_done)), default=None))

    for cycle, (start, stop) in enumerate(_next_response_cycles(events, segments, done), 1):
        add("next_response", cycle, start, stop)

    if policy.on_reopen == "new_cycle":
        start, cycle = created, 1
        for resolved_at, reopened_at in runs:
            add("resolution", cycle, start, resolved_at)
            if reopened_at is None:
                break
            start, cycle = reopened_at, cycle + 1
        else:
            add("resolution", cycle, start, None)
    else:
        gaps = [(resolved_at, reopened_at) for resolved_at, reopened_at in runs if reopened_at is not None]
        add("resolution", 1, created, runs[-1][0] if still_done else None, gaps)
    if _status_at(segments, horizon) in VOID_STATUSES:
        # Every clock stopped when the ticket entered its terminal run of statuses, at the latest.
        return [_void(clock) for clock in clocks]
    return clocks


def _priority_at(changes: Sequence[tuple[datetime, TicketEvent]], moment: datetime, current: str | None) -> str | None:
    """The ticket's priority at ``moment``: set by the last change at or before it, else what the
    first change after it changed from; ``current`` where the history has no change."""
    before = [event for at, event in changes if at <= moment]
    if before:
        return before[-1].to_value
    after = [event for at, event in changes if at > moment]
    return after[0].from_value if after else current


def _void(clock: Clock) -> Clock:
    """A clock of a canceled or deleted ticket: stopped, neither met nor breached."""
    clock.state, clock.breached_at, clock.at_risk = "canceled", None, False
    return clock


def _status_at(segments: Sequence[tuple[datetime, str]], moment: datetime) -> str:
    index = bisect.bisect_right([start for start, _ in segments], moment) - 1
    return segments[max(index, 0)][1]


def _next_response_cycles(
    events: Sequence[TicketEvent], segments: Sequence[tuple[datetime, str]], done: Sequence[Span]
) -> list[tuple[datetime, datetime | None]]:
    timeline = sorted(
        [(e.at, 0 if e.kind == "agent_reply" else 1) for e in events if e.kind in ("agent_reply", "customer_reply")]
        + [(enter, 2) for enter, _ in done]
    )
    cycles: list[tuple[datetime, datetime | None]] = []
    agent_replied = False
    waiting_since: datetime | None = None
    for at, kind in timeline:
        if kind == 1:  # customer message
            if agent_replied and waiting_since is None and _status_at(segments, at) not in TERMINAL_STATUSES:
                waiting_since = at
            continue
        if waiting_since is not None:  # an agent reply, or the ticket resolved
            cycles.append((waiting_since, at))
            waiting_since = None
        if kind == 0:
            agent_replied = True
    if waiting_since is not None:
        cycles.append((waiting_since, None))
    return cycles


def _clock(
    policy: Policy,
    ticket_id: str,
    metric: str,
    cycle: int,
    target: int,
    start: datetime,
    stop: datetime | None,
    now: datetime,
    pauses: Sequence[Span],
    paused_now: bool,
) -> Clock:
    end = max(stop if stop is not None else now, start)
    calendar = policy.calendar
    clipped = [(max(s, start), min(e, end)) for s, e in pauses if min(e, end) > max(s, start)]
    elapsed = calendar.business_seconds(start, end, clipped)
    paused = calendar.business_seconds(start, end) - elapsed
    due = calendar.add_business_seconds(start, target, clipped)
    breached = elapsed > target or (policy.breach_on_equal and elapsed >= target)
    breached_at = calendar.add_business_seconds(start, target, clipped, due_at="close") if breached else None
    if stop is not None:
        state = "breached" if breached else "met"
    elif breached:
        state = "breached"
    else:
        state = "paused" if paused_now else "running"
    warn = policy.warn_at
    at_risk = stop is None and not breached and elapsed * warn.denominator >= warn.numerator * target
    return Clock(
        ticket_id=ticket_id,
        metric=metric,
        cycle=cycle,
        policy=policy.name,
        policy_version=policy.version,
        state=state,
        target_seconds=target,
        elapsed_seconds=elapsed,
        paused_seconds=paused,
        started_at=start,
        stopped_at=stop,
        due_at=due,
        breached_at=breached_at,
        at_risk=at_risk,
    )
