"""The store: a page and its cursor are one transaction; upserts never duplicate; the file is private."""

from __future__ import annotations

import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bridge.edges.store import Store
from bridge.errors import StoreError
from bridge.model import Page, QuarantinedRecord, Ticket, TicketEvent

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def ticket(number: int, *, status: str = "open", title: str | None = None) -> Ticket:
    return Ticket(
        source="zd",
        system="zendesk",
        external_id=str(number),
        key=f"#{number}",
        title=title or f"Ticket {number}",
        status=status,
        status_raw=status,
        created_at=T0,
        updated_at=T0 + timedelta(minutes=number),
        priority="p2",
        customer="ACME Ltd",
        fields={"service": "email"},
        version=f"v{number}",
    )


def event(number: int, event_id: str, *, minutes: int, to: str = "open") -> TicketEvent:
    return TicketEvent(
        ticket_id=f"zd:{number}",
        event_id=event_id,
        kind="status",
        at=T0 + timedelta(minutes=minutes),
        from_value="new",
        to_value=to,
    )


def page(*numbers: int, cursor: str) -> Page:
    return Page(
        tickets=[ticket(n) for n in numbers],
        events=[event(n, f"{n}-a", minutes=1) for n in numbers],
        cursor=cursor,
    )


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "store.db") as opened:
        yield opened


def test_a_crash_between_upsert_and_cursor_keeps_neither(store, monkeypatch):
    store.save_page("zd", page(1, 2, cursor="c1"))

    def crash(*_args, **_kwargs):
        raise RuntimeError("killed between the page's upsert and its cursor")

    monkeypatch.setattr(store, "_write_cursor", crash)
    with pytest.raises(RuntimeError, match="killed between"):
        store.save_page("zd", page(3, 4, cursor="c2"))

    assert store.cursor("zd") == "c1"
    assert [row["id"] for row in store.db["tickets"].rows] == ["zd:1", "zd:2"]
    assert store.count("ticket_events") == 2

    monkeypatch.undo()
    store.save_page("zd", page(3, 4, cursor="c2"))  # the next run repeats the page
    assert store.cursor("zd") == "c2"
    assert store.count("tickets") == 4


def test_the_crash_leaves_nothing_on_disk_either(tmp_path, monkeypatch):
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        monkeypatch.setattr(store, "_write_cursor", lambda *a, **k: (_ for _ in ()).throw(OSError("disk gone")))
        with pytest.raises(OSError):
            store.save_page("zd", page(1, cursor="c1"))
    with Store.open(path) as reopened:
        assert reopened.count("tickets") == 0
        assert reopened.cursor("zd") is None


def test_overlapping_pages_upsert_instead_of_duplicating(store):
    store.save_page("zd", page(1, 2, cursor="c1"))
    changed = page(2, 3, cursor="c2")
    changed.tickets[0] = ticket(2, status="resolved", title="Printer on fire (solved)")
    store.save_page("zd", changed)
    assert store.count("tickets") == 3
    assert store.count("ticket_events") == 3
    again = store.ticket("zd:2")
    assert again is not None
    assert (again.status, again.title) == ("resolved", "Printer on fire (solved)")


def test_tickets_and_events_read_back_as_they_were_written(store):
    original = ticket(7)
    original.resolved_at = T0 + timedelta(hours=3, microseconds=123456)
    store.save_page("zd", Page(tickets=[original], events=[event(7, "b", minutes=9), event(7, "a", minutes=2)], cursor="x"))
    loaded = store.ticket("zd:7")
    assert loaded is not None
    assert loaded.resolved_at == T0 + timedelta(hours=3, microseconds=123000)  # stored to the millisecond
    assert (loaded.created_at, loaded.fields, loaded.version, loaded.id) == (T0, {"service": "email"}, "v7", "zd:7")
    assert [e.event_id for e in store.events("zd:7")] == ["a", "b"]  # in time order


def test_cursors_are_kept_per_source_and_stream(store):
    store.save_page("zd", page(1, cursor="tickets-cursor"))
    store.save_page("zd", Page(tickets=[], events=[], cursor="events-cursor", stream="events"))
    store.save_page("jira", Page(tickets=[], events=[], cursor="jira-cursor"))
    assert store.cursor("zd") == "tickets-cursor"
    assert store.cursor("zd", "events") == "events-cursor"
    assert store.cursor("jira") == "jira-cursor"
    assert store.cursor("servicenow") is None


def test_bad_records_are_quarantined_and_counted(store):
    bad = QuarantinedRecord(source="zd", record_id="99", reason="created_at missing", raw={"id": 99})
    counts = store.save_page("zd", Page(tickets=[ticket(1)], events=[], cursor="c1", quarantined=[bad]))
    store.save_page("zd", Page(tickets=[], events=[], cursor="c2", quarantined=[bad]))
    assert counts.quarantined == 1
    [row] = store.db["quarantine"].rows
    assert (row["record_id"], row["reason"], row["times"]) == ("99", "created_at missing", 2)
    assert row["raw"] == '{"id": 99}'


def test_new_store_is_private_and_in_wal_mode(tmp_path):
    path = tmp_path / "deep" / "store.db"
    with Store.open(path) as store:
        store.save_page("zd", page(1, cursor="c1"))
        assert store.db.execute("pragma journal_mode").fetchone()[0] == "wal"
        for file in tmp_path.joinpath("deep").iterdir():  # the -wal and -shm files too
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file


def test_an_existing_store_readable_by_others_is_tightened(tmp_path):
    path = tmp_path / "store.db"
    Store.open(path).close()
    os.chmod(path, 0o644)
    Store.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_migrations_are_named_and_applied_once(tmp_path):
    path = tmp_path / "store.db"
    Store.open(path).close()
    with Store.open(path) as store:
        names = [row["name"] for row in store.db["_sqlite_migrations"].rows]
        tables = set(store.db.table_names())
    assert names == ["0001_initial_schema", "0002_ticket_tags", "0003_writeback_pending", "0004_pull_sequence",
                     "0005_journal_fields_by_id", "0006_hardening", "0007_iso_years_padded", "0008_agreements"]
    assert {"tickets", "ticket_events", "sla_clocks", "credits", "writebacks", "sync_state", "runs", "quarantine", "agent_spans",
            "verdict_changes"} <= tables


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("this is not sqlite\n" * 100)
    with pytest.raises(StoreError, match=r"notes.txt is not a usable sla-bridge store"):
        Store.open(path)


def test_runs_are_recorded_with_their_outcome(store):
    run_id = store.start_run("check --online")
    store.finish_run(run_id, exit_code=3, sources={"zd": {"ok": False, "requests": 2}}, error="zd failed")
    [run] = store.runs()
    assert (run["command"], run["status"], run["exit_code"], run["error"]) == ("check --online", "partial", 3, "zd failed")
    assert run["sources"] == {"zd": {"ok": False, "requests": 2}}
    assert run["pid"] == os.getpid() and run["finished_at"] >= run["started_at"]


def test_a_page_without_a_cursor_keeps_the_saved_one(store):
    store.save_page("zd", page(1, cursor="c1"))
    store.save_page("zd", Page(tickets=[ticket(2)], events=[], cursor=None))
    assert store.cursor("zd") == "c1" and store.count("tickets") == 2


def test_a_directory_is_not_a_store_and_keeps_its_permissions(tmp_path):
    folder = tmp_path / "storedir"
    folder.mkdir(mode=0o755)
    with pytest.raises(StoreError, match="is not a regular file"):
        Store.open(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_two_runs_creating_the_store_at_once_both_succeed(tmp_path):
    import threading

    for attempt in range(10):
        path = tmp_path / f"race-{attempt}.db"
        errors: list[BaseException] = []

        def open_it(path: Path = path, errors: list[BaseException] = errors) -> None:
            try:
                Store.open(path).close()
            except BaseException as error:  # noqa: BLE001 - collected for the assertion
                errors.append(error)

        threads = [threading.Thread(target=open_it) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with Store.open(path) as store:
            assert [row["name"] for row in store.db["_sqlite_migrations"].rows] == [
                "0001_initial_schema", "0002_ticket_tags", "0003_writeback_pending", "0004_pull_sequence", "0005_journal_fields_by_id",
                "0006_hardening", "0007_iso_years_padded", "0008_agreements"]
