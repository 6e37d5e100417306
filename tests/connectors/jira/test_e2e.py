"""End to end over loopback: the real connector and CLI against the Jira sandbox on a port, and
Zendesk and Jira judged together under one policy."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bridge.edges.store import Store
from bridge.pipeline.demo import source_table
from connectors.jira.sandbox import JiraSandbox
from connectors.zendesk.sandbox import ZendeskSandbox
from tests.conftest import ONE_POLICY, Clock, pull_source, run_cli

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
SEARCH, BULK = "/rest/api/3/search/jql", "/rest/api/3/changelog/bulkfetch"


def config_for(sandbox: JiraSandbox, url: str, tmp_path: Path, token_env: str = "JIRA_TOKEN") -> Path:
    path = tmp_path / "sla-bridge.toml"
    path.write_text('[store]\npath = "store.db"\n' + source_table("jira", sandbox.source_config(url, token_env)))
    return path


def paths(requests: list[tuple[str, str, dict[str, list[str]]]]) -> list[str]:
    return [path for _, path, _ in requests]


def test_1000_issues_in_ten_search_pages_and_a_quiet_rerun_in_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(ANCHOR)
    sandbox = JiraSandbox(1000, seed=5, anchor=ANCHOR, clock=clock, burst_per_second=None, issue_writes=None)
    monkeypatch.setenv("JIRA_TOKEN", sandbox.token)
    issues = len(sandbox.issues)  # deleted ones are gone from it, as from Jira
    cut_changelogs = [n for n, issue in sandbox.issues.items() if n not in sandbox.gone and len(issue.histories) > sandbox.inline_changelog]
    cut_comments = [n for n, issue in sandbox.issues.items() if n not in sandbox.gone and len(issue.comments) > sandbox.inline_comments]
    assert cut_changelogs, "the story should give some issues a history longer than the search embeds"
    with sandbox.serve() as url:
        config = config_for(sandbox, url, tmp_path)
        with Store.open(tmp_path / "store.db") as store:
            pull_source(config, store, "jira", clock.now)
            assert store.count("tickets") == issues
            first = paths(sandbox.requests)
            search_pages = first.count(SEARCH)
            assert search_pages == math.ceil(issues / 100)  # 100 issues a page, the page cap
            pages_with_cut = len({(n - 1) // 100 for n in cut_changelogs})  # issues come in id order here
            assert 1 <= first.count(BULK) <= pages_with_cut
            assert sum(p.endswith("/comment") for p in first) == len(cut_comments)
            assert first.count("/rest/api/3/field") == 1 and first.count("/rest/api/3/user/permission/search") >= 2
            # Every status change of an issue whose changelog the search cut is in the store.
            long_one = cut_changelogs[0]
            statuses = [h for h in sandbox.issues[long_one].histories if any(i.get("fieldId") == "status" for i in h.items)]
            stored = [e for e in store.events(f"jira:{long_one}") if e.kind == "status"]
            assert len(stored) == len(statuses)

            # Nothing changes; ten minutes later the next run reads one search page and nothing else per issue.
            clock.now += timedelta(minutes=10)
            seen = len(sandbox.requests)
            pull_source(config, store, "jira", clock.now)
            quiet = paths(sandbox.requests[seen:])
            assert quiet.count(SEARCH) == 1 and not any(p.endswith("/comment") for p in quiet)
            assert len(quiet) <= 1 + 1 + 2 + 1  # fields, search, two agent lists, at most one bulk changelog

            # Three issues change: the next run pulls them with their new history.
            a, b, c = [n for n, i in sorted(sandbox.issues.items()) if n not in sandbox.gone and i.status not in ("6", "10003")][:3]
            clock.now += timedelta(minutes=3)
            sandbox.customer_replies(a)
            sandbox.agent_replies(b, waiting=True)
            sandbox.agent_edits(c, labels=["vip", "escalated"])
            clock.now += timedelta(minutes=2)
            pull_source(config, store, "jira", clock.now)
            assert store.count("tickets") == issues
            assert sorted(store.ticket(f"jira:{c}").tags) == ["escalated", "vip"]
            assert store.ticket(f"jira:{b}").status == "waiting_customer"
            assert store.events(f"jira:{a}")[-1].kind in ("customer_reply", "status")


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])  # UTC+14 and UTC-11
def test_a_user_zone_far_from_utc_loses_nothing(zone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Changes every few minutes across an evening, pulled every quarter hour: every one arrives,
    whatever zone the API user's profile is in (JQL reads date literals in it; we send instants)."""
    clock = Clock(datetime(2026, 10, 24, 22, tzinfo=timezone.utc))  # and across Berlin's DST change (25 Oct, 01:00 UTC)
    sandbox = JiraSandbox(120, seed=9, anchor=clock.now, clock=clock, user_zone=zone, burst_per_second=None, issue_writes=None)
    monkeypatch.setenv("JIRA_TOKEN", sandbox.token)
    open_issues = [n for n, i in sorted(sandbox.issues.items()) if n not in sandbox.gone]
    with sandbox.serve() as url:
        config = config_for(sandbox, url, tmp_path)
        with Store.open(tmp_path / "store.db") as store:
            pull_source(config, store, "jira", clock.now)
            for step in range(24):  # six hours
                for offset in range(3):
                    clock.now += timedelta(minutes=5)
                    sandbox.agent_edits(open_issues[(step * 3 + offset) % len(open_issues)], labels=[f"step-{step}-{offset}"])
                pull_source(config, store, "jira", clock.now)
            for number in open_issues:
                assert store.ticket(f"jira:{number}").tags == sorted(sandbox.issues[number].labels), number


# -- the CLI across Zendesk and Jira -----------------------------------------------------------

def test_sync_judges_zendesk_and_jira_tickets_under_one_policy_and_a_rerun_writes_nothing(tmp_path: Path) -> None:
    zendesk = ZendeskSandbox.for_tests(300, anchor=ANCHOR)
    jira = JiraSandbox.for_tests(300, anchor=ANCHOR)
    env = {"ZD_TOKEN": zendesk.token, "JIRA_TOKEN": jira.token}
    with zendesk.serve() as zendesk_url, jira.serve() as jira_url:
        config = tmp_path / "sla-bridge.toml"
        config.write_text(ONE_POLICY + "\n" + source_table("zd", zendesk.source_config(zendesk_url, "ZD_TOKEN"))
                          + "\n" + source_table("jsm", jira.source_config(jira_url, "JIRA_TOKEN")))
        first = run_cli(config, "sync", "--now", "2026-11-01T12:00:00Z", "--json", env=env)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        writes = (zendesk.writes(), jira.writes())
        assert all(count > 0 for count in writes), report
        again = run_cli(config, "sync", "--now", "2026-11-01T12:00:00Z", "--json", env=env)
        assert again.returncode == 0, again.stderr
        assert (zendesk.writes(), jira.writes()) == writes  # not one write request the second time
    db = sqlite3.connect(tmp_path / "store.db")
    judged = dict(db.execute("select t.source, count(distinct c.ticket_id) from sla_clocks c join tickets t on t.id = c.ticket_id "
                             "where c.policy = 'one-contract' group by t.source").fetchall())
    assert judged.keys() == {"zd", "jsm"} and min(judged.values()) > 100
    breached = dict(db.execute("select substr(ticket_id, 1, instr(ticket_id, ':') - 1), count(*) from sla_clocks "
                               "where state = 'breached' group by 1").fetchall())
    assert breached.get("zd", 0) > 0 and breached.get("jsm", 0) > 0
    assert jira.public_comments_by(jira.bot) == []  # every note went in as internal
    noted = {marker for body in jira.writeback_summary().notes for marker in body.split() if marker.startswith("[sla-bridge:jsm:")}
    assert noted and all(m.startswith("[sla-bridge:jsm:") for m in noted)


def test_a_change_the_search_shows_late_is_pulled_by_a_later_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The search is eventually consistent: a change it does not show yet, while a later change
    it shows moves the watermark past it, is still inside the next run's overlap."""
    clock = Clock(ANCHOR)
    sandbox = JiraSandbox(60, seed=4, anchor=ANCHOR, clock=clock, burst_per_second=None, issue_writes=None)
    monkeypatch.setenv("JIRA_TOKEN", sandbox.token)
    late, prompt = [n for n, i in sorted(sandbox.issues.items()) if i.status not in ("6", "10003")][:2]
    with sandbox.serve() as url:
        config = config_for(sandbox, url, tmp_path)
        with Store.open(tmp_path / "store.db") as store:
            pull_source(config, store, "jira", clock.now)
            clock.now += timedelta(minutes=1)
            sandbox.search_lag = 300.0  # this change reaches the search index five minutes late
            sandbox.agent_edits(late, labels=["late"])
            sandbox.search_lag = 0.0
            clock.now += timedelta(minutes=1)
            sandbox.agent_edits(prompt, labels=["prompt"])
            clock.now += timedelta(minutes=1)
            pull_source(config, store, "jira", clock.now)
            assert store.ticket(f"jira:{prompt}").tags == ["prompt"]  # the watermark is past `late` now
            assert store.ticket(f"jira:{late}").tags != ["late"]  # not visible yet
            clock.now += timedelta(minutes=5)
            pull_source(config, store, "jira", clock.now)
            assert store.ticket(f"jira:{late}").tags == ["late"]


def test_handed_off_issues_reach_the_store_with_their_group_history_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The story's handoffs, a handoff whose changelog the search cuts (read through the bulk
    changelog), and one made between two runs: each is a `group` event in ticket_events, named
    as the ticket's group is."""
    clock = Clock(ANCHOR)
    sandbox = JiraSandbox(200, seed=5, anchor=ANCHOR, clock=clock, burst_per_second=None, issue_writes=None)
    monkeypatch.setenv("JIRA_TOKEN", sandbox.token)
    group = sandbox.field_ids["group"]

    def handoffs(number: int) -> list[str]:
        return [str(h.id) for h in sandbox.issues[number].histories if any(i.get("fieldId") == group for i in h.items)]

    handed = [n for n in sorted(sandbox.issues) if handoffs(n)]
    assert len(handed) >= 3
    cut = handed[0]
    sandbox.long_history(cut, 40)  # its handoff is now older than the 20 histories the search embeds
    later = next(n for n, i in sorted(sandbox.issues.items()) if i.group == 0 and not handoffs(n) and i.status not in ("6", "10003"))
    with sandbox.serve() as url:
        config = config_for(sandbox, url, tmp_path)
        with Store.open(tmp_path / "store.db") as store:
            pull_source(config, store, "jira", clock.now)
            clock.now += timedelta(minutes=3)
            sandbox.hand_off(later, 1)
            clock.now += timedelta(minutes=2)
            pull_source(config, store, "jira", clock.now)
    db = sqlite3.connect(tmp_path / "store.db")
    rows = db.execute("select ticket_id, event_id, from_value, to_value, author from ticket_events where kind = 'group' "
                      "order by ticket_id, at").fetchall()
    by_ticket: dict[str, list[tuple[str, str, str, str]]] = {}
    for ticket_id, event_id, before, after, author in rows:
        by_ticket.setdefault(ticket_id, []).append((event_id, before, after, author))
    assert set(by_ticket) == {f"jira:{n}" for n in [*handed, later]}
    for number in [*handed, later]:
        [history] = handoffs(number)
        agent = sandbox.issues[number].assignee
        assert by_ticket[f"jira:{number}"] == [(f"g{history}:1", "Support", "2nd line", agent)], number
    wanted = [f"jira:{n}" for n in [*handed, later]]
    groups = dict(db.execute(f'select id, "group" from tickets where id in ({",".join("?" * len(wanted))})', wanted).fetchall())
    assert set(groups.values()) == {"2nd line"}  # the ticket's group and the history's last name are one text
