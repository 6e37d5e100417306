"""The sandbox itself: deterministic data, Zendesk's limits and errors, faults on demand."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx

from bridge.config import load_config
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.edges.store import Store
from connectors.zendesk import ZendeskConnector
from connectors.zendesk.sandbox import ZendeskSandbox
from tests.conftest import pages

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
AUTH = {"Authorization": "Basic c2xhLWJvdEBleGFtcGxlLmNvbS90b2tlbjpzYW5kYm94LXRva2Vu"}  # sla-bot@example.com/token:sandbox-token


def client_for(sandbox: ZendeskSandbox) -> httpx.Client:
    return httpx.Client(base_url="https://sandbox.zendesk.com", transport=sandbox.transport(), headers=AUTH)


def test_same_seed_same_data():
    one, two = (ZendeskSandbox(300, seed=9, anchor=ANCHOR, clock=lambda: ANCHOR) for _ in range(2))
    assert one.tickets == two.tickets and one.events == two.events
    assert ZendeskSandbox(300, seed=10, anchor=ANCHOR, clock=lambda: ANCHOR).tickets != one.tickets


def test_nothing_from_the_last_minute_is_exported():
    sandbox = ZendeskSandbox(20, anchor=ANCHOR, clock=lambda: ANCHOR)
    sandbox.customer_replies(3, at=ANCHOR - timedelta(seconds=30))
    with client_for(sandbox) as client:
        tickets = client.get("/api/v2/incremental/tickets/cursor.json", params={"start_time": 0}).json()["tickets"]
        too_recent = client.get("/api/v2/incremental/ticket_events.json", params={"start_time": int(ANCHOR.timestamp()) - 10})
    assert 3 not in {t["id"] for t in tickets} and len(tickets) == 19
    assert too_recent.status_code == 400 and "too recent" in too_recent.json()["description"]


def test_zendesk_error_bodies():
    sandbox = ZendeskSandbox(5, anchor=ANCHOR, clock=lambda: ANCHOR)
    with client_for(sandbox) as client:
        missing = client.get("/api/v2/tickets/999.json")
        anonymous = client.get("/api/v2/users/me.json", headers={"Authorization": "Basic bm9ib2R5"})
        invalid = client.put("/api/v2/tickets/1.json", json={"ticket": {"custom_fields": [{"id": 1, "value": "x"}]}})
    assert (missing.status_code, missing.json()) == (404, {"error": "RecordNotFound", "description": "Not found"})
    assert (anonymous.status_code, anonymous.json()) == (401, {"error": "Couldn't authenticate you"})
    assert invalid.status_code == 422 and invalid.json()["error"] == "RecordInvalid"


def test_export_limit_answers_429_with_retry_after_and_rate_headers():
    now = [ANCHOR]
    sandbox = ZendeskSandbox(5, anchor=ANCHOR, clock=lambda: now[0], export_limit_per_minute=3)
    with client_for(sandbox) as client:
        answers = [client.get("/api/v2/incremental/tickets/cursor.json", params={"start_time": 0}) for _ in range(4)]
        now[0] += timedelta(seconds=61)
        later = client.get("/api/v2/incremental/tickets/cursor.json", params={"start_time": 0})
    assert [a.status_code for a in answers] == [200, 200, 200, 429] == sandbox.statuses[:4]
    assert answers[2].headers["Zendesk-RateLimit-incremental-exports"] == "total=3; remaining=0; resets=60"
    assert answers[3].headers["Retry-After"] == "60" and answers[3].json()["error"] == "APIRateLimitExceeded"
    assert answers[0].headers["X-Rate-Limit"] == "700" and later.status_code == 200


def test_the_connector_paces_itself_and_never_meets_a_429(monkeypatch):
    """With a 3-per-minute export budget, a pull of many pages waits for resets instead of failing."""
    now = [ANCHOR]
    sandbox = ZendeskSandbox(2500, anchor=ANCHOR, clock=lambda: now[0], export_limit_per_minute=3)

    def sleep(seconds: float) -> None:  # waiting moves the sandbox's clock, not the test's
        now[0] += timedelta(seconds=seconds)

    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")
    config = load_config(data={"sources": {"zd": {"system": "zendesk", "url": "https://sandbox.zendesk.com", "start": "2026-01-01",
                                                  "auth": {"email": "sla-bot@example.com", "token_env": "ZD_TOKEN"}}}}, environ=False)
    client = build_client(config.sources["zd"].url, http=config.http, transport=sandbox.transport(),
                          auth=ZendeskConnector.auth(config.sources["zd"], config.source_secret("zd")))
    connector = ZendeskConnector("zd", config.sources["zd"], SourceClient("zd", client, RetryPolicy(sleep=sleep, clock=lambda: now[0])))
    store = Store.memory()
    for page in pages(connector, {}, now=ANCHOR):
        store.save_page("zd", page)
    assert store.count("tickets") == 2500
    assert 429 not in sandbox.statuses and set(sandbox.statuses) == {200}
    assert sandbox.count("/incremental/") > 3  # more export requests than one minute's budget ...
    assert now[0] > ANCHOR + timedelta(minutes=1)  # ... so it waited for the budget to reset


def test_slow_pages_are_served_late_but_whole():
    sandbox = ZendeskSandbox(5, anchor=ANCHOR, clock=lambda: ANCHOR)
    sandbox.inject("slow", delay=0.2, path="/incremental/tickets")
    with client_for(sandbox) as client:
        began = datetime.now(timezone.utc)
        answer = client.get("/api/v2/incremental/tickets/cursor.json", params={"start_time": 0})
    assert answer.status_code == 200 and len(answer.json()["tickets"]) == 5
    assert datetime.now(timezone.utc) - began >= timedelta(seconds=0.2)


def test_internal_notes_show_up_on_re_read_and_public_defaults_to_true():
    sandbox = ZendeskSandbox(20, anchor=ANCHOR, clock=lambda: ANCHOR)
    number = next(n for n, t in sorted(sandbox.tickets.items()) if t["status"] not in ("closed", "deleted"))
    closed = next(n for n, t in sorted(sandbox.tickets.items()) if t["status"] == "closed")
    with client_for(sandbox) as client:
        client.put(f"/api/v2/tickets/{number}.json", json={"ticket": {"comment": {"body": "internal [sla-bridge:x]", "public": False}}})
        client.put(f"/api/v2/tickets/{number}.json", json={"ticket": {"comment": {"body": "hello customer"}}})
        comments = client.get(f"/api/v2/tickets/{number}/comments.json").json()["comments"]
        refused = client.put(f"/api/v2/tickets/{closed}.json", json={"ticket": {"comment": {"body": "x", "public": False}}})
    assert refused.status_code == 422 and "closed prevents ticket update" in refused.text
    assert [(c["body"], c["public"]) for c in comments[-2:]] == [("internal [sla-bridge:x]", False), ("hello customer", True)]


def connector_for(sandbox: ZendeskSandbox, monkeypatch, auth: dict) -> ZendeskConnector:
    monkeypatch.setenv("ZD_SECRET", "sandbox-oauth-token" if "oauth_token_env" in auth else "sandbox-token")
    config = load_config(data={"sources": {"zd": {"system": "zendesk", "url": "https://sandbox.zendesk.com", "auth": auth}}}, environ=False)
    client = build_client(config.sources["zd"].url, http=config.http, transport=sandbox.transport(),
                          auth=ZendeskConnector.auth(config.sources["zd"], config.source_secret("zd")))
    return ZendeskConnector("zd", config.sources["zd"], SourceClient("zd", client, RetryPolicy(sleep=lambda s: None)))


def test_oauth_bearer_tokens_work_as_well_as_api_tokens(monkeypatch):
    sandbox = ZendeskSandbox(5, anchor=ANCHOR, clock=lambda: ANCHOR)
    bearer = connector_for(sandbox, monkeypatch, {"oauth_token_env": "ZD_SECRET"})
    assert bearer.check_credentials().account == "SLA Bot <sla-bot@example.com>"


def test_bulk_write_back_groups_same_changes_and_keeps_other_tags(monkeypatch):
    from bridge.model import Ticket, WritebackPlan

    def plan(number: int, **changes) -> WritebackPlan:
        raw = sandbox.tickets[number]
        return WritebackPlan(Ticket("zd", "zendesk", str(number), f"#{number}", "", raw["status"], raw["status"], ANCHOR, ANCHOR), **changes)

    sandbox = ZendeskSandbox(700, anchor=ANCHOR, clock=lambda: ANCHOR)  # most old tickets are closed by now
    connector = connector_for(sandbox, monkeypatch, {"email": "sla-bot@example.com", "token_env": "ZD_SECRET"})
    live = [n for n in sorted(sandbox.tickets) if sandbox.tickets[n]["status"] not in ("deleted", "closed")]
    gone = next(n for n in sorted(sandbox.tickets) if sandbox.tickets[n]["status"] == "deleted")
    at_risk = [plan(n, add_tags=["sla_at_risk"]) for n in [*live[:149], gone]]
    first, second = live[149], live[150]
    breached = [plan(n, add_tags=["sla_breached"], remove_tags=["sla_at_risk"]) for n in (first, second)]
    sandbox.tickets[first]["tags"].append("sla_at_risk")
    before = {n: list(sandbox.tickets[n]["tags"]) for n in live}
    results = {r.ticket_id: r for r in connector.write(at_risk + breached)}
    assert sandbox.count("/tickets/update_many", "PUT") == 3  # 100 + 50 at risk, 2 breached
    assert len(results) == 152 and [t for t, r in results.items() if r.outcomes() != {"tags": "sent"}] == [f"zd:{gone}"]
    assert results[f"zd:{gone}"].outcomes() == {"tags": "refused"}
    assert results[f"zd:{gone}"].detail == f"Ticket {gone} not found"
    assert sandbox.tickets[live[0]]["tags"] == before[live[0]] + ["sla_at_risk"]
    assert sandbox.tickets[first]["tags"] == [t for t in before[first] if t != "sla_at_risk"] + ["sla_breached"]
