"""Never a duplicate note: the ticket's history, not the store, says which notes exist.

A store restored from a backup taken before a push, a deleted store, or a second ``--db`` on
the same config knows nothing of the notes the other posted: the real CLI against the Zendesk
sandbox, whose clock moves so that breaches happen between runs and notes reach the export.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

from bridge.model import to_iso
from connectors.zendesk.sandbox import ZendeskSandbox
from tests.pipeline.test_sync import ANCHOR, bridge_notes, cli, write_config


class MovingClock:
    """The sandbox's clock: frozen, moved by the test (each CLI run passes ``--now`` equal to it)."""

    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now

    def iso(self) -> str:
        return to_iso(self.now)


def moving_sandbox(tickets: int = 300) -> tuple[ZendeskSandbox, MovingClock]:
    clock = MovingClock(ANCHOR)
    return ZendeskSandbox(tickets, seed=11, anchor=ANCHOR, clock=clock, export_limit_per_minute=10_000), clock


def backup(store: Path, to: Path) -> None:
    """What an operator's backup does: sqlite's online backup, WAL included."""
    source, target = sqlite3.connect(store), sqlite3.connect(to)
    source.backup(target)
    target.close()
    source.close()


def restore(backup_file: Path, store: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    store.write_bytes(backup_file.read_bytes())


def test_a_store_restored_from_before_a_push_posts_no_note_twice(tmp_path):
    box, clock = moving_sandbox()
    store = tmp_path / "store.db"
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        assert cli(config, "sync", "--now", clock.iso()).returncode == 0
        before = Counter(bridge_notes(box))
        backup(store, tmp_path / "backup.db")
        clock.now = ANCHOR + timedelta(days=2)  # Tuesday: office hours pass, more clocks breach
        later = cli(config, "sync", "--now", clock.iso())
        assert later.returncode == 0, later.stderr
        posted = Counter(bridge_notes(box))
        assert len(posted) > len(before)  # the second sync posted notes the backup knows nothing of
        clock.now += timedelta(minutes=2)  # past the export's one-minute lag: the notes are in the history
        restore(tmp_path / "backup.db", store)
        again = cli(config, "sync", "--now", clock.iso())
    assert again.returncode == 0, again.stderr
    after = Counter(bridge_notes(box))
    assert after == posted  # not one note posted again
    assert set(after.values()) == {1}  # exactly one note per breach on the sandbox's tickets
    journal = {row[0] for row in sqlite3.connect(store).execute("select item from writebacks where item like 'note:%' and state = 'sent'")}
    assert journal == {f"note:{marker}" for marker in before}  # the restored journal, untouched: the history spoke


def test_a_second_store_on_the_same_config_posts_no_note_twice(tmp_path):
    box, clock = moving_sandbox(200)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        assert cli(config, "sync", "--now", clock.iso()).returncode == 0
        posted = Counter(bridge_notes(box))
        clock.now += timedelta(minutes=2)
        other = cli(config, "--db", str(tmp_path / "other.db"), "sync", "--now", clock.iso())
    assert other.returncode == 0, other.stderr
    assert posted and Counter(bridge_notes(box)) == posted


def test_a_standalone_push_on_a_restored_store_writes_nothing_until_it_has_pulled(tmp_path):
    box, clock = moving_sandbox(200)
    store = tmp_path / "store.db"
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        assert cli(config, "sync", "--now", clock.iso()).returncode == 0
        backup(store, tmp_path / "backup.db")
        clock.now = ANCHOR + timedelta(days=2)
        assert cli(config, "sync", "--now", clock.iso()).returncode == 0
        posted, puts = Counter(bridge_notes(box)), box.count("", "PUT")
        clock.now += timedelta(minutes=2)
        restore(tmp_path / "backup.db", store)
        assert cli(config, "evaluate", "--now", clock.iso()).returncode == 0
        push = cli(config, "push", "--now", clock.iso())
        assert push.returncode == 3
        assert "Run `sla-bridge pull` (or `sync`) first. Nothing was written" in push.stderr
        assert box.count("", "PUT") == puts and Counter(bridge_notes(box)) == posted
        synced = cli(config, "sync", "--now", clock.iso())
    assert synced.returncode == 0, synced.stderr
    assert Counter(bridge_notes(box)) == posted


def test_notes_wait_for_a_history_known_to_be_fresh_while_fields_and_tags_go(tmp_path, monkeypatch):
    """A store that does not know how far its history is complete (written before sla-bridge kept
    that) may not know the notes on its tickets: it holds them, says so, and exits 3."""
    from bridge.config import load_config
    from bridge.edges.store import Store
    from bridge.pipeline.run import Pipeline

    box = ZendeskSandbox(200, seed=11, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=10_000)
    monkeypatch.setenv("ZD_TOKEN_ZD", "sandbox-token")
    config = load_config(write_config(tmp_path, {"zd": (box, "https://sandbox.zendesk.com")}))
    with Store.open(tmp_path / "store.db") as store:
        run = Pipeline(config, store, now=ANCHOR, run_id=store.start_run("sync"), transports={"zd": box.transport()})
        run.pull(["zd"])
        store.db.execute("delete from sync_state where source = '_sla-bridge' and stream like 'complete_to:%'")  # an older store
        run.evaluate(["zd"])
        run.push(["zd"])
        run.close()
        stats = run.stat("zd")
    assert stats.notes_held > 0 and stats.notes_sent == 0 and bridge_notes(box) == []
    assert stats.writes_sent > 0  # status fields and tags are idempotent: written all the same
    assert f"{stats.notes_held} breach note(s) held" in stats.error and "Run `sla-bridge pull` or `sync` first" in stats.error
    assert stats.problems == [stats.error]  # exit 3 for this source (run.py: a source with an error is partial)
