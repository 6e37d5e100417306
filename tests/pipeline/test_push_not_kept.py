"""A value the source did not keep: Zendesk drops a drop-down value it has no option for, silently,
and answers success. The next pull shows the field empty; sync must notice, say so, exit 3, and
not send the value again every run."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

from tests.pipeline.test_push_notes import moving_sandbox
from tests.pipeline.test_sync import ANCHOR, cli, write_config


def test_a_status_value_the_drop_down_drops_is_reported_and_not_resent_every_run(tmp_path):
    box, clock = moving_sandbox(200)
    box.status_drop_down(["urgent", "normal"])  # the account's drop-down has none of sla-bridge's values
    field = "field:" + box.source_config("http://x", "X")["writeback"]["status_field"]
    db = sqlite3.connect(tmp_path / "store.db")

    def resent() -> int:
        return sum(1 for method, path, _ in box.requests if method == "PUT")

    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        first = cli(config, "sync", "--now", clock.iso())
        assert first.returncode == 0, first.stderr  # Zendesk said success: nothing to notice yet
        clock.now += timedelta(minutes=2)  # the updates reach the export
        noticed = cli(config, "sync", "--now", clock.iso(), "--json")
        puts = resent()
        clock.now += timedelta(minutes=2)
        quiet = cli(config, "sync", "--now", clock.iso(), "--json")
        quiet_puts = resent()
        clock.now += timedelta(hours=1)  # the back-off is over: sent once more, and dropped once more
        retried = cli(config, "sync", "--now", clock.iso())
        retry_puts = resent()
        clock.now += timedelta(minutes=2)
        again = cli(config, "sync", "--now", clock.iso(), "--json")

    stats = json.loads(noticed.stdout)["sources"]["zd"]
    dropped = stats["not_kept"][field]
    assert noticed.returncode == 3 and dropped > 0
    assert f"Zendesk Support did not keep {dropped} value(s) sla-bridge wrote to {field}" in noticed.stderr
    assert "a drop-down without that option drops it silently" in noticed.stderr
    assert "the source did not keep value" in stats["refusal_reasons"][field]
    refused = dict(db.execute("select ticket_id, value from writebacks where item = ? and state = 'refused'", [field]).fetchall())
    assert len(refused) == dropped  # kept with why, to retry after a back-off
    # both the tickets Zendesk exported again (tagged, noted: the field shows empty) and those it
    # did not (the dropped value was their only change: nothing changed)
    assert {'"breached"', '"met"'} <= set(refused.values())
    assert quiet.returncode == 0 and quiet_puts == puts  # not re-sent every run
    assert json.loads(quiet.stdout)["sources"]["zd"]["not_kept"] == {}
    assert retried.returncode == 0 and retry_puts > quiet_puts  # after the back-off it is tried again
    assert again.returncode == 3 and json.loads(again.stdout)["sources"]["zd"]["not_kept"][field] > 0
    refusals = {count for (count,) in db.execute("select refusals from writebacks where item = ? and state = 'refused'", [field])}
    assert 2 in refusals  # dropped twice: the next try waits two hours


def test_values_the_source_keeps_are_not_reported(tmp_path):
    box, clock = moving_sandbox(200)  # a text field keeps every value
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        assert cli(config, "sync", "--now", clock.iso()).returncode == 0
        clock.now = ANCHOR + timedelta(minutes=2)
        second = cli(config, "sync", "--now", clock.iso(), "--json")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["sources"]["zd"]["not_kept"] == {}
