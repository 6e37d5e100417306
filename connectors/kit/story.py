"""One story for every sandbox: the same customers, tickets and situations in any helpdesk.

:func:`tell` makes a quarter of support tickets for three customers (ACME Ltd, Globex,
Initech), in canonical terms: who writes when, public replies and internal notes, waits on the
customer (the clock pauses), resolutions, reopenings, deletions, the slow answers that breach
targets, and handoffs from first line to the 2nd line (the OLAs' story). Each sandbox renders it
in its own vocabulary (Zendesk's ``pending`` is ``waiting_customer`` here), so the demo tells one
story across helpdesks and a connector's tests meet the same situations as every other's.
Seeded and deterministic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

__all__ = ["CUSTOMERS", "GROUPS", "PRIORITIES", "SERVICES", "TYPES", "Step", "TicketStory", "tell"]

CUSTOMERS = ("ACME Ltd", "Globex", "Initech")
GROUPS = ("Support", "2nd line")
TYPES = ("incident", "incident", "question", "problem", "task")
PRIORITIES = ("p1", "p2", "p3", "p3", "p4")  # canonical; normal work is the commonest
SERVICES = ("email", "vpn", "printing")
REQUESTERS = 20  # people per customer
AGENTS = 4  # agents who work tickets (the account sla-bridge uses is another)
HISTORY = timedelta(days=90)

Actor = Literal["requester", "agent", "admin"]


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happens to a ticket: a comment, a status change, or both."""

    at: datetime
    actor: Actor
    public: bool | None = None  # a comment: public (True) or an internal note (False); None: no comment
    status: str | None = None  # the canonical status the ticket moves to
    first: bool = False  # the step that creates the ticket
    delete: bool = False
    group: int | None = None  # the ticket is handed to this group (index into GROUPS)


@dataclass(frozen=True, slots=True)
class TicketStory:
    number: int
    customer: int  # index into CUSTOMERS
    created: datetime
    type: str
    priority: str
    requester: int  # index of the person, within the customer
    agent: int  # 1..AGENTS
    group: int  # index into GROUPS
    tag: str  # a service tag the requester's form set
    service: str  # the service field
    steps: tuple[Step, ...]


def _wait(rng: random.Random, mean: float) -> timedelta:
    return timedelta(seconds=int(rng.expovariate(1 / mean)) + 60)


def _escalated(steps: list[Step], group: int, rng: random.Random) -> list[Step]:
    """A third of the tickets first line takes are handed to the 2nd line after its first answer
    (the OLA story). Drawn from its own generator, so the rest of the story is the same with or
    without handoffs."""
    if group != 0 or len(steps) < 3 or rng.random() >= 1 / 3:
        return steps
    answer, after = steps[1], steps[2]
    at = answer.at + timedelta(seconds=rng.randrange(600, 7200))
    if at >= after.at:
        return steps
    return [*steps[:2], Step(at, "agent", group=1), *steps[2:]]


def tell(count: int, *, seed: int, latest: datetime) -> list[TicketStory]:
    """``count`` tickets created in the 90 days before ``latest``; nothing happens after it."""
    rng = random.Random(seed)
    stories = []
    for number in range(1, count + 1):
        customer = rng.randrange(len(CUSTOMERS))
        created = latest - timedelta(seconds=rng.randrange(int(HISTORY.total_seconds())))
        kind = rng.choice(TYPES)
        priority = rng.choice(PRIORITIES)
        requester = rng.randrange(REQUESTERS)
        agent = 1 + rng.randrange(AGENTS)
        group = rng.randrange(len(GROUPS))
        tag = rng.choice(SERVICES)
        service = rng.choice(SERVICES)
        at = created
        steps: list[Step] = [Step(at, "requester", public=True)]
        recent = latest - created < timedelta(days=10)  # only recent tickets may still be open
        if not recent or rng.random() < 0.92:
            at += _wait(rng, 7200)
            waiting = rng.random() < 0.4  # the agent asks the customer something
            steps.append(Step(at, "agent", public=True, status="waiting_customer" if waiting else "open"))
            if waiting:
                at += _wait(rng, 20000)
                steps.append(Step(at, "requester", public=True, status="open"))
                at += _wait(rng, 5400)
                steps.append(Step(at, "agent", public=True))
            if rng.random() < 0.15:
                at += timedelta(seconds=600)
                steps.append(Step(at, "agent", public=False))  # an internal note
            if not recent or rng.random() < 0.85:
                at += _wait(rng, 40000)
                steps.append(Step(at, "agent", status="resolved"))
                if rng.random() < 0.1:  # the customer writes again: reopened, then resolved again
                    at += _wait(rng, 80000)
                    steps.append(Step(at, "requester", public=True, status="open"))
                    at += _wait(rng, 9000)
                    steps.append(Step(at, "agent", public=True, status="resolved"))
        else:
            at += timedelta(seconds=300)
            steps.append(Step(at, "agent", status="open"))  # picked up, not answered yet
        steps = _escalated(steps, group, random.Random(seed * 1_000_003 + number))
        happened = []
        for index, step in enumerate(steps):
            if step.at > latest:
                break
            happened.append(Step(step.at, step.actor, step.public, step.status, first=index == 0, group=step.group))
        if rng.random() < 0.02:  # an admin deletes it (spam, a duplicate)
            happened.append(Step(min(at + timedelta(hours=1), latest), "admin", delete=True))
        stories.append(TicketStory(number, customer, created, kind, priority, requester, agent, group, tag, service,
                                   tuple(happened)))
    return stories
