"""Write-back through the pipeline: what a refused field, a killed job or a closed ticket leaves behind."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from bridge.config import load_config
from bridge.pipeline.demo import source_table
from bridge.pipeline.run import PHASES, run_pipeline
from connectors.zendesk.sandbox import SLA_STATUS_FIELD, ZendeskSandbox

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
POLICY = '[[policies]]\nname = "standard"\ntargets.first_response = { p1 = "30m", p2 = "1h", p3 = "2h", p4 = "4h" }\n'


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    monkeypatch.setattr("bridge.edges.http.time.sleep", lambda seconds: None)
    monkeypatch.setenv("ZD_TOKEN", "sandbox-token")


def sync(tmp_path, box: ZendeskSandbox, status_field: str = f"custom_field:{SLA_STATUS_FIELD}"):
    source = box.source_config("https://sandbox.zendesk.com", "ZD_TOKEN")
    source["writeback"]["status_field"] = status_field
    (tmp_path / "c.toml").write_text('[store]\npath = "store.db"\n' + POLICY + source_table("zd", source))
    return run_pipeline(load_config(tmp_path / "c.toml"), "sync", PHASES, store_path=tmp_path / "store.db", now=ANCHOR,
                        transports={"zd": box.transport()})


def notes(box: ZendeskSandbox) -> int:
    return len(box.writeback_summary().notes)


def states(tmp_path) -> dict[str, int]:
    rows = sqlite3.connect(tmp_path / "store.db").execute("select item like 'note:%', state, count(*) from writebacks group by 1, 2")
    return {f"{'note' if note else 'other'} {state}": count for note, state, count in rows}


def test_a_status_field_zendesk_refuses_stops_the_source_and_loses_no_note(tmp_path):
    """A field id from another account: every write refused with 422. Nothing may be marked done, or
    the notes would never be posted once the config is fixed (they used to be refused for ever)."""
    box = ZendeskSandbox.for_tests(300, anchor=ANCHOR)
    wrong = sync(tmp_path, box, status_field="custom_field:999")
    assert wrong.exit_code == 3 and wrong.sources["zd"].error_class == "BadRequest"
    assert "Zendesk refused custom_field:999 on ticket" in wrong.sources["zd"].error
    assert "check sources.zd.writeback.status_field" in wrong.sources["zd"].error
    assert not any("refused" in key for key in states(tmp_path)) and notes(box) == 0
    fixed = sync(tmp_path, box)
    assert fixed.exit_code == 0 and notes(box) == fixed.total("notes_sent") > 0
    assert set(states(tmp_path)) <= {"note sent", "other sent", "other gone"}  # gone: the old field's intents


def test_a_drop_down_without_our_values_keeps_none_of_them_and_loses_no_note(tmp_path):
    """Zendesk drops a drop-down value it has no option for without an error (success results,
    973 of 973 in issue 9), so the sandbox does too: the notes and tags still land, the field
    keeps nothing. (`check --online` says so beforehand; the pipeline compares what it pulls.)"""
    box = ZendeskSandbox.for_tests(300, anchor=ANCHOR)
    box.status_drop_down(["green", "amber", "red"])
    report = sync(tmp_path, box)
    assert not any("refused" in key for key in states(tmp_path))
    assert notes(box) == report.total("notes_sent") > 0
    assert all(t["custom_fields"][1]["value"] is None for t in box.tickets.values())


def test_a_killed_bulk_job_leaves_its_tickets_for_the_next_run(tmp_path):
    box = ZendeskSandbox.for_tests(300, anchor=ANCHOR)
    box.kill_jobs = 1
    first = sync(tmp_path, box)
    assert first.exit_code == 0 and first.sources["zd"].conflicts > 0  # not refused: nothing says they were not updated
    assert not any("refused" in key for key in states(tmp_path))
    again = sync(tmp_path, box)
    assert again.exit_code == 0 and again.sources["zd"].writes_sent == first.sources["zd"].conflicts
    assert sync(tmp_path, box).total("writes_sent") == 0


def test_the_sandbox_refuses_unknown_fields_in_bulk_as_zendesk_does():
    import httpx

    box = ZendeskSandbox.for_tests(20, anchor=ANCHOR)
    live = [n for n, t in sorted(box.tickets.items()) if t["status"] not in ("closed", "deleted")][:2]
    auth = {"Authorization": f"Bearer {'sandbox-oauth-token'}"}
    with httpx.Client(base_url="https://sandbox.zendesk.com", transport=box.transport(), headers=auth) as client:
        job = client.put("/api/v2/tickets/update_many.json", params={"ids": ",".join(map(str, live))},
                         json={"ticket": {"custom_fields": [{"id": 999, "value": "x"}]}}).json()["job_status"]
        for _ in range(2):
            status = client.get(f"/api/v2/job_statuses/{job['id']}.json").json()["job_status"]
    assert status["status"] == "completed"
    assert [(r["success"], r["error"]) for r in status["results"]] == [(False, "RecordInvalid")] * 2
