"""Never a write silently lost: a refusal is reported, kept with its cause, and retried.

A refused item counts as done only while what it depended on (the write-back settings, the
ticket as pulled) is unchanged and its back-off (1 h, doubling, at most a day) runs; a source
where every write was refused ends partial (exit 3) saying what and why.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta
from typing import Any

import pytest

from bridge.engine.evaluator import Clock
from bridge.framework import registry
from bridge.framework.source import WritebackConfig
from bridge.model import Ticket, from_iso, to_iso
from bridge.pipeline.plan import plan_ticket, pushed_from_journal, refusal_backoff, refusal_cause
from bridge.pipeline.run import PHASES, run_pipeline
from connectors.kit.conformance import ANCHOR, TOKEN_ENV, World, markers, write_config
from connectors.zendesk.sandbox import ZendeskSandbox
from tests.framework.helpful import HelpfulConnector
from tests.framework.test_helpful import HelpfulFake
from tests.pipeline.test_sync import NOW, bridge_notes, cli
from tests.pipeline.test_sync import write_config as write_zendesk_config

SETTINGS = WritebackConfig(enabled=True, status_field="custom_field:9", tags=True, notes=True)
TICKET = Ticket("zd", "zendesk", "1", "#1", "t", "open", "open", ANCHOR, ANCHOR, version="v1")
BREACHED = Clock("zd:1", "resolution", 1, "p", "v", "breached", 3600, 7200, 0, ANCHOR, None, ANCHOR, ANCHOR, False)
MARKER = "[sla-bridge:zd:1:resolution:1]"


def refused(item: str, value: str, *, cause: str | None, retry_at: datetime | None, refusals: int = 1) -> dict[str, Any]:
    return {"item": item, "value": value, "pending": None, "state": "refused", "reason": "422 closed", "cause": cause,
            "retry_at": to_iso(retry_at) if retry_at else None, "refusals": refusals}


def near(text: str, moment: datetime) -> bool:
    """``text`` is ``moment`` give or take the seconds a run takes (the helpdesk's clock runs on from its Date)."""
    return abs(from_iso(text) - moment) < timedelta(seconds=30)


def replan(rows: list[dict[str, Any]], *, at: datetime = ANCHOR, settings: WritebackConfig = SETTINGS, ticket: Ticket = TICKET):
    pushed = pushed_from_journal(rows, causes=(refusal_cause(settings), refusal_cause(settings, ticket)), at=at)
    return plan_ticket(ticket, [BREACHED], settings, pushed)


def all_refused(retry_at: datetime | None, cause: str | None) -> list[dict[str, Any]]:
    return [refused("field:custom_field:9", '"breached"', cause=cause, retry_at=retry_at),
            refused("tags", '["sla_breached"]', cause=cause, retry_at=retry_at),
            refused(f"note:{MARKER}", MARKER, cause=cause, retry_at=retry_at)]


def test_a_refusal_holds_while_its_cause_is_unchanged_and_its_back_off_runs():
    holding = all_refused(ANCHOR + timedelta(hours=1), refusal_cause(SETTINGS, TICKET))
    assert replan(holding) is None  # nothing re-sent: reported once, not every run


@pytest.mark.parametrize("why", ["back-off over", "config changed", "ticket changed", "refused before causes were kept"])
def test_a_refusal_whose_cause_may_have_changed_is_planned_again(why):
    cause, retry_at, settings, ticket = refusal_cause(SETTINGS, TICKET), ANCHOR + timedelta(hours=1), SETTINGS, TICKET
    at = ANCHOR
    if why == "back-off over":
        at = ANCHOR + timedelta(hours=1, seconds=1)
    elif why == "config changed":
        settings = WritebackConfig(enabled=True, status_field="custom_field:10", tags=True, notes=True)
    elif why == "ticket changed":
        ticket = Ticket("zd", "zendesk", "1", "#1", "t", "open", "open", ANCHOR, ANCHOR, version="v2")
    else:
        cause, retry_at = None, None  # a row refused "for good" by an older sla-bridge
    plan = replan(all_refused(retry_at, cause), at=at, settings=settings, ticket=ticket)
    assert plan is not None
    assert plan.set_fields == {settings.status_field: "breached"}
    assert [n.marker for n in plan.notes] == [MARKER]
    assert plan.add_tags == ["sla_breached"] and plan.remove_tags == ["sla_at_risk"]  # tags unknown: every unwanted one goes


def test_the_back_off_doubles_up_to_a_day():
    assert [refusal_backoff(n) for n in range(7)] == [timedelta(hours=h) for h in (1, 2, 4, 8, 16, 24, 24)]


# -- against helpdesks --------------------------------------------------------------------------


def test_a_source_that_refuses_every_write_ends_partial_saying_what_and_why(tmp_path):
    box = ZendeskSandbox(200, seed=11, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=10_000)
    with box.serve() as url:
        config = write_zendesk_config(tmp_path, {"zd": (box, url)})
        assert cli(config, "pull", "--now", NOW).returncode == 0
        assert cli(config, "evaluate", "--now", NOW).returncode == 0
        for ticket in box.tickets.values():
            ticket["status"] = "closed" if ticket["status"] != "deleted" else "deleted"  # all closed meanwhile
        first = cli(config, "push", "--now", NOW, "--json")
        puts = box.count("", "PUT")
        second = cli(config, "push", "--now", NOW)
    assert first.returncode == 3
    stats = json.loads(first.stdout)["sources"]["zd"]
    field = "field:" + box.source_config(url, "X")["writeback"]["status_field"]
    assert stats["refused"][field] > 0 and stats["refused"]["note"] > 0 and stats["writes_sent"] == 0
    assert "closed prevents ticket update" in stats["refusal_reasons"]["note"]
    assert "every write this run was refused: " in stats["error"] and f"{field} ({stats['refused'][field]})" in stats["error"]
    assert "Error: source 'zd': every write this run was refused" in first.stderr
    assert second.returncode == 0 and box.count("", "PUT") == puts  # kept, not retried at once
    rows = sqlite3.connect(tmp_path / "store.db").execute(
        "select item, reason, cause, retry_at, refusals from writebacks where state = 'refused'").fetchall()
    assert rows and all(reason and cause and near(retry_at, ANCHOR + timedelta(hours=1)) and count == 1
                        for _, reason, cause, retry_at, count in rows)  # an hour after the helpdesk's clock


def test_a_status_field_the_helpdesk_refuses_is_reported_and_written_once_fixed(tmp_path):
    """Zendesk's connector stops the source on a field of ours it refuses (422 naming the field):
    nothing is marked done, the refusal is counted by field id, and each run tries again."""
    box = ZendeskSandbox(200, seed=11, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=10_000)
    with box.serve() as url:
        config = write_zendesk_config(tmp_path, {"zd": (box, url)})
        good = config.read_text()
        field = good.split('status_field = "')[1].split('"')[0]
        config.write_text(good.replace(field, "custom_field:999"))  # no such field in the account
        wrong = cli(config, "sync", "--now", NOW, "--json")
        again = cli(config, "sync", "--now", NOW, "--json")
        config.write_text(good)
        fixed = cli(config, "sync", "--now", NOW)
    for run in (wrong, again):
        assert run.returncode == 3
        stats = json.loads(run.stdout)["sources"]["zd"]
        assert stats["refused"] == {"field:custom_field:999": 1} and "Unknown ticket field 999" in stats["refusal_reasons"]["field:custom_field:999"]
        assert "sources.zd.writeback.status_field" in stats["error"]
    assert fixed.returncode == 0, fixed.stderr
    reference = ZendeskSandbox(200, seed=11, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=10_000)
    with reference.serve() as url:
        (tmp_path / "reference").mkdir()
        assert cli(write_zendesk_config(tmp_path / "reference", {"zd": (reference, url)}), "sync", "--now", NOW).returncode == 0
    notes = bridge_notes(box)
    assert notes and sorted(notes) == sorted(bridge_notes(reference))  # every note once the config was fixed, none twice
    left = sqlite3.connect(tmp_path / "store.db").execute("select count(*) from writebacks where state in ('intent', 'refused')")
    assert left.fetchone() == (0,)  # nothing left open or kept refused


@pytest.fixture
def helpful(tmp_path, monkeypatch):
    monkeypatch.setitem(registry._registry, "helpful", HelpfulConnector)
    fake = HelpfulFake(200, anchor=ANCHOR)
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    return World(fake, write_config(tmp_path, fake, "https://helpful.example"), tmp_path / "store.db")


def sync_at(world: World, at: datetime):
    world.fake._clock = lambda: at  # the helpdesk's clock (its Date header) moves with the run's
    return run_pipeline(world.config(), "sync", PHASES, store_path=world.store_path, now=at, transports={"src": world.fake.transport()})


def test_a_refused_note_is_retried_after_its_back_off_and_once_the_config_changes(helpful):
    world, fake = helpful, helpful.fake
    dry = run_pipeline(world.config(), "sync", PHASES, store_path=world.store_path, dry_run=True, now=ANCHOR,
                       transports={"src": fake.transport()}).plans["src"]
    number = int(next(plan.external_id for plan in dry if len(plan.notes) == 1))  # one note: one refusal to count
    fake.locked.add(number)  # this ticket refuses notes (422)

    first = sync_at(world, ANCHOR)
    assert first.exit_code == 0 and first.sources["src"].refused == {"note": 1}  # the rest was written
    assert f"ticket {number}" in first.sources["src"].refusal_reasons["note"]
    writes = fake.writes()
    assert sync_at(world, ANCHOR + timedelta(minutes=30)).total("writes_sent") == 0 and fake.writes() == writes

    later = sync_at(world, ANCHOR + timedelta(hours=1, minutes=1))  # the back-off is over: tried again
    assert fake.writes() == writes + 1
    assert later.exit_code == 3 and later.sources["src"].refused == {"note": 1}  # all it tried was refused
    assert "every write this run was refused: note (1)" in (later.sources["src"].error or "")
    row = world.db().execute("select refusals, retry_at from writebacks where ticket_id = ? and item like 'note:%' and state = 'refused'",
                             [f"src:{number}"]).fetchone()
    assert row[0] == 2 and near(row[1], ANCHOR + timedelta(hours=3, minutes=1))  # refused twice: two hours from the second

    fake.locked.clear()
    assert sync_at(world, ANCHOR + timedelta(hours=1, minutes=30)).total("notes_sent") == 0  # still backing off
    world.config_path.write_text(world.config_path.read_text().replace('status_field = "sla_status"',
                                                                       'status_field = "sla_status", tag_prefix = "sla-"'))
    changed = sync_at(world, ANCHOR + timedelta(hours=1, minutes=31))  # the write-back settings changed: retried now
    assert changed.exit_code == 0 and changed.total("notes_sent") == 1
    assert len(fake.notes[number]) == 1 and markers(fake).count(next(m for m in markers(fake) if f":{number}:" in m)) == 1


def test_a_canceled_ticket_is_not_marked_met():
    canceled = Clock("zd:1", "resolution", 1, "p", "v", "canceled", 3600, 60, 0, ANCHOR, ANCHOR, ANCHOR, None, False)
    plan = plan_ticket(TICKET, [canceled], SETTINGS, pushed_from_journal([]))
    assert plan is None or SETTINGS.status_field not in plan.set_fields
