"""Never write a state computed for another instant: ``--now`` is for evaluation and reports.

The Zendesk sandbox runs on a frozen clock (ANCHOR) and sends it as ``Date``; this machine's
clock is elsewhere, so these also show that the helpdesk's clock is the one compared.
"""

from __future__ import annotations

import json
import re

from tests.pipeline.test_sync import NOW, bridge_notes, cli, sandbox, write_config

PAST = "2026-10-31T12:00:00Z"  # a day before the sandbox's clock
FUTURE = "2026-11-04T12:00:00Z"


def test_a_push_for_a_past_instant_writes_nothing_and_says_why(tmp_path):
    box = sandbox(200)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        past = cli(config, "sync", "--now", PAST)
        puts = box.count("", "PUT")
        present = cli(config, "sync")  # no --now: evaluated for the present, as cron runs it
    assert past.returncode == 3 and puts == 0  # not one sla_ tag removed from a live ticket
    assert re.search(r"Error: source 'zd': clocks evaluated for 2026-10-31T12:00:00\.000Z, the helpdesk's clock says "
                     r"2026-11-01T12:00:\d\d\.\d{3}Z: push writes only the present state; run evaluate without --now, "
                     r"or use --dry-run\. Nothing was written", past.stderr)
    assert present.returncode == 0, present.stderr
    assert box.count("", "PUT") > 0 and bridge_notes(box)


def test_a_dry_run_plans_at_any_instant(tmp_path):
    box = sandbox(200)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        dry = cli(config, "sync", "--dry-run", "--now", PAST, "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["plans"]["zd"] and box.count("", "PUT") == 0


def test_a_push_for_a_future_instant_posts_no_note_for_a_breach_that_has_not_happened(tmp_path):
    reference, box = sandbox(), sandbox()
    with reference.serve() as url:
        (tmp_path / "reference").mkdir()
        assert cli(write_config(tmp_path / "reference", {"zd": (reference, url)}), "sync", "--now", NOW).returncode == 0
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        cli(config, "sync", "--now", FUTURE)
    notes = bridge_notes(box)
    assert len(notes) == len(set(notes)) and set(notes) <= set(bridge_notes(reference))  # only breaches of the present


def test_a_push_on_clocks_from_an_old_evaluation_writes_nothing(tmp_path):
    """`evaluate --now PAST`, then a bare `push`: the clocks in the store are not the present's."""
    box = sandbox(200)
    with box.serve() as url:
        config = write_config(tmp_path, {"zd": (box, url)})
        assert cli(config, "pull").returncode == 0
        assert cli(config, "evaluate", "--now", PAST).returncode == 0
        push = cli(config, "push")
    assert push.returncode == 3 and box.count("", "PUT") == 0
    assert "clocks evaluated for 2026-10-31T12:00:00.000Z" in push.stderr
