"""What the store remembers between runs for the hardening: notes seen on tickets, who was an
agent when, refusals with why and when to retry, runs a dead process left, and whether the file
under a run is still the one it opened."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge.edges.credentials import MASK, Secret
from bridge.edges.store import Store
from bridge.errors import StoreReplaced
from bridge.model import Page, TicketEvent, from_iso
from tests.edges.test_store import T0, page, ticket


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "store.db") as opened:
        yield opened


def note(number: int, comment: int, marker: str) -> TicketEvent:
    return TicketEvent(ticket_id=f"zd:{number}", event_id=f"n{comment}:0", kind="note", at=T0, to_value=marker, author="bot")


def test_notes_seen_are_the_markers_of_each_tickets_internal_notes(store: Store) -> None:
    events = [
        note(1, 10, "[sla-bridge:zd:1:first_response:1]"),
        note(1, 11, "[sla-bridge:zd:1:resolution:1]"),
        note(2, 20, "[sla-bridge:zd:2:resolution:1]"),
        TicketEvent(ticket_id="zd:3", event_id="s", kind="status", at=T0, from_value="new", to_value="[sla-bridge:zd:3:x:1]"),
    ]
    store.save_page("zd", Page(tickets=[ticket(1), ticket(2), ticket(3)], events=events, cursor="c"))
    wanted = ["zd:1", "zd:2", "zd:3"] + [f"zd:{n}" for n in range(100, 700)]  # more than one chunk of ids
    assert store.notes_seen(wanted) == {
        "zd:1": {"[sla-bridge:zd:1:first_response:1]", "[sla-bridge:zd:1:resolution:1]"},
        "zd:2": {"[sla-bridge:zd:2:resolution:1]"},
    }
    assert store.notes_seen([]) == {}


def test_agent_spans_round_trip_with_open_ends_and_replace_per_source(store: Store) -> None:
    since, until = T0, T0 + timedelta(days=30)
    spans = [("u1", None, None), ("u2", since, None), ("u3", None, until), ("u4", since, until), ("u4", until + timedelta(days=1), None)]
    store.save_agent_spans("zd", spans)
    store.save_agent_spans("other", [("u9", since, None)])
    assert store.agent_spans("zd") == spans
    store.save_agent_spans("zd", [("u2", since, until)])  # the roster's whole state: the old spans go
    assert store.agent_spans("zd") == [("u2", since, until)]
    assert store.agent_spans("other") == [("u9", since, None)]
    assert store.agent_spans("nobody") == []


def test_a_refusal_is_kept_with_why_and_when_to_retry_and_listed_until_written(store: Store) -> None:
    store.save_page("zd", Page(tickets=[ticket(1), ticket(2)], events=[], cursor="c"))
    token = "secret-token-abcdef"
    Secret(token, "test")
    retry = T0 + timedelta(hours=6)
    store.journal_intend(7, [("zd:1", "field:custom_field:123", "breached"), ("zd:1", "note:[m]", "[m]"), ("zd:2", "tags", "sla_breached")])
    store.journal_refuse("zd:1", ["field:custom_field:123"], reason=f"422: field 123 is not valid ({token})", cause="cfg1/v1",
                         retry_at=retry)
    store.journal_refuse("zd:1", [], reason="nothing")  # nothing refused: nothing changes
    [refused] = store.refusals()
    assert (refused["source"], refused["key"], refused["ticket_id"], refused["item"], refused["value"]) == (
        "zd", "#1", "zd:1", "field:custom_field:123", "breached")
    assert refused["reason"] == f"422: field 123 is not valid ({MASK})"
    assert (from_iso(refused["retry_at"]), refused["refusals"]) == (retry, 1)
    [row] = [r for r in store.journal(["zd:1"])["zd:1"] if r["item"] == "field:custom_field:123"]
    assert (row["state"], row["cause"], row["pending"]) == ("refused", "cfg1/v1", None)
    assert [r["state"] for r in store.journal(["zd:2"])["zd:2"]] == ["intent"]  # another ticket's intent is left alone

    store.journal_intend(8, [("zd:1", "field:custom_field:123", "breached")])  # retried: refused again
    store.journal_refuse("zd:1", ["field:custom_field:123"], reason="422 again", cause="cfg1/v1", retry_at=None)
    [again] = store.refusals(source="zd")
    assert (again["reason"], again["retry_at"], again["refusals"]) == ("422 again", None, 2)
    assert store.refusals(source="jira") == []

    store.journal_intend(9, [("zd:1", "field:custom_field:123", "breached")])  # the config is fixed: written
    store.journal_confirm("zd:1", ["field:custom_field:123"])
    assert store.refusals() == []


def test_runs_left_running_by_a_dead_process_are_marked_killed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as first:
        done = first.start_run("sync")
        first.finish_run(done, exit_code=0)
        dead = first.start_run("sync")  # SIGKILL here: nothing records the end
    with Store.open(path) as next_run:
        assert next_run.reap_dead_runs() == 1
        assert next_run.reap_dead_runs() == 0
        statuses = {run["id"]: (run["status"], run["finished_at"] is not None) for run in next_run.runs()}
    assert statuses == {done: ("ok", True), dead: ("killed", True)}


@pytest.mark.parametrize(("exit_code", "status"), [(0, "ok"), (3, "partial"), (1, "failed"), (2, "failed"), (130, "interrupted"),
                                                   (143, "interrupted"), (129, "interrupted")])
def test_a_run_ended_by_a_signal_is_recorded_interrupted_with_its_exit_code(store: Store, exit_code: int, status: str) -> None:
    run_id = store.start_run("sync")
    store.finish_run(run_id, exit_code=exit_code, error="Terminated: SIGTERM" if exit_code >= 128 else None)
    [run] = store.runs()
    assert (run["status"], run["exit_code"]) == (status, exit_code)


def test_a_store_deleted_under_a_run_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        store.save_page("zd", page(1, cursor="c1"))
        store.check_intact()  # still the same file: nothing to say
        for file in tmp_path.iterdir():
            file.unlink()
        with pytest.raises(StoreReplaced, match=rf"the store {path} was deleted while this run was using it.*run again"):
            store.check_intact()


def test_a_store_replaced_under_a_run_by_a_restore_is_noticed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    backup = tmp_path / "backup.db"
    Store.open(backup).close()
    with Store.open(path) as store:
        os.replace(backup, path)  # a restore from backup while the run has the old file open
        with pytest.raises(StoreReplaced, match=rf"the store {path} was replaced by another file"):
            store.check_intact()
    with sqlite3.connect(path) as check:  # the restored file is the one on disk now
        assert check.execute("select count(*) from tickets").fetchone()[0] == 0
    check.close()


def test_an_in_memory_store_is_always_intact() -> None:
    with Store.memory() as store:
        store.check_intact()


def test_finish_run_never_stores_a_secret_from_the_error(store: Store) -> None:
    token = "tok-0987654321"
    Secret(token, "test")
    run_id = store.start_run("sync")
    store.finish_run(run_id, exit_code=1, sources={"zd": {"error": f"401 for {token}"}}, error=f"redirect to https://x/?t={token}")
    [run] = store.runs()
    assert token not in run["error"] and token not in str(run["sources"])
