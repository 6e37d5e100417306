"""The store refuses what it cannot use safely and says why: a newer schema, another program's
database, a missing file for a command that only reads, a read-only file or folder, a full disk.
Its side files are as private as the store, it keeps no secret, and every value it writes is one
the next run can read back."""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from bridge.edges.credentials import MASK, Secret
from bridge.edges.store import Store, clock_row, known_migrations
from bridge.engine.evaluator import Clock
from bridge.errors import StoreError
from bridge.framework.watermark import Watermark
from bridge.model import Page, Ticket, TicketEvent, from_iso, to_iso
from tests.edges.test_store import event, page, ticket

not_as_root = pytest.mark.skipif(
    hasattr(os, "geteuid") and os.geteuid() == 0,
    reason="running as root, whom file permissions do not stop: the refusal under test cannot happen")


def files_of(folder: Path) -> dict[str, bytes]:
    return {file.name: file.read_bytes() for file in sorted(folder.iterdir())}


# -- a store this version must not use -------------------------------------------------------


def test_a_store_from_a_newer_version_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        store.save_page("zd", page(1, cursor="c1"))
        store.db.table("_sqlite_migrations").insert(
            {"migration_set": "sla-bridge", "name": "0042_from_the_future", "applied_at": "2031-01-01 00:00:00+00:00"})
    before = files_of(tmp_path)
    for create in (True, False):
        with pytest.raises(StoreError) as caught:
            Store.open(path, create=create)
        message = str(caught.value)
        assert f"the store {path} was written by a newer sla-bridge" in message
        assert "0042_from_the_future" in message and f"knows up to {known_migrations()[-1]}" in message
        assert "Upgrade sla-bridge" in message and "a store this version wrote" in message
    assert files_of(tmp_path) == before  # not migrated, not switched, not written


def test_a_database_of_another_program_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "places.sqlite"
    with sqlite3.connect(path) as other:
        other.execute("create table moz_places (id integer primary key, url text)")
    other.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=rf"{path} is an SQLite database of another program \(tables: moz_places\)"):
        Store.open(path)
    assert path.read_bytes() == before


# -- private side files ----------------------------------------------------------------------


def test_existing_wal_and_shm_files_readable_by_others_are_made_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as first:  # a run still has it open: its -wal and -shm stay on disk
        first.save_page("zd", page(1, cursor="c1"))
        sides = [Path(f"{path}-wal"), Path(f"{path}-shm")]
        for side in sides:
            side.chmod(0o644)  # made while the store was still readable, or by an older version
        with Store.open(path) as second:
            assert second.cursor("zd") == "c1"
            assert {side.name: stat.S_IMODE(side.stat().st_mode) for side in sides} == {side.name: 0o600 for side in sides}


def test_every_file_of_a_new_store_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    # SQLite gives the -wal and -shm files the store's own mode; the umask cannot loosen them.
    previous = os.umask(0)
    try:
        with Store.open(tmp_path / "store.db") as store:
            store.save_page("zd", page(1, cursor="c1"))
            modes = {file.name: stat.S_IMODE(file.stat().st_mode) for file in tmp_path.iterdir()}
    finally:
        os.umask(previous)
    assert modes == {"store.db": 0o600, "store.db-wal": 0o600, "store.db-shm": 0o600}


# -- reading without creating ----------------------------------------------------------------


def test_a_command_that_only_reads_creates_no_store(tmp_path: Path) -> None:
    typo = tmp_path / "no-such-folder" / "typo.db"
    with pytest.raises(StoreError, match=rf"no store at {typo}: run `sla-bridge sync` first"):
        Store.open(typo, create=False)
    assert not typo.parent.exists()
    empty = tmp_path / "empty.db"
    empty.touch()  # an empty file is not a store either: reading must not turn it into one
    with pytest.raises(StoreError, match=rf"no store at {empty}"):
        Store.open(empty, create=False)
    assert empty.stat().st_size == 0


def test_a_command_that_only_reads_sees_what_sync_wrote(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        store.save_page("zd", page(1, 2, cursor="c1"))
    with Store.open(path, create=False) as reader:
        assert (reader.count("tickets"), reader.cursor("zd")) == (2, "c1")


@not_as_root
def test_a_read_only_store_can_still_be_read(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        store.save_page("zd", page(1, cursor="c1"))
    path.chmod(0o400)
    with Store.open(path, create=False) as reader:
        assert reader.cursor("zd") == "c1"


@not_as_root
def test_an_older_read_only_store_asks_for_one_sync_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store.open(path).close()
    with sqlite3.connect(path) as raw:
        raw.execute("delete from _sqlite_migrations where name = ?", [known_migrations()[-1]])
    raw.close()
    path.chmod(0o400)
    with pytest.raises(StoreError, match=rf"the store {path} was written by an older sla-bridge.*run `sla-bridge sync` as the store's owner"):
        Store.open(path, create=False)


# -- what the operator is told when the disk says no ------------------------------------------


@not_as_root
def test_a_read_only_store_file_is_refused_before_any_work(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    Store.open(path).close()
    path.chmod(0o400)
    with pytest.raises(StoreError, match=rf"the store {path} is read-only for this user: make it writable.*store.path / --db"):
        Store.open(path)


@not_as_root
def test_a_read_only_folder_is_named_with_what_sqlite_needs_there(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "store.db"
    Store.open(path).close()
    folder.chmod(0o500)
    try:
        for create in (True, False):
            with pytest.raises(StoreError, match=rf"the folder {folder} of the store {path} is read-only for this user.*-wal and -shm"):
                Store.open(path, create=create)
    finally:
        folder.chmod(0o700)


def test_a_write_refused_as_read_only_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        store.db.execute("PRAGMA query_only = 1")  # SQLite then answers every write "attempt to write a readonly database"
        with pytest.raises(StoreError, match=rf"the store {path} cannot be written \(read-only\): make it writable") as caught:
            store.set_mark("history_from:zd", "2026-01-01T00:00:00.000Z")
        assert "OperationalError" not in str(caught.value)


def test_a_full_disk_says_so_and_leaves_the_page_and_its_cursor_unsaved(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        store.save_page("zd", page(1, cursor="c1"))
        pages = store.db.execute("PRAGMA page_count").fetchone()[0]
        store.db.execute(f"PRAGMA max_page_count = {pages}")  # the file may not grow: as a full disk
        big = Page(tickets=[ticket(n, title="x" * 20_000) for n in range(2, 12)], events=[], cursor="c2")
        with pytest.raises(StoreError, match=rf"the disk holding the store {path} is full.*Free space on that file system"):
            store.save_page("zd", big)
        assert (store.cursor("zd"), store.count("tickets")) == ("c1", 1)
        # a transaction of the pipeline's own, at any statement or at the commit
        with pytest.raises(StoreError, match="is full"), store.atomic():
            store.db.table("credits").insert({"id": "c", "reason": "y" * 200_000})
        store.db.execute(f"PRAGMA max_page_count = {pages * 1000}")  # space freed: the next run repeats the page
        store.save_page("zd", big)
        assert (store.cursor("zd"), store.count("tickets")) == ("c2", 11)


def test_a_store_held_locked_by_another_program_is_named(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # an sqlite3 shell in the middle of a transaction
        try:
            store.db.execute("PRAGMA busy_timeout = 10")
            with pytest.raises(StoreError, match=rf"the store {path} stayed locked by another program"):
                store.start_run("sync")
        finally:
            other.execute("ROLLBACK")
            other.close()


def test_a_bug_is_not_dressed_up_as_a_disk_problem(store_path: Path) -> None:
    with Store.open(store_path) as store, pytest.raises(sqlite3.OperationalError, match="no such table"):
        store.count("no_such_table")


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


# -- no secret in the store ------------------------------------------------------------------


def test_text_the_helpdesk_echoes_a_secret_into_is_stored_masked(store_path: Path) -> None:
    token = "zd-api-token-1234567890"
    Secret(token, "test")
    echoed = ticket(5, title=f"Re: your token {token} does not work")
    echoed.customer, echoed.requester, echoed.assignee = f"ACME {token}", f"bot {token}", f"agent {token}"
    echoed.group, echoed.service, echoed.type = f"L1 {token}", f"mail {token}", f"question {token}"
    echoed.fields = {"notes": f"pasted {token}", "list": [token, {"deep": token}]}
    echoed.tags = [f"token_{token}", "vip"]
    marker = "[sla-bridge:zd:5:first_response:1]"
    events = [
        TicketEvent(ticket_id="zd:5", event_id="1", kind="status", at=echoed.created_at, from_value=token, to_value=f"open {token}",
                    author=f"agent {token}"),
        TicketEvent(ticket_id="zd:5", event_id="n1:0", kind="note", at=echoed.created_at, to_value=marker, author="bot"),
    ]
    with Store.open(store_path) as store:
        store.save_page("zd", Page(tickets=[echoed], events=events, cursor="c1"))
        dump = "\n".join(store.db.conn.iterdump())
        kept = store.ticket("zd:5")
        assert kept is not None
        assert store.notes_seen(["zd:5"]) == {"zd:5": {marker}}  # sla-bridge's own markers stay as written
    assert token not in dump
    assert kept.title == f"Re: your token {MASK} does not work"
    assert kept.tags == [f"token_{MASK}", "vip"] and kept.fields == {"notes": f"pasted {MASK}", "list": [MASK, {"deep": MASK}]}


# -- every value written is one the next run can read ----------------------------------------

EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc)  # start = "0001-01-01"
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)


@pytest.mark.parametrize("moment", [EARLIEST, EARLIEST + timedelta(days=400 * 365), LATEST], ids=["year-1", "year-400", "year-9999"])
def test_the_extreme_instants_round_trip_through_every_column(store_path: Path, moment: datetime) -> None:
    other = EARLIEST if moment == LATEST else LATEST
    kept = Ticket(source="zd", system="zendesk", external_id="1", key="#1", title="t", status="open", status_raw="open",
                  created_at=moment, updated_at=moment, resolved_at=other)
    clock = Clock(ticket_id="zd:1", metric="resolution", cycle=1, policy="p", policy_version="v", state="breached", target_seconds=60,
                  elapsed_seconds=120, paused_seconds=0, started_at=moment, stopped_at=other, due_at=moment, breached_at=other,
                  at_risk=False)
    with Store.open(store_path) as store:
        store.save_page("zd", Page(tickets=[kept], events=[TicketEvent(ticket_id="zd:1", event_id="e", kind="status", at=moment)],
                                   cursor=Watermark(moment, "1").encode()))
        store.set_mark("history_from:zd", to_iso(moment))
        store.replace_clocks("zd:1", [clock_row(clock, to_iso(moment))])
        store.save_agent_spans("zd", [("7", moment, other)])
        store.journal_intend(1, [("zd:1", "note:m", "m")])
        store.journal_refuse("zd:1", ["note:m"], reason="422", cause="c", retry_at=moment)
    with Store.open(store_path, create=False) as reread:
        assert from_iso(reread.mark("history_from:zd") or "") == moment
        assert Watermark.decode(reread.cursor("zd") or "") == Watermark(moment, "1")
        again = reread.ticket("zd:1")
        assert again is not None and (again.created_at, again.resolved_at) == (moment, other)
        assert [e.at for e in reread.events("zd:1")] == [moment]
        assert reread.clocks(["zd:1"]) == {"zd:1": [clock]}
        assert reread.agent_spans("zd") == [("7", moment, other)]
        [refused] = reread.refusals()
        assert from_iso(refused["retry_at"]) == moment


def test_instants_an_older_version_wrote_unreadable_are_repaired_on_open(store_path: Path) -> None:
    # Before to_iso padded the year, `start = "0001-01-01"` saved '1-01-01T00:00:00.000Z': every
    # later run failed to read it, even after the config was fixed, until the store was edited.
    with Store.open(store_path) as store:
        store.save_page("zd", Page(tickets=[ticket(1)], events=[event(1, "a", minutes=1)], cursor=None))
        store.db.execute("insert into sync_state values ('_sla-bridge', 'history_from:zd', '1-01-01T00:00:00.000Z', '2026-03-02T09:00:00.000Z')")
        store.db.execute("""insert into sync_state values ('zd', 'tickets', '{"at": "12-03-04T05:06:07.089Z", "key": "9"}', '2026-03-02')""")
        store.db.execute("insert into sync_state values ('zd', 'opaque', '7-01-01T00:00:00', '2026-03-02')")  # not ours: left alone
        store.db.execute("update tickets set created_at = '999-12-31T23:59:59.999Z'")
        store.db.execute("update ticket_events set at = '5-06-07T08:09:10.011Z'")
        store.db.execute("insert into agent_spans values ('zd', '7', '', '99-01-01T00:00:00.000Z')")
        store.db.execute("delete from _sqlite_migrations where name = '0007_iso_years_padded'")  # as the older version left it
    with Store.open(store_path) as repaired:
        assert from_iso(repaired.mark("history_from:zd") or "") == EARLIEST
        assert Watermark.decode(repaired.cursor("zd") or "") == Watermark(datetime(12, 3, 4, 5, 6, 7, 89000, tzinfo=timezone.utc), "9")
        assert repaired.cursor("zd", "opaque") == "7-01-01T00:00:00"
        again = repaired.ticket("zd:1")
        assert again is not None and again.created_at == datetime(999, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)
        assert repaired.agent_spans("zd") == [("7", None, datetime(99, 1, 1, tzinfo=timezone.utc))]
        assert [e.at for e in repaired.events("zd:1")] == [datetime(5, 6, 7, 8, 9, 10, 11000, tzinfo=timezone.utc)]

