"""End to end over loopback: the real connector and CLI against the Zendesk sandbox on a port."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from bridge.config import load_config
from bridge.edges.store import Store
from bridge.pipeline.connect import open_connector
from connectors.zendesk.sandbox import SERVICE_FIELD, SLA_STATUS_FIELD, ZendeskSandbox
from tests.conftest import Clock, pages

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)


def config_for(url: str, tmp_path, start: str = "2026-06-01"):
    path = tmp_path / "sla-bridge.toml"
    path.write_text(
        f'[store]\npath = "store.db"\n[sources.zd]\nsystem = "zendesk"\nurl = "{url}"\nstart = "{start}"\n'
        'auth = { email = "sla-bot@example.com", token_env = "ZD_TOKEN" }\n'
    )
    return path


def pull_all(config, store: Store, now: datetime) -> None:
    connector = open_connector(config, "zd")
    cursors = store.cursors("zd")
    for page in pages(connector, cursors, now=now):
        store.save_page("zd", page)
    connector.http.client.close()


def test_5000_tickets_then_only_what_changed(tmp_path, monkeypatch):
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    clock = Clock(ANCHOR)
    sandbox = ZendeskSandbox(5000, seed=3, anchor=ANCHOR, clock=clock, export_limit_per_minute=1000)
    with sandbox.serve() as url:
        config = load_config(config_for(url, tmp_path))
        with Store.open(tmp_path / "store.db") as store:
            pull_all(config, store, clock.now)
            assert store.count("tickets") == 5000
            public_comments = sum(1 for comments in sandbox.comments.values() for c in comments if c["public"])
            status_changes = sum(1 for e in sandbox.events for c in e["child_events"] if "status" in c)
            assert store.count("ticket_events") >= public_comments + status_changes  # plus priority settings
            history_pages = math.ceil(len(sandbox.events) / 1000)
            assert sandbox.count("/incremental/tickets/cursor") == 5  # 1,000 tickets a page
            assert sandbox.count("/users") == 1
            assert history_pages <= sandbox.count("/incremental/ticket_events") <= history_pages + 1
            first_run = len(sandbox.requests)
            assert first_run <= 5 + 1 + history_pages + 1

            # Three tickets change; a minute later (the export's exclusion) the next run pulls only those.
            clock.now += timedelta(minutes=5)
            a, b, c = [n for n, t in sorted(sandbox.tickets.items()) if t["status"] in ("solved", "pending", "open")][:3]
            sandbox.customer_replies(a)
            sandbox.customer_replies(b)
            sandbox.agent_edits(c, tags=["vip", "escalated"])
            clock.now += timedelta(minutes=2)
            before = {row["id"]: row["pulled_at"] for row in store.db["tickets"].rows}
            pull_all(config, store, clock.now)
            second_run = sandbox.requests[first_run:]
            assert [path for _, path, _ in second_run] == [
                "/api/v2/incremental/tickets/cursor", "/api/v2/users", "/api/v2/incremental/ticket_events"]
            repulled = {row["id"] for row in store.db["tickets"].rows if row["pulled_at"] != before[row["id"]]}
            assert repulled == {f"zd:{a}", f"zd:{b}", f"zd:{c}"}
            assert store.count("tickets") == 5000
            assert store.ticket(f"zd:{c}").tags == ["vip", "escalated"]
            assert store.ticket(f"zd:{a}").status == "open"
            assert store.events(f"zd:{a}")[-1].kind in ("customer_reply", "status")


def test_fields_command_lists_what_to_map(tmp_path, monkeypatch, run):
    sandbox = ZendeskSandbox(5, anchor=ANCHOR, clock=lambda: ANCHOR)
    with sandbox.serve() as url:
        path = config_for(url, tmp_path)
        result = run("--config", str(path), "fields", "zd", env={"ZD_TOKEN": "sandbox-token"})
    assert result.exit_code == 0, result.output
    assert f"custom_field:{SERVICE_FIELD}" in result.stdout and "Service (email, vpn, printing)" in result.stdout
    assert "status        Status (new, open, pending, hold, solved, closed)" in result.stdout


def test_fields_for_an_unknown_source_names_the_known_ones(tmp_path, run):
    path = config_for("https://x.zendesk.com", tmp_path)
    result = run("--config", str(path), "fields", "zendesk")
    assert result.exit_code == 2 and "no source named 'zendesk' in the config; known: zd" in result.stderr


def test_check_online_against_the_sandbox(tmp_path, run):
    sandbox = ZendeskSandbox(5, anchor=ANCHOR, clock=lambda: ANCHOR)
    with sandbox.serve() as url:
        path = config_for(url, tmp_path)
        good = run("--config", str(path), "check", "--online", env={"ZD_TOKEN": "sandbox-token"})
        bad = run("--config", str(path), "check", "--online", env={"ZD_TOKEN": "wrong-token"})
    assert good.exit_code == 0, good.output
    assert "Source zd: credentials OK, authenticated as SLA Bot <sla-bot@example.com> (1 request(s))" in good.stdout
    assert bad.exit_code == 3 and "the credentials were refused (401 Unauthorized)" in bad.stdout
    assert "Couldn't authenticate you" in bad.stdout


@pytest.mark.parametrize("fault", ["503", "429_text", "malformed"])
def test_faults_are_survived(tmp_path, monkeypatch, fault):
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    monkeypatch.setattr("bridge.edges.http.time.sleep", lambda seconds: None)  # no real waiting in tests
    sandbox = ZendeskSandbox(50, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=1000)
    sandbox.inject(fault, times=2, path="/incremental/tickets", retry_after=1)
    with sandbox.serve() as url:
        config = load_config(config_for(url, tmp_path))
        with Store.open(tmp_path / "store.db") as store:
            pull_all(config, store, ANCHOR)
            assert store.count("tickets") == 50
    assert sandbox.count("/incremental/tickets/cursor") == 3  # two failures, then the page


def test_check_online_names_a_non_admin_and_a_status_drop_down_without_our_values(tmp_path, run):
    """`check --online` said "credentials OK" for an agent, and the first sync then failed on the exports."""
    sandbox = ZendeskSandbox(5, anchor=ANCHOR, clock=lambda: ANCHOR, role="agent")
    sandbox.status_drop_down(["breached", "green"])
    with sandbox.serve() as url:
        path = config_for(url, tmp_path)
        path.write_text(path.read_text() + f'writeback = {{ enabled = true, status_field = "custom_field:{SLA_STATUS_FIELD}" }}\n')
        result = run("--config", str(path), "check", "--online", env={"ZD_TOKEN": "sandbox-token"})
    assert result.exit_code == 3, result.output
    assert "credentials OK" not in result.stdout
    assert "sources.zd.auth: SLA Bot <sla-bot@example.com> is a Zendesk agent, not an admin" in result.stdout
    assert "sources.zd.writeback.status_field: drop-down" in result.stdout and "at_risk, on_track, met" in result.stdout
