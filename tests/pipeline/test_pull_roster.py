"""Who was an agent when is remembered from run to run (issue 9): an agent's reply pulled after
the agent was made an end user still counts as the agent's."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

from bridge.edges.store import Store
from connectors.zendesk.sandbox import AGENT_IDS
from tests.pipeline.test_pull_complete import ANCHOR, World, answered_ticket


def test_a_reply_pulled_after_its_author_was_downgraded_is_still_an_agents(tmp_path, monkeypatch):
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    world = World(tmp_path)
    assert world.sync(ANCHOR).exit_code == 0
    number, agent = answered_ticket(world), AGENT_IDS[2]
    world.clock = ANCHOR + timedelta(minutes=10)
    world.box.customer_replies(number, at=ANCHOR + timedelta(minutes=2))
    world.box.customer_replies(number, at=ANCHOR + timedelta(minutes=10), author=agent)  # answered in 8 minutes
    world.box.downgrade(agent)  # before the next run looks: today's agent list leaves them out

    assert world.sync(ANCHOR + timedelta(minutes=30)).exit_code == 0
    assert world.clock_state(number, "next_response") == "met"
    with Store.open(world.store_path) as store:
        spans = {user: (since, until) for user, since, until in store.agent_spans("zd")}
    assert spans[str(agent)][0] is None and spans[str(agent)][1] is not None  # an agent until this run looked
    assert spans[str(AGENT_IDS[1])] == (None, None)


def test_what_was_observed_is_kept_when_the_pull_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    monkeypatch.setattr("bridge.edges.http.time.sleep", lambda seconds: None)
    world = World(tmp_path)
    world.box.inject("500", times=10, path="/incremental/ticket_events")  # after the agent list was read
    assert world.sync(ANCHOR).exit_code == 3
    with sqlite3.connect(world.store_path) as db:
        users = {row[0] for row in db.execute("select user from agent_spans where source = 'zd'")}
    assert {str(agent) for agent in AGENT_IDS} <= users
