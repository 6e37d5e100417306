"""End to end over loopback: the real connector and CLI against the ServiceNow sandbox on a port,
and Zendesk, Jira and ServiceNow judged together under one policy."""

from __future__ import annotations

import json
import math
import sqlite3
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bridge.edges.store import Store
from bridge.pipeline.demo import source_table
from connectors.jira.sandbox import JiraSandbox
from connectors.kit.story import tell
from connectors.servicenow.sandbox import ServiceNowSandbox
from connectors.zendesk.sandbox import ZendeskSandbox
from tests.conftest import ONE_POLICY, Clock, pull_source, run_cli

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
NOW = "2026-11-01T12:00:00Z"
TABLE_API = "/api/now/table/"
AUDIT, CHOICES, ROLES = (TABLE_API + t for t in ("sys_audit", "sys_choice", "sys_user_has_role"))
PAGE, AUDIT_IDS = 500, 100  # records a page, and records per sys_audit request, as ServiceNow's docs advise them

def config_for(sandbox: ServiceNowSandbox, url: str, tmp_path: Path, secret_env: str = "SN_PASSWORD") -> Path:
    path = tmp_path / "sla-bridge.toml"
    path.write_text(ONE_POLICY + "\n" + source_table("sn", sandbox.source_config(url, secret_env)))
    return path


def by_route(requests: list[tuple[str, str, dict[str, list[str]]]]) -> Counter[str]:
    return Counter(f"{method} {path}" for method, path, _ in requests)


def live(sandbox: ServiceNowSandbox) -> list[dict[str, str]]:
    """The story's records still there, as they are now (copies), in the order a keyset walk reads them."""
    return sorted((dict(r) for r in sandbox.tables[sandbox.table].rows.values()), key=lambda r: (r["sys_updated_on"], r["sys_id"]))


# -- requests per 1,000 records ---------------------------------------------------------------


def test_1000_records_in_three_pages_ten_audit_requests_and_a_quiet_rerun_in_one(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock(ANCHOR)
    sandbox = ServiceNowSandbox(1000, seed=5, anchor=ANCHOR, clock=clock)
    monkeypatch.setenv("SN_PASSWORD", sandbox.password)
    records = len(sandbox.tables[sandbox.table].rows)  # deleted ones are gone, as on an instance
    assert records > 900
    with sandbox.serve() as url:
        config = config_for(sandbox, url, tmp_path)
        with Store.open(tmp_path / "store.db") as store:
            pull_source(config, store, "sn", clock.now)
            assert store.count("tickets") == records
            first = by_route(sandbox.requests)
            record_pages = first[f"GET {TABLE_API}incident"]
            # ceil(n/500) full or short pages, and at most the empty one that tells the walk it is done
            assert math.ceil(records / PAGE) <= record_pages <= math.ceil(records / PAGE) + 1
            audit_links = sum(1 for _, p, q in sandbox.requests if p == AUDIT and "sysparm_offset" in q)
            assert first[f"GET {AUDIT}"] == math.ceil(records / AUDIT_IDS) + audit_links
            assert first[f"GET {CHOICES}"] == 1 and first[f"GET {ROLES}"] == 1
            assert set(first) == {f"GET {TABLE_API}incident", f"GET {AUDIT}", f"GET {CHOICES}", f"GET {ROLES}"}
            # Every state change of the busiest record is in the store as one status event (its creation's included).
            busy = max(live(sandbox), key=lambda r: int(r["sys_mod_count"]))
            changes = [a for a in sandbox.tables["sys_audit"].rows.values() if a["documentkey"] == busy["sys_id"] and a["fieldname"] == "state"]
            assert len([e for e in store.events(f"sn:{busy['sys_id']}") if e.kind == "status"]) == len(changes) > 2

            # Nothing changes; a few minutes later the run reads the page covering the overlap and its history.
            clock.now += timedelta(minutes=5)
            seen = len(sandbox.requests)
            pull_source(config, store, "sn", clock.now)
            quiet = by_route(sandbox.requests[seen:])
            assert quiet[f"GET {TABLE_API}incident"] <= 2 and quiet[f"GET {AUDIT}"] <= 1
            assert quiet[f"GET {CHOICES}"] == 1 and quiet[f"GET {ROLES}"] == 1  # the look-ups, once a run
            assert sum(quiet.values()) <= 5

            # Three records change: the next run pulls them with their new history.
            open_ones = [n for n, s in sorted(sandbox.numbers.items()) if s in sandbox.tables["incident"].rows
                         and sandbox.tables["incident"].rows[s]["active"] == "true" and sandbox.tables["incident"].rows[s]["state"] != "6"]
            a, b, c = open_ones[:3]
            clock.now += timedelta(minutes=3)
            sandbox.customer_replies(a)
            sandbox.agent_replies(b, waiting=True)
            sandbox.agent_edits(c, short_description="Printer on fire (edited)")
            clock.now += timedelta(minutes=2)
            seen = len(sandbox.requests)
            pull_source(config, store, "sn", clock.now)
            changed = by_route(sandbox.requests[seen:])
            assert changed[f"GET {TABLE_API}incident"] <= 2 and changed[f"GET {AUDIT}"] <= 1
            assert store.count("tickets") == records
            ids = {n: sandbox.external_id(n) for n in (a, b, c)}
            edited, waiting, replied = (store.ticket(f"sn:{ids[n]}") for n in (c, b, a))
            assert edited is not None and edited.title == "Printer on fire (edited)"
            assert waiting is not None and waiting.status == "waiting_customer"
            assert replied is not None and store.events(f"sn:{ids[a]}")[-1].kind in ("customer_reply", "status")
            assert any(e.kind == "customer_reply" for e in store.events(f"sn:{ids[a]}"))


# -- the CLI across Zendesk, Jira and ServiceNow ------------------------------------------------


def judged_by_source(db: sqlite3.Connection) -> dict[str, int]:
    return dict(db.execute("select t.source, count(distinct c.ticket_id) from sla_clocks c join tickets t on t.id = c.ticket_id "
                           "where c.policy = 'one-contract' group by t.source").fetchall())


def test_sync_judges_zendesk_jira_and_servicenow_under_one_policy_and_a_rerun_writes_nothing(tmp_path: Path) -> None:
    zendesk = ZendeskSandbox.for_tests(300, anchor=ANCHOR)
    jira = JiraSandbox.for_tests(300, anchor=ANCHOR)
    servicenow = ServiceNowSandbox.for_tests(300, anchor=ANCHOR)
    env = {"ZD_TOKEN": zendesk.token, "JIRA_TOKEN": jira.token, "SN_PASSWORD": servicenow.password}
    with zendesk.serve() as zendesk_url, jira.serve() as jira_url, servicenow.serve() as servicenow_url:
        config = tmp_path / "sla-bridge.toml"
        config.write_text(ONE_POLICY + "\n" + source_table("zd", zendesk.source_config(zendesk_url, "ZD_TOKEN"))
                          + "\n" + source_table("jsm", jira.source_config(jira_url, "JIRA_TOKEN"))
                          + "\n" + source_table("sn", servicenow.source_config(servicenow_url, "SN_PASSWORD")))
        first = run_cli(config, "sync", "--now", NOW, "--json", env=env)
        assert first.returncode == 0, first.stderr
        report = json.loads(first.stdout)
        writes = (zendesk.writes(), jira.writes(), servicenow.writes())
        assert all(count > 0 for count in writes), report
        again = run_cli(config, "sync", "--now", NOW, "--json", env=env)
        assert again.returncode == 0, again.stderr
        assert (zendesk.writes(), jira.writes(), servicenow.writes()) == writes  # not one write request the second time
    db = sqlite3.connect(tmp_path / "store.db")
    judged = judged_by_source(db)
    assert judged.keys() == {"zd", "jsm", "sn"} and min(judged.values()) > 100, judged
    breached = dict(db.execute("select substr(ticket_id, 1, instr(ticket_id, ':') - 1), count(*) from sla_clocks "
                               "where state = 'breached' group by 1").fetchall())
    assert all(breached.get(source, 0) > 0 for source in ("zd", "jsm", "sn")), breached
    # ServiceNow: the write-back went to the status field and work notes; nothing customer-visible.
    assert servicenow.comments_by(servicenow.username) == []
    assert not any(entry["element"] == "comments" for entry in servicenow.api_journal)
    summary = servicenow.writeback_summary()
    assert summary.tickets_tagged > 0 and summary.notes
    assert all("[sla-bridge:sn:" in body for body in summary.notes)
    sent = [(m, p) for m, p, _ in servicenow.requests if m not in ("GET", "HEAD")]
    assert sent and set(sent) == {("POST", "/api/now/v1/batch")}  # 25 records a request, never one PATCH each


# -- a one-hour Retry-After --------------------------------------------------------------------


def test_a_one_hour_retry_after_stops_the_run_with_exit_3_and_the_next_resumes_from_the_saved_cursor(tmp_path: Path) -> None:
    clock = Clock(ANCHOR)
    sandbox = ServiceNowSandbox(700, seed=3, anchor=ANCHOR, clock=clock)
    records = live(sandbox)
    assert len(records) > PAGE  # two pages at least
    # The second records page meets a rate-limit rule's 429: an hour to wait, more than any run should.
    sandbox.inject("429", retry_after=3600, path=f"{TABLE_API}incident", after=1)
    env = {"SN_PASSWORD": sandbox.password}
    with sandbox.serve() as url:
        config = config_for(sandbox, url, tmp_path)
        first = run_cli(config, "sync", "--now", NOW, "--json", env=env)
        assert first.returncode == 3, first.stdout + first.stderr
        assert "429 Too Many Requests" in first.stderr and "waiting 3600s" in first.stderr, first.stderr  # the wait is named
        assert 429 in sandbox.statuses
        with Store.open(tmp_path / "store.db") as store:
            cursor = store.cursors("sn")["records"]
            held = store.count("tickets")
        assert cursor is not None and held == PAGE  # the first page, saved before the 429
        last = records[PAGE - 1]
        saved: dict[str, Any] = json.loads(cursor)
        assert saved["key"] == last["sys_id"] and saved["at"].startswith(last["sys_updated_on"].replace(" ", "T"))

        seen = len(sandbox.requests)
        clock.now += timedelta(hours=1)
        again = run_cli(config, "sync", "--now", "2026-11-01T13:00:00Z", "--json", env=env)
        assert again.returncode == 0, again.stderr
        resumed = [q["sysparm_query"][0] for _, p, q in sandbox.requests[seen:] if p == f"{TABLE_API}incident"]
        assert resumed[0].startswith("sys_updated_on>=")  # from the watermark (less the overlap), not from the start
        since = resumed[0].removeprefix("sys_updated_on>=")[:19]
        assert records[0]["sys_updated_on"] < since <= last["sys_updated_on"]  # the saved record is inside the overlap
    with Store.open(tmp_path / "store.db") as store:
        assert store.count("tickets") == len(records)


# -- the other task tables ----------------------------------------------------------------------


@pytest.mark.parametrize(("table", "waiting"), [("sn_customerservice_case", "waiting_customer"), ("sc_req_item", "on_hold")])
def test_cases_and_requested_items_pull_and_are_judged(table: str, waiting: str, tmp_path: Path) -> None:
    """The other task tables: their own states, caller and customer fields. A case's Awaiting Info
    waits on the customer; a requested item's Pending waits on an approval or a fulfilment step."""
    sandbox = ServiceNowSandbox(80, seed=7, anchor=ANCHOR, clock=lambda: ANCHOR, table=table)
    rows = sandbox.tables[table].rows
    assert rows and not sandbox.tables["incident"].rows
    held = next(n for n, s in sorted(sandbox.numbers.items()) if s in rows and rows[s]["active"] == "true")
    sandbox.agent_replies(held, ANCHOR - timedelta(minutes=3), waiting=True)
    with sandbox.serve() as url:
        config = config_for(sandbox, url, tmp_path)
        result = run_cli(config, "sync", "--now", NOW, "--json", env={"SN_PASSWORD": sandbox.password})
        assert result.returncode == 0, result.stderr
    assert sandbox.count(f"{TABLE_API}{table}", "GET") >= 1 and sandbox.count(f"{TABLE_API}incident") == 0
    db = sqlite3.connect(tmp_path / "store.db")
    assert db.execute("select count(*) from tickets where source = 'sn'").fetchone()[0] == len(rows)
    assert judged_by_source(db).get("sn", 0) > len(rows) // 2
    row = rows[sandbox.external_id(held)]
    caller, customer = sandbox.kind.caller, sandbox.kind.customer
    status, requester, named = db.execute("select status, requester, customer from tickets where external_id = ?", [row["sys_id"]]).fetchone()
    assert status == waiting
    assert requester == row[caller] and named == sandbox.tables[sandbox.tables[table].columns[customer].reference].rows[row[customer]]["name"]
    kinds = dict(db.execute("select kind, count(*) from ticket_events group by kind").fetchall())
    assert kinds.get("customer_reply", 0) > 0 and kinds.get("agent_reply", 0) > 0  # the caller's comments told from the agents'
    assert sandbox.comments_by(sandbox.username) == []


# -- assignment-group history (OLAs) -------------------------------------------------------------


def test_handed_off_tickets_reach_the_store_with_group_events_named_as_their_tickets_group(tmp_path: Path,
                                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The story hands tickets from Support to the 2nd line; a ticket also passes through a group
    that no record is in when pulled (named by one sys_user_group request), and one through a group
    deleted since (its sys_id kept, as BEHAVIOR.md says)."""
    clock = Clock(ANCHOR)
    sandbox = ServiceNowSandbox(200, seed=5, anchor=ANCHOR, clock=clock)
    monkeypatch.setenv("SN_PASSWORD", sandbox.password)
    rows = sandbox.tables["incident"].rows
    open_ones = [n for n, s in sorted(sandbox.numbers.items()) if s in rows and rows[s]["active"] == "true"
                 and rows[s]["assignment_group"] == sandbox.groups[0]]
    passing, deleted = open_ones[:2]
    sandbox.hand_off(passing, "Network", ANCHOR - timedelta(minutes=30))
    sandbox.hand_off(passing, "2nd line", ANCHOR - timedelta(minutes=20))
    gone = sandbox.hand_off(deleted, "Old team", ANCHOR - timedelta(minutes=25))
    sandbox.hand_off(deleted, "Support", ANCHOR - timedelta(minutes=15))
    sandbox.delete_group("Old team")
    with sandbox.serve() as url:
        config = config_for(sandbox, url, tmp_path)
        with Store.open(tmp_path / "store.db") as store:
            pull_source(config, store, "sn", clock.now)
    assert by_route(sandbox.requests)[f"GET {TABLE_API}sys_user_group"] == 1  # Network and Old team, in one request
    db = sqlite3.connect(tmp_path / "store.db")
    group_of = dict(db.execute("select external_id, \"group\" from tickets where source = 'sn'").fetchall())
    events: dict[str, list[tuple[str, str, str]]] = {}
    for ticket_id, from_value, to_value, at in db.execute(
            "select ticket_id, from_value, to_value, at from ticket_events where kind = 'group' order by ticket_id, at"):
        events.setdefault(ticket_id.removeprefix("sn:"), []).append((from_value, to_value, at))
    assert [(old, new) for old, new, _ in events[sandbox.external_id(passing)]] == [("Support", "Network"), ("Network", "2nd line")]
    assert [(old, new) for old, new, _ in events[sandbox.external_id(deleted)]] == [("Support", gone), (gone, "Support")]
    assert group_of[sandbox.external_id(passing)] == "2nd line" and group_of[sandbox.external_id(deleted)] == "Support"
    # The story's own handoffs: Support to the 2nd line, each at its step, and the ticket in the 2nd line since.
    stories = {s.number: s for s in tell(200, seed=5, latest=ANCHOR - timedelta(minutes=5))}
    handed = {sandbox.external_id(n): step.at for n, story in stories.items() for step in story.steps
              if step.group is not None and sandbox.numbers[n] in rows and n not in (passing, deleted)}
    assert len(handed) > 5
    for external_id, at in handed.items():
        assert events[external_id] == [("Support", "2nd line", at.strftime("%Y-%m-%dT%H:%M:%S.000Z"))], external_id
        assert group_of[external_id] == "2nd line"
    others = set(group_of) - set(handed) - {sandbox.external_id(passing), sandbox.external_id(deleted)}
    assert not others & set(events)  # no event at creation: a ticket never handed on has none
