"""Contract: every Table API request the ServiceNow connector makes validates against ServiceNow's
own OpenAPI document of the Table API (../shared/vendor-specs/servicenow-table-openapi.json).

That document declares routes and parameters only: every operation has ``"responses": {}`` and
no schemas, so responses cannot be checked against it (the sandbox's answers are checked by
tests/connectors/servicenow/test_sandbox.py against the reference instead). The Batch API
(``POST /api/now/v1/batch``) and the OAuth token endpoint (``POST /oauth_token.do``) are not in
that document at all: their requests are checked by hand here, against the shapes ServiceNow
documents (a form body for the token; batch items that PATCH ``/api/now/table/...`` with base64
JSON bodies, and never a ``comments`` key, which the customer would see).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from bridge.config import load_config
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.model import Note, Ticket, WritebackPlan
from connectors.servicenow import ServiceNowConnector
from connectors.servicenow.sandbox import ServiceNowSandbox
from tests.conftest import pages
from tests.oas import Recording, Spec, load_spec

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
TABLE_API = "/api/now/table/"
BATCH, TOKEN = "/api/now/v1/batch", "/oauth_token.do"
PLANS = 30  # more than one batch of 25


def patch_table_api(document: dict[str, Any]) -> None:
    """The Table API document's known gaps, each with its reason."""
    listing = document["paths"]["/api/now/table/{tableName}"]["get"]["parameters"]
    # 1. sysparm_offset: ServiceNow documents it for GET /now/table/{tableName} (the Table API
    #    reference, "Query parameters"), and the instance's own Link header names it in every
    #    next/prev/last URL; the exported document leaves it out. The connector only ever sends
    #    it by following such a Link (an ACL-emptied records page, a sys_audit page past 1000 rows).
    assert all(p.get("name") != "sysparm_offset" for p in listing), "the document has sysparm_offset now: drop this patch"
    listing.append({"name": "sysparm_offset", "in": "query", "required": False, "schema": {}})


SPEC = load_spec("servicenow-table-openapi.json", patch_table_api, {})
pytestmark = pytest.mark.skipif(
    SPEC is None, reason="../shared/vendor-specs/servicenow-table-openapi.json is absent: the contract cannot be checked here")


def table_spec() -> Spec:
    assert SPEC is not None
    return SPEC


def connector_for(sandbox: ServiceNowSandbox, auth: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                  secret: str) -> tuple[ServiceNowConnector, Recording]:
    monkeypatch.setenv("SN_CONTRACT_SECRET", secret)
    table = {**sandbox.source_config(sandbox.base_url, "SN_CONTRACT_SECRET"), "auth": auth}
    config = load_config(data={"sources": {"sn": table}}, environ=False)
    recording = Recording(sandbox.transport())
    client = build_client(config.sources["sn"].url, http=config.http, transport=recording,
                          auth=ServiceNowConnector.auth(config.sources["sn"], config.source_secret("sn")))
    policy = RetryPolicy(sleep=lambda s: None, clock=lambda: ANCHOR)
    return ServiceNowConnector("sn", config.sources["sn"], SourceClient("sn", client, policy)), recording


@pytest.fixture
def sandbox() -> ServiceNowSandbox:
    box = ServiceNowSandbox.for_tests(300, anchor=ANCHOR)
    # One record with more audit rows than a sys_audit page holds: its pages are followed by Link (sysparm_offset).
    busy = next(n for n, s in sorted(box.numbers.items()) if s in box.tables[box.table].rows)
    box.long_history(busy, 1100)
    # One record passed through a group no record is in now: its name is looked up (sys_user_group).
    box.hand_off(busy, "Network", ANCHOR - timedelta(minutes=3))
    box.hand_off(busy, "2nd line", ANCHOR - timedelta(minutes=2))
    return box


@pytest.fixture
def basic(sandbox: ServiceNowSandbox, monkeypatch: pytest.MonkeyPatch) -> tuple[ServiceNowConnector, Recording]:
    auth = {"username": sandbox.username, "password_env": "SN_CONTRACT_SECRET"}
    return connector_for(sandbox, auth, monkeypatch, sandbox.password)


@pytest.fixture
def oauth(sandbox: ServiceNowSandbox, monkeypatch: pytest.MonkeyPatch) -> tuple[ServiceNowConnector, Recording]:
    auth = {"client_id": sandbox.client_id, "client_secret_env": "SN_CONTRACT_SECRET"}
    return connector_for(sandbox, auth, monkeypatch, sandbox.client_secret)


def note(ticket: Ticket) -> Note:
    marker = f"[sla-bridge:sn:{ticket.external_id}:resolution:1]"
    return Note(marker, f"Resolution target missed. {marker}")


def drive_everything(connector: ServiceNowConnector) -> list[Ticket]:
    """Every route the connector has: the check, the fields, a full pull, a write-back of several plans, the note look-up."""
    connector.check_credentials()
    connector.list_fields()
    tickets = [t for page in pages(connector, {}, now=ANCHOR) for t in page.tickets]
    status_field = connector.sn.writeback.status_field
    assert status_field is not None and len(tickets) > PLANS
    plans = [WritebackPlan(t, set_fields={status_field: "breached"}, notes=[note(t)]) for t in tickets[:PLANS - 1]]
    plans.append(WritebackPlan(tickets[PLANS - 1], set_fields={status_field: "at_risk"}))  # a status alone, no note
    results = list(connector.write(plans))
    assert len(results) == PLANS
    assert connector.note_exists(tickets[0].external_id, note(tickets[0]).marker)
    return tickets


def table_requests(recording: Recording) -> list[httpx.Request]:
    return [r for r, _ in recording.exchanges if r.url.path.startswith(TABLE_API)]


def test_the_pull_check_and_write_use_every_route(basic: tuple[ServiceNowConnector, Recording]) -> None:
    connector, recording = basic
    drive_everything(connector)
    spec = table_spec()
    used = {(r.method, found[0], r.url.path.removeprefix(TABLE_API).split("/")[0]) for r in table_requests(recording)
            if (found := spec.operation(r.method, r.url.path)) is not None}
    listing = "/api/now/table/{tableName}"
    assert {("GET", listing, t) for t in ("incident", "sys_audit", "sys_choice", "sys_user_has_role", "sys_dictionary", "sys_user",
                                          "sys_journal_field", "sys_user_group")} <= used
    offsets = [r for r in table_requests(recording) if "sysparm_offset" in r.url.params]
    assert offsets and all(r.url.path == "/api/now/table/sys_audit" for r in offsets)  # the long history's Link pages
    assert sum(r.url.path == BATCH for r, _ in recording.exchanges) == 2  # 30 plans: 25 and 5


def test_every_table_api_request_matches_the_document(basic: tuple[ServiceNowConnector, Recording]) -> None:
    connector, recording = basic
    drive_everything(connector)
    spec = table_spec()
    requests_ = table_requests(recording)
    assert requests_
    assert [p for request in requests_ for p in spec.check_request(request)] == []
    others = {(r.method, r.url.path) for r, _ in recording.exchanges if not r.url.path.startswith(TABLE_API)}
    assert others == {("POST", BATCH)}  # basic auth: no token request


def batch_items(recording: Recording) -> list[dict[str, Any]]:
    return [item for r, _ in recording.exchanges if r.url.path == BATCH for item in json.loads(r.content)["rest_requests"]]


def test_batch_items_patch_table_api_records_with_base64_json_and_never_comments(
        basic: tuple[ServiceNowConnector, Recording], sandbox: ServiceNowSandbox) -> None:
    connector, recording = basic
    tickets = drive_everything(connector)
    batches = [r for r, _ in recording.exchanges if r.url.path == BATCH]
    assert all(r.method == "POST" and r.headers["Content-Type"].startswith("application/json") for r in batches)
    items = batch_items(recording)
    assert len(items) == PLANS
    spec = table_spec()
    wanted = {t.external_id for t in tickets[:PLANS]}
    patched: set[str] = set()
    for item in items:
        assert item["method"] == "PATCH" and item["url"].startswith(f"/api/now/table/{sandbox.table}/"), item["url"]
        path, _, query = item["url"].partition("?")
        patched.add(path.rsplit("/", 1)[1])
        # the item's URL is a Table API request like any other: the document's parameters apply to it
        inner = httpx.Request("PATCH", f"{sandbox.base_url}{item['url']}")
        assert spec.check_request(inner) == [], item["url"]
        assert set(parse_qs(query)) <= {"sysparm_fields", "sysparm_exclude_reference_link"}
        headers = {h["name"]: h["value"] for h in item["headers"]}
        assert headers["Content-Type"] == "application/json"
        body = json.loads(base64.b64decode(item["body"], validate=True))
        assert isinstance(body, dict) and "comments" not in body
        assert set(body) <= {"u_sla_status", "work_notes"} and body["u_sla_status"] in ("breached", "at_risk")
        if body["u_sla_status"] == "breached":
            assert "[sla-bridge:sn:" in body["work_notes"]  # an internal work note carries the marker
        else:
            assert "work_notes" not in body
    assert patched == wanted
    assert sandbox.comments_by(sandbox.username) == []
    assert not any(entry["element"] == "comments" for entry in sandbox.api_journal)


def test_client_credentials_ask_oauth_token_do_with_a_form_and_then_use_the_bearer(
        oauth: tuple[ServiceNowConnector, Recording], sandbox: ServiceNowSandbox) -> None:
    connector, recording = oauth
    drive_everything(connector)
    spec = table_spec()
    assert [p for request in table_requests(recording) for p in spec.check_request(request)] == []
    tokens = [(r, response) for r, response in recording.exchanges if r.url.path == TOKEN]
    assert len(tokens) == 1  # one token for the whole run: it expires 1799 s later, and the clock does not move
    request, response = tokens[0]
    assert request.method == "POST"
    assert request.headers["Content-Type"].split(";")[0] == "application/x-www-form-urlencoded"
    form = parse_qs(request.content.decode(), strict_parsing=True)
    assert form == {"grant_type": ["client_credentials"], "client_id": [sandbox.client_id], "client_secret": [sandbox.client_secret]}
    assert "Authorization" not in request.headers or not request.headers["Authorization"].startswith("Bearer ")
    token = response.json()["access_token"]
    after = [r for r, _ in recording.exchanges if r.url.path != TOKEN]
    assert after and all(r.headers["Authorization"] == f"Bearer {token}" for r in after)
    assert recording.exchanges[0][0].url.path == TOKEN  # fetched before the first request
