"""Who was an agent when: a reply counts as the agent's by the author's role at the time it was written.

A helpdesk's user list says who is an agent *now*. An agent downgraded to end user keeps their
old replies, and those were agents' replies: reading them with today's list would turn met
first responses into breaches. So the core keeps, per source, the spans in which each user was
seen as an agent, observed run after run, and a connector asks :meth:`AgentRoster.was_agent`
with the reply's instant.

The first time a user is seen as an agent their span has no start: they may have been one long
before this store first looked (a new agent's first reply can land between two runs). A span
closes at the first observation that no longer lists the user; a user listed again later opens
a new span at that observation. The store keeps the spans (``agent_spans``); the pipeline loads
them into the connector before a pull and saves them after.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

__all__ = ["AgentRoster", "Span"]


@dataclass(slots=True)
class Span:
    user: str
    since: datetime | None  # None: before this store first looked
    until: datetime | None = None  # None: still an agent at the last observation


class AgentRoster:
    """Spans per user id. ``changed`` says whether :meth:`observe` altered anything to save."""

    def __init__(self, spans: Iterable[Span] = ()) -> None:
        self._spans: dict[str, list[Span]] = {}
        for span in spans:
            self._spans.setdefault(span.user, []).append(span)
        self.changed = False

    def observe(self, agents: Iterable[str | int], at: datetime) -> None:
        """The helpdesk lists ``agents`` as its agents at ``at``."""
        current = {str(agent) for agent in agents}
        for user in current:
            spans = self._spans.setdefault(user, [])
            if not spans:
                spans.append(Span(user, None))
                self.changed = True
            elif spans[-1].until is not None:
                spans.append(Span(user, at))  # listed again after a demotion
                self.changed = True
        for user, spans in self._spans.items():
            if user not in current and spans and spans[-1].until is None:
                spans[-1].until = at  # no longer listed: demoted (or removed) by now
                self.changed = True

    def was_agent(self, user: str | int | None, at: datetime) -> bool:
        """Whether ``user`` was an agent at ``at``, as far as the observations tell."""
        if user is None:
            return False
        return any((span.since is None or span.since <= at) and (span.until is None or at < span.until)
                   for span in self._spans.get(str(user), ()))

    def agents(self) -> set[str]:
        """Users who are agents at the last observation."""
        return {user for user, spans in self._spans.items() if spans and spans[-1].until is None}

    def spans(self) -> list[Span]:
        return [span for spans in self._spans.values() for span in spans]
