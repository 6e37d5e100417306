"""Who was an agent when: a reply keeps the role its author had when it was written."""

from datetime import datetime, timedelta, timezone

from bridge.framework.roster import AgentRoster, Span

T0 = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
H = timedelta(hours=1)


def test_an_agent_seen_first_counts_for_replies_before_the_first_look():
    roster = AgentRoster()
    roster.observe([7], T0)
    # a new agent's first reply can land between two runs: it is an agent's reply
    assert roster.was_agent(7, T0 - 5 * H)
    assert roster.was_agent("7", T0 + H)
    assert not roster.was_agent(8, T0)
    assert not roster.was_agent(None, T0)


def test_a_downgraded_agent_keeps_old_replies_as_agent_replies_and_new_ones_as_customer():
    roster = AgentRoster()
    roster.observe([7, 9], T0)
    roster.observe([9], T0 + 3 * H)  # 7 is an end user now
    assert roster.was_agent(7, T0 + H)  # written while an agent
    assert not roster.was_agent(7, T0 + 4 * H)  # written after the demotion was seen
    assert roster.agents() == {"9"}


def test_promoted_again_opens_a_new_span():
    roster = AgentRoster()
    roster.observe([7], T0)
    roster.observe([], T0 + H)
    roster.observe([7], T0 + 5 * H)
    assert roster.was_agent(7, T0)
    assert not roster.was_agent(7, T0 + 2 * H)
    assert roster.was_agent(7, T0 + 6 * H)


def test_the_spans_survive_a_round_trip_and_only_changes_are_flagged():
    roster = AgentRoster()
    roster.observe([7], T0)
    roster.observe([], T0 + H)
    assert roster.changed
    again = AgentRoster(Span(s.user, s.since, s.until) for s in roster.spans())
    again.observe([], T0 + 2 * H)
    assert not again.changed  # nothing new: nothing to save
    assert again.was_agent(7, T0) and not again.was_agent(7, T0 + 2 * H)
