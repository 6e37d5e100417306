"""`sla-bridge sync` as cron runs it: the real CLI in a subprocess against sandboxes on loopback."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from connectors.zendesk.sandbox import ZendeskSandbox

ANCHOR = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
NOW = "2026-11-01T12:00:00Z"
MARKER = re.compile(r"\[sla-bridge:[^\]]+\]")

POLICIES = """
[calendars.office]
timezone = "Europe/London"
hours = { mon = ["09:00-17:30"], tue = ["09:00-17:30"], wed = ["09:00-17:30"], thu = ["09:00-17:30"], fri = ["09:00-17:00"] }

[[policies]]
name = "acme"
contract = "ACME MSA s.9"
calendar = "office"
match = { customer = ["ACME Ltd"] }
targets.first_response = { p1 = "30m", p2 = "2h", p3 = "4h", p4 = "8h" }
targets.resolution = { p1 = "4h", p2 = "16h", p3 = "40h", p4 = "80h" }
credits = { currency = "EUR", monthly_fee = 10000, per_breach = [{ over = "0%", percent = 1 }, { over = "50%", percent = 2 }] }

[[policies]]
name = "standard"
targets.first_response = { p1 = "1h", p2 = "4h", p3 = "8h", p4 = "24h" }
targets.resolution = { p1 = "8h", p2 = "24h", p3 = "72h", p4 = "120h" }
"""


def write_config(folder: Path, sources: dict[str, tuple[ZendeskSandbox, str]], token_env: str = "ZD_TOKEN") -> Path:
    text = '[store]\npath = "store.db"\n[http]\nmax_attempts = 2\nmax_wait = "2s"\n' + POLICIES
    for name, (sandbox, url) in sources.items():
        source = sandbox.source_config(url, f"{token_env}_{name.upper()}")
        text += (
            f'\n[sources.{name}]\nsystem = "zendesk"\nurl = "{url}"\nstart = "{source["start"]}"\n'
            f'auth = {{ email = "{sandbox.email}", token_env = "{token_env}_{name.upper()}" }}\n'
            f'writeback = {{ enabled = true, status_field = "{source["writeback"]["status_field"]}" }}\n'
        )
    path = folder / "sla-bridge.toml"
    path.write_text(text)
    return path


def cli(config: Path, *args: str, env: dict[str, str] | None = None, wait: bool = True):
    command = [sys.executable, "-m", "bridge.cli", "--config", str(config), *args]
    full_env = {**os.environ, "ZD_TOKEN_ZD": "sandbox-token", "ZD_TOKEN_OTHER": "sandbox-token", **(env or {})}
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=300)


def sandbox(tickets: int = 600, **options) -> ZendeskSandbox:
    return ZendeskSandbox(tickets, seed=11, anchor=ANCHOR, clock=lambda: ANCHOR, export_limit_per_minute=10_000, **options)


def bridge_notes(box: ZendeskSandbox) -> list[str]:
    return [marker for number in box.tickets for body in box.internal_notes(number) for marker in MARKER.findall(body)]


def test_sync_twice_the_second_sends_nothing(tmp_path):
    box = sandbox()
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        first = cli(config, "sync", "--now", NOW)
        writes = box.count("", "PUT")
        second = cli(config, "sync", "--now", NOW)
    assert first.returncode == 0, first.stderr
    assert writes > 0 and re.search(r"[1-9][\d,]* writes sent", first.stdout)
    assert second.returncode == 0, second.stderr
    assert box.count("", "PUT") == writes  # nothing was sent the second time
    assert "0 writes sent (0 notes)" in second.stdout
    assert len(first.stdout.strip().splitlines()) == 1 and first.stderr == ""  # quiet for cron: one line


def test_dry_run_sends_no_write_request(tmp_path):
    box = sandbox(200)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        result = cli(config, "sync", "--dry-run", "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert box.count("", "PUT") == 0 and box.count("", "POST") == 0
    assert "would be written (dry run: nothing sent)" in result.stdout
    assert re.search(r"internal note \[sla-bridge:zd:\d+:(first_response|resolution):1\]", result.stdout)


def test_two_syncs_at_once_one_runs_one_exits_75(tmp_path):
    box = sandbox(200)
    box.inject("slow", delay=3.0, path="/incremental/tickets")  # keep the first run busy
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        runs = [cli(config, "sync", "--now", NOW, wait=False) for _ in range(2)]
        outcomes = sorted((run.wait(timeout=120), run.communicate()) for run in runs)
    (ok_code, _), (held_code, (_, held_err)) = outcomes
    assert (ok_code, held_code) == (0, 75)
    assert re.search(r"another sla-bridge run holds the lock on .*: sync with pid \d+, started \d{4}-\d\d-\d\d", held_err)


def test_a_stale_lock_from_a_killed_run_is_taken_over(tmp_path):
    box = sandbox(200)
    box.inject("slow", delay=30.0, path="/incremental/tickets")
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        victim = cli(config, "sync", "--now", NOW, wait=False)
        deadline = time.monotonic() + 30
        while not (tmp_path / "store.db.lock").exists() or (tmp_path / "store.db.lock").stat().st_size == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        box.faults.clear()
        after = cli(config, "sync", "--now", NOW)
    assert after.returncode == 0, after.stderr


def test_a_failing_source_does_not_stop_the_others(tmp_path):
    good, bad, down = sandbox(100), sandbox(100), sandbox(100)
    down.inject("503", times=100, path="/incremental/tickets")
    with good.serve() as good_url, bad.serve() as bad_url, down.serve() as down_url:
        config = write_config(tmp_path, {"zd": (good, good_url), "other": (bad, bad_url), "third": (down, down_url)})
        result = cli(config, "sync", "--now", NOW, env={"ZD_TOKEN_OTHER": "wrong-token", "ZD_TOKEN_THIRD": "sandbox-token"})
    assert result.returncode == 3
    assert "Error: source 'other': the credentials were refused (401 Unauthorized)" in result.stderr
    assert re.search(r"Error: source 'third': GET .* answered 503 .*gave up after 2 attempt", result.stderr)
    assert good.count("", "PUT") > 0  # the healthy source was pulled, evaluated and written to
    row = sqlite3.connect(tmp_path / "store.db").execute("select status, exit_code from runs order by id desc").fetchone()
    assert row == ("partial", 3)


# -- found in review: history, marks, horizons ------------------------------------------------
# (The SIGKILL matrix runs for every connector in the conformance suite: connectors/kit/conformance.py.)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The notes one uninterrupted sync leaves on the sandbox."""
    folder = tmp_path_factory.mktemp("reference")
    box = sandbox()
    with box.serve() as url:
        config = write_config(folder, {"zd": (box, url)})
        assert cli(config, "sync", "--now", NOW).returncode == 0
    return bridge_notes(box)


def test_evaluation_is_incremental(tmp_path, monkeypatch):
    from bridge.config import load_config
    from bridge.edges.store import Store
    from bridge.pipeline.run import Pipeline

    box = sandbox(300)
    monkeypatch.setenv("ZD_TOKEN_ZD", "sandbox-token")
    config_path = write_config(tmp_path, {"zd": (box, "https://sandbox.zendesk.com")})
    config = load_config(config_path)
    with Store.open(tmp_path / "store.db") as store:
        def run(cfg=config):
            sync = Pipeline(cfg, store, now=ANCHOR, run_id=store.start_run("test"), transports={"zd": box.transport()})
            sync.pull(["zd"])
            sync.evaluate(["zd"])
            sync.close()
            return sync.stat("zd")

        first = run()
        open_clocks = store.db.execute("select count(distinct ticket_id) from sla_clocks where stopped_at is null").fetchone()[0]
        second = run()
        assert first.tickets_evaluated == 300
        assert 0 < open_clocks < 300 and second.tickets_evaluated == open_clocks  # only clocks that move with time
        edited = load_config(data={**tomllib_load(config_path), "policies": [
            {**p, "targets": {**p["targets"], "first_response": {"p1": "5m", "p2": "1h", "p3": "4h", "p4": "8h"}}} if p["name"] == "acme" else p
            for p in tomllib_load(config_path)["policies"]]}, environ=False)
        assert run(edited).tickets_evaluated == 300  # a policy changed: everything again


def tomllib_load(path: Path) -> dict:
    import tomllib

    return tomllib.loads(path.read_text())


def test_status_shows_one_tickets_timeline(tmp_path):
    box = sandbox(100)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        assert cli(config, "sync", "--now", NOW).returncode == 0
    worst = cli(config, "status", "--json")
    first = __import__("json").loads(worst.stdout)["clocks"][0]
    timeline = cli(config, "status", first["ticket_id"])
    assert timeline.returncode == 0, timeline.stderr
    assert timeline.stdout.startswith(f"{first['key']} ({first['ticket_id']})")
    assert "Events:" in timeline.stdout and "Statuses:" in timeline.stdout and "Clocks:" in timeline.stdout
    # the worst clock: breached, how far over, and why it stands there (started, stopped or running, its terms)
    assert re.search(rf"\n    {first['metric']}#1: breached, [0-9hms]+ of [0-9hms]+(, paused [0-9hms]+)?, breached [0-9-]+ [0-9:]+\n"
                     rf"      started [0-9-]+ [0-9:]+ \(.+\)\n", timeline.stdout), timeline.stdout
    assert re.search(r"\n      (stopped [0-9-]+ [0-9:]+ \(.+\)|running)\n      terms: \S+ version [0-9a-f]{12}\n", timeline.stdout)
    missing = cli(config, "status", "zd:99999")
    assert missing.returncode == 2 and "no ticket 'zd:99999' in the store" in missing.stderr


# -- found in review ---------------------------------------------------------------------------


def test_history_that_arrives_a_run_late_is_evaluated_before_anything_is_written(tmp_path, uninterrupted):
    """The ticket stream succeeds, the history stream fails: nothing may be judged on half the story."""
    reference_notes = uninterrupted
    box = sandbox()
    box.inject("500", times=1000, path="/incremental/ticket_events")
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        first = cli(config, "sync", "--now", NOW)
        assert first.returncode == 3 and box.count("", "PUT") == 0  # a failed source is never written from
        box.faults.clear()
        second = cli(config, "sync", "--now", NOW)
        assert second.returncode == 0, second.stderr
    assert sorted(bridge_notes(box)) == sorted(reference_notes)


def test_marks_are_per_source(tmp_path):
    one, two = sandbox(150), sandbox(150)
    with one.serve() as url_one, two.serve() as url_two:
        config = write_config(tmp_path, {"zd": (one, url_one), "other": (two, url_two)})
        assert cli(config, "pull", "--now", NOW).returncode == 0
        first = cli(config, "evaluate", "--source", "zd", "--now", NOW, "--json")
        second = cli(config, "evaluate", "--source", "other", "--now", NOW, "--json")
    import json

    assert json.loads(first.stdout)["sources"]["zd"]["tickets_evaluated"] == 150
    assert json.loads(second.stdout)["sources"]["other"]["tickets_evaluated"] == 150


def test_tickets_created_before_the_pulled_history_are_not_judged(tmp_path):
    box = sandbox(400)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        text = config.read_text()
        start = re.search(r'start = "([^"]+)"', text).group(1)
        config.write_text(text.replace(start, "2026-10-15"))  # only the last ~2 weeks of history
        assert cli(config, "sync", "--now", NOW).returncode == 0
    db = sqlite3.connect(tmp_path / "store.db")
    old = db.execute("select count(*) from tickets where created_at < '2026-10-15'").fetchone()[0]
    judged = db.execute("select count(*) from sla_clocks c join tickets t on t.id = c.ticket_id "
                        "where t.created_at < '2026-10-15'").fetchone()[0]
    assert old > 0 and judged == 0
    noted = {m.split(":")[2] for m in bridge_notes(box)}
    assert all(box.tickets[int(n)]["created_at"] >= "2026-10-15" for n in noted)


def test_an_unconfirmed_tag_push_is_cleaned_up_when_no_longer_wanted():
    from bridge.framework.source import WritebackConfig
    from bridge.model import Ticket
    from bridge.pipeline.plan import plan_ticket, pushed_from_journal

    rows = [{"item": "tags", "value": "[]", "pending": '["sla_at_risk"]', "state": "intent"},
            {"item": "field:custom_field:9", "value": '"on_track"', "pending": '"at_risk"', "state": "intent"}]
    pushed = pushed_from_journal(rows)
    assert (dict(pushed.fields), pushed.tags, pushed.maybe_tags) == ({}, frozenset(), frozenset({"sla_at_risk"}))
    ticket = Ticket("zd", "zendesk", "1", "#1", "t", "open", "open", ANCHOR, ANCHOR)
    from bridge.engine.evaluator import Clock

    calm = Clock("zd:1", "resolution", 1, "p", "v", "running", 3600, 60, 0, ANCHOR, None, ANCHOR, None, False)
    plan = plan_ticket(ticket, [calm], WritebackConfig(enabled=True, status_field="custom_field:9", tags=True, notes=True), pushed)
    assert plan.remove_tags == ["sla_at_risk"] and plan.set_fields == {"custom_field:9": "on_track"}


def test_a_ticket_closed_between_pull_and_push_is_refused_once_and_not_retried(tmp_path):
    box = sandbox(300)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        assert cli(config, "pull", "--now", NOW).returncode == 0
        assert cli(config, "evaluate", "--now", NOW).returncode == 0
        plans = cli(config, "push", "--dry-run", "--now", NOW, "--json")
        target = next(p["ticket_id"] for p in __import__("json").loads(plans.stdout)["plans"]["zd"] if p["notes"])
        box.tickets[int(target.split(":")[1])]["status"] = "closed"  # an agent closes it meanwhile
        first = cli(config, "push", "--now", NOW)
        puts = box.count("", "PUT")
        second = cli(config, "push", "--now", NOW)
    assert first.returncode == 0 and "1 tickets refused the write (-v lists them)" in first.stdout
    assert second.returncode == 0 and box.count("", "PUT") == puts  # not retried
    state = sqlite3.connect(tmp_path / "store.db").execute(
        "select distinct state from writebacks where ticket_id = ?", [target]).fetchall()
    assert state == [("refused",)]
