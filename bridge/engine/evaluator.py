"""From a ticket and its history, where each agreement's clocks stand at ``now``.

Pure and deterministic: the same ticket, events, policies and ``now`` give the same clocks. The
rules, and which vendor's engine each setting follows, are tabled in docs/sla-engine.md.

**Agreements.** A ticket carries one customer ``sla`` (the first sla policy that fits it), and
every ``ola`` and ``uc`` that fits it: an OLA's clocks run while the ticket is assigned to its
team (one cycle per assignment, so a handoff leaves the next team its full time), a UC's while
the ticket waits on a third party (one cycle per wait). Versions of the same agreement with
effective dates are chosen per clock: a cycle is judged by the terms in force when it started.

SLA metrics (each clock is one metric x cycle):

- ``first_response``: from creation until the first public agent reply after creation (an agent's
  comment at the creation instant opened the ticket; it is not a reply, as in Zendesk), or until
  the ticket is first resolved without one (``first_response_on_resolve = "stop"``); with
  ``"pause"`` the resolved spans are held and a reopen runs it on to the first reply.
- ``next_response``: each customer message that follows an agent reply, while the ticket is not
  resolved, starts a cycle that runs until the next agent reply (or until the ticket is
  resolved). Further customer messages before that reply do not move it (as Zammad).
- ``resolution``: from creation until resolved. On reopen, ``on_reopen = "continue"`` resumes the
  same clock (the time spent resolved does not count); ``"new_cycle"`` starts a fresh cycle at the
  reopen, as JSM does.
- ``periodic_update`` / ``pausable_update``: from each public agent reply until the next one (or
  until resolved): the agent owes an update every so often (Zendesk; Zammad's update time from
  the agent's last contact). The periodic one never pauses, the pausable one on waiting for the
  customer (Zendesk's Pending; on-hold keeps counting).
- ``requester_wait`` / ``agent_work``: creation to resolved, summed across reopens, paused on
  waiting for the customer (requester wait) or on any waiting or hold status (agent work).

``reset_on`` (ServiceNow's reset condition): a change of the ticket's group or priority while the
first response or resolution runs completes that cycle there, judged as it stands at the priority
it had (``reset_action = "cancel"``: voided instead, ServiceNow's default action), and starts a new
cycle at the change.

A clock is paused while the ticket is in one of the metric's pause statuses
(``Policy.pauses_for``); a clock that starts in such a status starts paused. A running clock's
``due_at`` assumes no further pauses (the goal moves out if one comes, as in ServiceNow). A
finished clock keeps the target of the priority it had when it stopped (JSM); a running one takes
today's. Breached means elapsed > target (``breach_on_equal`` makes equality a breach); the
comparison is exact unless ``round_percent`` asks for ServiceNow's rounded percentage.
``paused_seconds`` is business time the pauses took out of the clock. An SLA clock's
``attribution`` splits its business time between the teams that held the ticket, the waits on
the customer or while resolved (``paused``) and the waits on a third party; the parts add up to
``elapsed_seconds + paused_seconds``.

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
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from bridge.engine.calendar import to_epoch
from bridge.engine.policy import Policy, fits
from bridge.engine.terms import METRICS
from bridge.model import Ticket, TicketEvent

__all__ = [
    "METRICS",
    "TERMINAL_STATUSES",
    "VOID_STATUSES",
    "Clock",
    "evaluate",
    "evaluate_ticket",
    "group_segments",
    "status_segments",
]

TERMINAL_STATUSES = frozenset({"resolved", "closed", "canceled", "deleted"})
VOID_STATUSES = frozenset({"canceled", "deleted"})  # a ticket in one of these is out of the SLA's count
THIRD_PARTY = frozenset({"waiting_third_party"})

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
    agreement: str = "sla"  # sla, ola:TEAM or uc:VENDOR
    kind: str = "sla"
    started_by: str = ""  # what started the cycle, and what stopped it, in an agent's words
    stopped_by: str = ""
    pauses: tuple[Span, ...] = ()  # the spans it did not count, inside it (a tuple: the GC need not track it)
    attribution: dict[str, int] = field(default_factory=dict)  # business seconds: team:NAME, paused, third_party

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
    return _walk(created, changes[0].from_value or "new", ((change.at, change.to_value or "") for change in changes))


def group_segments(ticket: Ticket, events: Iterable[TicketEvent]) -> list[tuple[datetime, str | None]]:
    """The ticket's assignment group over time: (from instant, group or None), from creation.

    Before the first change the group is what that change changed from; without any change it is
    the ticket's group as pulled."""
    created = ticket.created_at
    changes = [e for e in events if e.kind == "group"]
    if not changes:
        return [(created, ticket.group)]
    changes.sort(key=lambda e: e.at)
    return _walk(created, changes[0].from_value, ((change.at, change.to_value) for change in changes))


_V = TypeVar("_V", str, str | None)


def _walk(created: datetime, first: _V, changes: Iterable[tuple[datetime, _V]]) -> list[tuple[datetime, _V]]:
    """(from instant, value) from creation through time-ordered changes: a change to the value
    already held is none, and of changes at one instant the last holds."""
    segments = [(created, first)]
    for moment, value in changes:
        at = max(moment, created)
        if value == segments[-1][1]:
            continue
        if at == segments[-1][0]:
            segments[-1] = (at, value)
        else:
            segments.append((at, value))
    return segments


def _spans_in(segments: Sequence[tuple[datetime, str | None]], values: frozenset[str | None], until: datetime) -> list[Span]:
    """Spans during which the value is one of ``values`` (the last one ends at ``until``)."""
    spans: list[Span] = []
    for index, (start, value) in enumerate(segments):
        if value not in values:
            continue
        end = segments[index + 1][0] if index + 1 < len(segments) else max(until, start)
        if spans and spans[-1][1] == start:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


def _value_at(segments: Sequence[tuple[datetime, str | None]], moment: datetime) -> str | None:
    index = bisect.bisect_right([start for start, _ in segments], moment) - 1
    return segments[max(index, 0)][1]


def _status_at(segments: Sequence[tuple[datetime, str]], moment: datetime) -> str:
    index = bisect.bisect_right([start for start, _ in segments], moment) - 1
    return segments[max(index, 0)][1]


class _Timeline:
    """What every agreement on one ticket reads: its statuses, replies and changes as of ``now``,
    worked out once however many policies judge it."""

    def __init__(self, ticket: Ticket, events: Sequence[TicketEvent], now: datetime) -> None:
        to_epoch(now)  # refuses a naive ``now``
        self.ticket, self.now = ticket, now
        self.horizon = horizon = max(now, ticket.created_at)
        # As of now: what came later has not happened yet. The statuses are cut from the whole
        # history, so the status a later change left from still holds until then.
        self.segments = [segment for segment in status_segments(ticket, events) if segment[0] <= horizon]
        self.all_events = events
        self.events = [e for e in events if e.at <= horizon]
        self.done = _spans_in(self.segments, TERMINAL_STATUSES, horizon)
        self.status_now = _status_at(self.segments, horizon)
        self.still_done = bool(self.done) and self.status_now in TERMINAL_STATUSES
        # Resolved spans as (resolved at, reopened at | None while still resolved).
        self.runs: list[tuple[datetime, datetime | None]] = [
            (enter, None if self.still_done and i == len(self.done) - 1 else leave) for i, (enter, leave) in enumerate(self.done)]
        self.agent_replies = sorted(e.at for e in self.events if e.kind == "agent_reply")
        self.priorities = sorted(((e.at, e) for e in self.events if e.kind == "priority"), key=lambda change: change[0])
        self.third_party = any(status in THIRD_PARTY for _, status in self.segments)
        self._pauses: dict[frozenset[str], list[Span]] = {}
        self._groups: list[tuple[datetime, str | None]] | None = None

    def pauses(self, statuses: frozenset[str]) -> list[Span]:
        spans = self._pauses.get(statuses)
        if spans is None:
            spans = self._pauses[statuses] = _spans_in(self.segments, statuses, self.horizon)
        return spans

    @property
    def groups(self) -> list[tuple[datetime, str | None]]:
        if self._groups is None:
            self._groups = [s for s in group_segments(self.ticket, self.all_events) if s[0] <= self.horizon]
        return self._groups

    def resets(self, fields: frozenset[str]) -> list[tuple[datetime, str]]:
        """The instants a reset field changed (after creation, as of now), with what changed."""
        found: list[tuple[datetime, str]] = []
        if "priority" in fields:
            found += [(at, f"priority {e.from_value or '-'} -> {e.to_value or '-'}") for at, e in self.priorities
                      if at > self.ticket.created_at and e.from_value != e.to_value]
        if "group" in fields:
            groups = self.groups
            found += [(at, f"reassigned {groups[i - 1][1] or '(no group)'} -> {group or '(no group)'}")
                      for i, (at, group) in enumerate(groups) if i > 0]
        return sorted(found)

    def is_done(self, moment: datetime) -> bool:
        return _status_at(self.segments, moment) in TERMINAL_STATUSES


def evaluate_ticket(
    ticket: Ticket, events: Sequence[TicketEvent], policies: Sequence[Policy], now: datetime
) -> list[tuple[Policy, list[Clock]]]:
    """Each agreement's terms that judge ``ticket`` with the clocks they judge (none left out when
    they judge none): the first sla policy that fits it, and every ola and uc that does. Of dated versions of one agreement, each
    clock goes to the first that fits the ticket and was in force when the clock started."""
    timeline = _Timeline(ticket, events, now)
    families: dict[str, list[Policy]] = {}
    settled: set[str] = set()  # agreements whose first fitting terms are undated: nothing after them counts
    for policy in policies:
        agreement = policy.agreement
        if agreement not in settled and fits(policy.match, ticket):
            families.setdefault(agreement, []).append(policy)
            if not policy.dated:
                settled.add(agreement)
    judged: list[tuple[Policy, list[Clock]]] = []
    for family in families.values():
        if not family[0].dated:
            clocks = _clocks(timeline, family[0])
            if clocks:
                judged.append((family[0], clocks))
            continue
        for policy in family:
            if _overlaps(policy, ticket.created_at, timeline.horizon):
                kept = [c for c in _clocks(timeline, policy) if _first_in_force(family, c.started_at) is policy]
                if kept:
                    judged.append((policy, kept))
            if not policy.dated:
                break  # in force always: no later version is ever reached
    return judged


def _overlaps(policy: Policy, start: datetime, end: datetime) -> bool:
    return (policy.effective_from is None or policy.effective_from <= end) and (
        policy.effective_to is None or policy.effective_to > start)


def _first_in_force(family: Sequence[Policy], moment: datetime) -> Policy | None:
    return next((policy for policy in family if policy.in_force(moment)), None)


def evaluate(ticket: Ticket, events: Sequence[TicketEvent], policy: Policy, now: datetime) -> list[Clock]:
    """Every clock of ``ticket`` under ``policy`` at ``now``, in metric then cycle order (the
    policy's dates and match are not consulted: :func:`evaluate_ticket` chooses)."""
    return _clocks(_Timeline(ticket, events, now), policy)


def _clocks(timeline: _Timeline, policy: Policy) -> list[Clock]:
    clocks = _sla_clocks(timeline, policy) if policy.kind == "sla" else _scoped_clocks(timeline, policy)
    if timeline.status_now in VOID_STATUSES:
        # Every clock stopped when the ticket entered its terminal run of statuses, at the latest.
        return [_void(clock) for clock in clocks]
    return clocks


class _Builder:
    """Makes one policy's clocks on one timeline."""

    def __init__(self, timeline: _Timeline, policy: Policy) -> None:
        self.timeline, self.policy = timeline, policy
        self.clocks: list[Clock] = []

    def add(self, metric: str, cycle: int, start: datetime, stop: datetime | None, extra: Sequence[Span] = (), *,
            started_by: str, stopped_by: str, reset: bool = False) -> None:
        timeline, policy = self.timeline, self.policy
        ticket = timeline.ticket
        # A finished clock keeps the goal it had when it stopped (Jira Service Management: a
        # completed cycle is not re-scored); only a running clock takes today's priority's. A
        # cycle a priority change reset ends at the priority it had before the change.
        priority = ticket.priority if stop is None else _priority_at(timeline.priorities, stop, ticket.priority, before=reset)
        target = policy.target(metric, priority)
        if target is None:
            return
        statuses = policy.pauses_for(metric)
        running_paused = stop is None and timeline.status_now in statuses
        clock = _clock(policy, ticket.id, metric, cycle, target, start, stop, timeline.now,
                       [*timeline.pauses(statuses), *extra], running_paused)
        clock.started_by, clock.stopped_by = started_by, stopped_by if stop is not None else ""
        if reset and policy.reset_action == "cancel":
            _void(clock)  # ServiceNow's reset action "cancel": the cycle counts for nothing
        if policy.kind == "sla":
            clock.attribution = _attribution(timeline, policy, clock)
        self.clocks.append(clock)


def _reopen_words(timeline: _Timeline, at: datetime) -> str:
    return "created" if at == timeline.ticket.created_at else "reopened"


def _sla_clocks(timeline: _Timeline, policy: Policy) -> list[Clock]:
    build = _Builder(timeline, policy)
    created, runs, still_done = timeline.ticket.created_at, timeline.runs, timeline.still_done
    resets = timeline.resets(policy.reset_on) if policy.reset_on else []
    first_reply = next((at for at in timeline.agent_replies if at > created), None)
    resolved_gaps = [(resolved_at, reopened_at) for resolved_at, reopened_at in runs if reopened_at is not None]

    if policy.first_response_on_resolve == "pause":
        # Resolved without a reply: held while resolved; a reopen runs it on to the first reply.
        stop = first_reply or (runs[-1][0] if still_done else None)
        cycles = [(created, stop, resolved_gaps, "created", "agent reply" if first_reply else "resolved")]
    else:
        first_done = runs[0][0] if runs else None
        stop = min(filter(None, (first_reply, first_done)), default=None)
        cycles = [(created, stop, [], "created", "agent reply" if stop is not None and stop == first_reply else "resolved")]
    for cycle, (start, stop, gaps, started_by, stopped_by, reset) in enumerate(_split(cycles, resets, timeline), 1):
        build.add("first_response", cycle, start, stop, gaps, started_by=started_by, stopped_by=stopped_by, reset=reset)

    for cycle, (start, stop) in enumerate(_next_response_cycles(timeline.events, timeline.segments, timeline.done), 1):
        build.add("next_response", cycle, start, stop, started_by="customer message",
                  stopped_by="agent reply" if stop in timeline.agent_replies else "resolved")

    if policy.on_reopen == "new_cycle":
        cycles = []
        start = created
        for resolved_at, reopened_at in runs:
            cycles.append((start, resolved_at, [], _reopen_words(timeline, start), "resolved"))
            if reopened_at is None:
                break
            start = reopened_at
        else:
            cycles.append((start, None, [], _reopen_words(timeline, start), ""))
    else:
        cycles = [(created, runs[-1][0] if still_done else None, resolved_gaps, "created", "resolved")]
    for cycle, (start, stop, gaps, started_by, stopped_by, reset) in enumerate(_split(cycles, resets, timeline), 1):
        build.add("resolution", cycle, start, stop, gaps, started_by=started_by, stopped_by=stopped_by, reset=reset)

    for metric in ("periodic_update", "pausable_update"):
        if metric in policy.targets:
            for cycle, (start, stop) in enumerate(_update_cycles(timeline), 1):
                build.add(metric, cycle, start, stop, started_by="agent reply",
                          stopped_by="agent reply" if stop in timeline.agent_replies else "resolved")
    for metric in ("requester_wait", "agent_work"):
        if metric in policy.targets:
            build.add(metric, 1, created, runs[-1][0] if still_done else None, resolved_gaps, started_by="created",
                      stopped_by="resolved")
    return build.clocks


_Cycle = tuple[datetime, datetime | None, list[Span], str, str]


def _split(cycles: Sequence[_Cycle], resets: Sequence[tuple[datetime, str]], timeline: _Timeline
           ) -> list[tuple[datetime, datetime | None, list[Span], str, str, bool]]:
    """The cycles with each running one cut where a reset field changed: it completes there and a
    new cycle starts at the change (a change while resolved resets nothing)."""
    out: list[tuple[datetime, datetime | None, list[Span], str, str, bool]] = []
    for start, stop, gaps, started_by, stopped_by in cycles:
        end = stop if stop is not None else timeline.horizon
        for at, what in resets:
            if not start < at < end or at > timeline.horizon or any(a <= at < b for a, b in gaps) or timeline.is_done(at):
                continue
            out.append((start, at, [g for g in gaps if g[0] < at], started_by, f"reset: {what}", True))
            start, started_by, gaps = at, f"reset: {what}", [g for g in gaps if g[1] > at]
        out.append((start, stop, gaps, started_by, stopped_by, False))
    return out


def _update_cycles(timeline: _Timeline) -> list[tuple[datetime, datetime | None]]:
    """From each public agent reply (after creation, while the ticket is open) to the next one, or
    to the ticket's resolve: the update the agent owes."""
    created = timeline.ticket.created_at
    replies = [at for at in timeline.agent_replies if at > created and not timeline.is_done(at)]
    resolves = [enter for enter, _ in timeline.done]
    cycles: list[tuple[datetime, datetime | None]] = []
    for index, at in enumerate(replies):
        following = replies[index + 1] if index + 1 < len(replies) else None
        resolved = next((r for r in resolves if r > at), None)
        ends = [moment for moment in (following, resolved) if moment is not None]
        cycles.append((at, min(ends) if ends else None))
    return cycles


def _scoped_clocks(timeline: _Timeline, policy: Policy) -> list[Clock]:
    """An OLA's clocks per assignment to its team, a UC's per wait on a third party."""
    if (policy.kind == "ola" and all(group != policy.team for _, group in timeline.groups)) or (
            policy.kind == "uc" and not timeline.third_party):
        return []  # never with this team, never waiting on a third party: nothing to judge
    build = _Builder(timeline, policy)
    live = _complement(timeline.done, timeline.ticket.created_at, timeline.horizon)
    if policy.kind == "ola":
        scope = _spans_in(timeline.groups, frozenset({policy.team}), timeline.horizon)
        windows = _intersect(scope, live)
        held_now = _value_at(timeline.groups, timeline.horizon) == policy.team and not timeline.still_done
    else:
        windows = timeline.pauses(THIRD_PARTY)
        held_now = timeline.status_now in THIRD_PARTY
    replies = timeline.agent_replies
    for cycle, (start, end) in enumerate(windows, 1):
        open_now = held_now and end >= timeline.horizon
        stop = None if open_now else end
        began = _ola_start(timeline, start, policy) if policy.kind == "ola" else f"waiting on {policy.third_party}"
        ended = _ola_end(timeline, end) if policy.kind == "ola" else f"no longer waiting on {policy.third_party}"
        if policy.kind == "ola" and "first_response" in policy.targets:
            reply = next((at for at in replies if start < at <= end), None)
            if reply is not None:
                build.add("first_response", cycle, start, reply, started_by=began, stopped_by="agent reply")
            else:
                build.add("first_response", cycle, start, stop, started_by=began, stopped_by=f"{ended} without a reply")
        build.add("resolution", cycle, start, stop, started_by=began, stopped_by=ended)
    build.clocks.sort(key=lambda clock: (METRICS.index(clock.metric), clock.cycle))
    return build.clocks


def _ola_start(timeline: _Timeline, at: datetime, policy: Policy) -> str:
    if at == timeline.ticket.created_at:
        return f"created assigned to {policy.team}"
    if any(leave == at for _, leave in timeline.done):
        return "reopened"
    return f"assigned to {policy.team}"


def _ola_end(timeline: _Timeline, at: datetime) -> str:
    if timeline.is_done(at):
        return "resolved"
    return f"handed to {_value_at(timeline.groups, at) or '(no group)'}"


def _complement(spans: Sequence[Span], start: datetime, end: datetime) -> list[Span]:
    out: list[Span] = []
    cursor = start
    for a, b in spans:
        if a > cursor:
            out.append((cursor, min(a, end)))
        cursor = max(cursor, b)
    if cursor < end:
        out.append((cursor, end))
    return [(a, b) for a, b in out if b > a]


def _intersect(left: Sequence[Span], right: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    i = j = 0
    while i < len(left) and j < len(right):
        a, b = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if b > a:  # an instant's assignment holds no time to judge
            out.append((a, b))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def _priority_at(changes: Sequence[tuple[datetime, TicketEvent]], moment: datetime, current: str | None, *,
                 before: bool = False) -> str | None:
    """The ticket's priority at ``moment`` (just before it, with ``before``): set by the last change
    at or before it, else what the first change after it changed from; ``current`` where the
    history has no change."""
    earlier = [event for at, event in changes if at < moment or (at == moment and not before)]
    if earlier:
        return earlier[-1].to_value
    later = [event for at, event in changes if at > moment or (at == moment and before)]
    return later[0].from_value if later else current


def _void(clock: Clock) -> Clock:
    """A clock of a canceled or deleted ticket: stopped, neither met nor breached."""
    clock.state, clock.breached_at, clock.at_risk = "canceled", None, False
    return clock


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


def _attribution(timeline: _Timeline, policy: Policy, clock: Clock) -> dict[str, int]:
    """Where the clock's business time went: ``team:NAME`` (or ``unassigned``) while a team held
    the ticket and the clock ran, ``third_party`` while it waited on one, ``paused`` while the
    clock did not count. Each part is the business time between two instants counted from the
    clock's start, so the parts add up to the whole exactly."""
    groups, segments, pauses = timeline.groups, timeline.segments, clock.pauses
    if len(groups) == 1 and not timeline.third_party:
        return _one_part(clock, _team(groups[0][1]), False)  # the common case: nothing to split
    start = clock.started_at
    end = max(clock.stopped_at if clock.stopped_at is not None else timeline.now, start)
    cuts = {start, end}
    cuts.update(at for at, _ in groups if start < at < end)
    # only a wait on a third party changes the part a status change moves time to
    cuts.update(at for i, (at, status) in enumerate(segments) if start < at < end and (
        status in THIRD_PARTY or segments[i - 1][1] in THIRD_PARTY))
    for a, b in pauses:
        cuts.update(moment for moment in (a, b) if start < moment < end)
    third_party = _status_at(segments, start) in THIRD_PARTY or any(
        status in THIRD_PARTY for at, status in segments if start < at < end)
    if len(cuts) == 2 or (not third_party and all(not start < at < end for at, _ in groups)):
        # One team all along and no wait on a third party: the clock's own two figures.
        return _one_part(clock, _team(_value_at(groups, start)), third_party)
    calendar = policy.calendar
    parts: dict[str, int] = {}
    points = sorted(cuts)
    counted = 0
    for a, b in itertools.pairwise(points):
        upto = calendar.business_seconds(start, b)
        piece, counted = upto - counted, upto
        if piece == 0:
            continue
        if any(p <= a < q for p, q in pauses):
            key = "paused"
        elif _status_at(segments, a) in THIRD_PARTY:
            key = "third_party"
        else:
            key = _team(_value_at(groups, a))
        parts[key] = parts.get(key, 0) + piece
    return parts


def _one_part(clock: Clock, team: str, third_party: bool) -> dict[str, int]:
    parts = {"third_party" if third_party else team: clock.elapsed_seconds} if clock.elapsed_seconds else {}
    if clock.paused_seconds:
        parts["paused"] = clock.paused_seconds
    return parts


def _team(group: str | None) -> str:
    return f"team:{group}" if group else "unassigned"


def _breach_limit(policy: Policy, target: int) -> int:
    """The elapsed business seconds at which a clock is breached.

    Exact: past the target (at it, with ``breach_on_equal``). With ``round_percent`` (ServiceNow),
    the share of the target rounded half up to two decimals must pass 100.00 % (reach it, with
    ``breach_on_equal``): ``e * 10000 / target + 1/2 >= 10000`` is ``e >= target * 19999 / 20000``.
    """
    if policy.round_percent:
        numerator = 19999 if policy.breach_on_equal else 20001
        return -(-target * numerator // 20000)
    return target if policy.breach_on_equal else target + 1


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
    clipped = [(max(s, start), min(e, end)) for s, e in pauses if min(e, end) > max(s, start)]
    limit = _breach_limit(policy, target)
    # The breach is dated where the target runs out (exact), or where the rounded share does.
    dated = limit if policy.round_percent else min(limit, target)
    elapsed, paused, due, breached_at = policy.calendar.clock(start, end, clipped, target, limit, dated)
    breached = breached_at is not None
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
        agreement=policy.agreement,
        kind=policy.kind,
        pauses=tuple(clipped),
    )
