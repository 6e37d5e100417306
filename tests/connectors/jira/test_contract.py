"""Contract: every request the Jira connector makes, and every response the sandbox gives on
those paths, validates against Atlassian's own OpenAPI documents (../shared/vendor-specs): the
platform's for ``/rest/api/3``, JSM's for ``/rest/servicedeskapi``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from bridge.config import load_config
from bridge.edges.http import RetryPolicy, SourceClient, build_client
from bridge.model import Note, Ticket, WritebackPlan
from connectors.jira import JiraConnector
from connectors.jira.sandbox import JiraSandbox
from tests.conftest import pages
from tests.oas import Recording, Spec, load_spec

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
REQUEST_TYPE = "com.atlassian.servicedesk:vp-origin"


def patch_platform(document: dict[str, Any]) -> None:
    """The platform document's known faults, each listed in BEHAVIOR.md ("Spec gaps")."""
    details = document["components"]["schemas"]["ChangeDetails"]["properties"]
    # 1. A changelog item's from/fromString/to/toString are null where there was no value
    #    (an assignee set on an unassigned issue, a label list that was empty): the document types
    #    them as plain strings.
    for name in ("from", "fromString", "to", "toString"):
        assert details[name].get("type") == "string"
        details[name]["nullable"] = True


def patch_jsm(document: dict[str, Any]) -> None:
    """The JSM document's known faults: none needed so far."""


PLATFORM = load_spec("jira-platform-openapi.json", patch_platform, {})
JSM = load_spec("jsm-openapi.json", patch_jsm, {})
pytestmark = pytest.mark.skipif(
    PLATFORM is None or JSM is None,
    reason="../shared/vendor-specs/jira-platform-openapi.json or jsm-openapi.json is absent: the contract cannot be checked here",
)


def spec_for(request: httpx.Request) -> Spec:
    spec = JSM if request.url.path.startswith("/rest/servicedeskapi/") else PLATFORM
    assert spec is not None
    return spec


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> tuple[JiraSandbox, JiraConnector, Recording]:
    sandbox = JiraSandbox.for_tests(300, anchor=ANCHOR)
    monkeypatch.setenv("JIRA_CONTRACT_TOKEN", sandbox.token)
    table = sandbox.source_config(sandbox.base_url, "JIRA_CONTRACT_TOKEN")
    config = load_config(data={"sources": {"jsm": table}}, environ=False)
    recording = Recording(sandbox.transport())
    client = build_client(config.sources["jsm"].url, http=config.http, transport=recording,
                          auth=JiraConnector.auth(config.sources["jsm"], config.source_secret("jsm")))
    connector = JiraConnector("jsm", config.sources["jsm"], SourceClient("jsm", client, RetryPolicy(sleep=lambda s: None)))
    return sandbox, connector, recording


def drive_everything(sandbox: JiraSandbox, connector: JiraConnector) -> None:
    """Every route the connector has: the check, the fields, a pull with cut histories, each kind of write."""
    connector.check_credentials()
    connector.list_fields()
    tickets: list[Ticket] = [t for page in pages(connector, {}, now=ANCHOR) for t in page.tickets]
    request_type = next(f["id"] for f in connector.site_fields() if (f.get("schema") or {}).get("custom") == REQUEST_TYPE)
    requests_ = [t for t in tickets if t.fields.get(request_type) is not None and t.status not in ("deleted",)]
    plain = [t for t in tickets if t.fields.get(request_type) is None]
    status_field = connector.jira.writeback.status_field
    assert status_field is not None and requests_ and plain
    first, second = requests_[:2]

    def note(ticket: Ticket) -> Note:
        marker = f"[sla-bridge:jsm:{ticket.external_id}:resolution:1]"
        return Note(marker, f"Resolution target missed. {marker}")

    list(connector.write([
        WritebackPlan(first, set_fields={status_field: "breached"}, add_tags=["sla_breached"], remove_tags=["sla_at_risk"],
                      notes=[note(first)]),
        WritebackPlan(second, add_tags=["sla_at_risk"]),
        WritebackPlan(plain[0], notes=[note(plain[0])]),  # no request type: the platform route, internal
    ]))
    connector.note_exists(first.external_id, note(first).marker)


def test_the_pull_meets_cut_histories_and_every_write_route(recorded: tuple[JiraSandbox, JiraConnector, Recording]) -> None:
    sandbox, connector, recording = recorded
    drive_everything(sandbox, connector)
    operations = {(r.method, found[0]) for r, _ in recording.exchanges
                  if (found := spec_for(r).operation(r.method, r.url.path)) is not None}
    assert {("POST", "/rest/api/3/search/jql"), ("POST", "/rest/api/3/changelog/bulkfetch"), ("GET", "/rest/api/3/field"),
            ("GET", "/rest/api/3/user/permission/search"), ("GET", "/rest/api/3/myself"), ("GET", "/rest/api/3/mypermissions"),
            ("PUT", "/rest/api/3/issue/{issueIdOrKey}"), ("POST", "/rest/servicedeskapi/request/{issueIdOrKey}/comment"),
            ("POST", "/rest/api/3/issue/{issueIdOrKey}/comment"), ("GET", "/rest/api/3/issue/{issueIdOrKey}/comment"),
            ("GET", "/rest/servicedeskapi/servicedesk")} <= operations


def test_every_request_matches_the_documents(recorded: tuple[JiraSandbox, JiraConnector, Recording]) -> None:
    sandbox, connector, recording = recorded
    drive_everything(sandbox, connector)
    problems = [p for request, _ in recording.exchanges for p in spec_for(request).check_request(request)]
    assert problems == []


def test_every_sandbox_response_matches_the_documents(recorded: tuple[JiraSandbox, JiraConnector, Recording]) -> None:
    sandbox, connector, recording = recorded
    drive_everything(sandbox, connector)
    problems = [p for request, response in recording.exchanges for p in spec_for(request).check_response(request, response)]
    assert problems == []
